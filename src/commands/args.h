// Command-line parsing for the subcommands: positional arguments, options with a value,
// flags. Anything unknown is an error, never silently ignored: an unknown option, an empty
// value (`--plan ""`), a positional argument the command does not take, a number outside
// the option's range.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

struct Args {
    std::string command;                       // e.g. "kvshare generate", for messages
    std::vector<std::string> positional;
    std::map<std::string, std::string> values; // option -> value
    std::set<std::string> flags;               // options without a value that were given

    bool has(const std::string& opt) const { return values.count(opt) || flags.count(opt); }
    std::string get(const std::string& opt, const std::string& fallback = "") const;
    // Every numeric option has a range, which its --help states: a value outside [lo, hi]
    // is an error naming the range. The fallback (the option not given) is not checked.
    int get_int(const std::string& opt, int fallback, int lo, int hi) const;
    float get_float(const std::string& opt, float fallback, float lo, float hi) const;
    // The i-th positional argument, or an error naming what is missing.
    const std::string& need_positional(size_t i, const std::string& what) const;
    // An error for a positional argument past the first n ("unexpected argument 'X'").
    void at_most_positional(size_t n) const;
    // An input file (a positional argument or an option's value) that exists and is not a
    // directory; an output path whose folder exists and that is not a directory.
    const std::string& need_input_file(size_t i, const std::string& what) const;
    // MODEL: a file, or a directory (a Hugging Face folder; its loader says what it lacks).
    const std::string& need_model(size_t i, const std::string& what = "MODEL") const;
    std::string input_file(const std::string& opt) const;   // "" when not given
    std::string model_path(const std::string& opt) const;   // need_model for an option's value; "" when not given
    std::string output_file(const std::string& opt, const std::string& fallback = "") const;
};

// argv[first..argc): options in with_value take the next argument; flags take none.
// "-h"/"--help" sets the flag "--help". Only -i (a prompt) may be given an empty value.
Args parse_args(int argc, char** argv, int first, const std::string& command,
                const std::set<std::string>& with_value, const std::set<std::string>& flags);
