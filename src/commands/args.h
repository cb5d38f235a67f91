// Command-line parsing for the subcommands: positional arguments, options with a value,
// flags. Anything unknown is an error, never silently ignored.
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
    int get_int(const std::string& opt, int fallback) const;
    float get_float(const std::string& opt, float fallback) const;
    // The i-th positional argument, or an error naming what is missing.
    const std::string& need_positional(size_t i, const std::string& what) const;
};

// argv[first..argc): options in with_value take the next argument; flags take none.
// "-h"/"--help" sets the flag "--help".
Args parse_args(int argc, char** argv, int first, const std::string& command,
                const std::set<std::string>& with_value, const std::set<std::string>& flags);
