#include "src/commands/args.h"
#include "src/util.h"

std::string Args::get(const std::string& opt, const std::string& fallback) const {
    auto it = values.find(opt);
    return it == values.end() ? fallback : it->second;
}

int Args::get_int(const std::string& opt, int fallback, int lo, int hi) const {
    return values.count(opt) ? parse_int_in(values.at(opt), command + " " + opt, lo, hi) : fallback;
}

float Args::get_float(const std::string& opt, float fallback, float lo, float hi) const {
    return values.count(opt) ? parse_float_in(values.at(opt), command + " " + opt, lo, hi) : fallback;
}

const std::string& Args::need_positional(size_t i, const std::string& what) const {
    if (i >= positional.size()) fail(command + ": missing " + what + " (see --help)");
    return positional[i];
}

void Args::at_most_positional(size_t n) const {
    if (positional.size() > n)
        fail(command + ": unexpected argument '" + positional[n] + "' (see --help; quote a value that has spaces)");
}

const std::string& Args::need_input_file(size_t i, const std::string& what) const {
    const std::string& path = need_positional(i, what);
    check_input_file(path, command + ": " + what);
    return path;
}

const std::string& Args::need_model(size_t i, const std::string& what) const {
    const std::string& path = need_positional(i, what);
    check_input_file(path, command + ": " + what, /*directory_ok=*/true);
    return path;
}

std::string Args::model_path(const std::string& opt) const {
    if (!values.count(opt)) return "";
    check_input_file(values.at(opt), command + " " + opt, /*directory_ok=*/true);
    return values.at(opt);
}

std::string Args::input_file(const std::string& opt) const {
    if (!values.count(opt)) return "";
    check_input_file(values.at(opt), command + " " + opt);
    return values.at(opt);
}

std::string Args::output_file(const std::string& opt, const std::string& fallback) const {
    const std::string path = get(opt, fallback);
    if (!path.empty()) check_output_file(path, command + " " + opt);
    return path;
}

Args parse_args(int argc, char** argv, int first, const std::string& command,
                const std::set<std::string>& with_value, const std::set<std::string>& flags) {
    Args a;
    a.command = command;
    for (int i = first; i < argc; i++) {
        std::string s = argv[i];
        if (s == "-h" || s == "--help") { a.flags.insert("--help"); continue; }
        if (s.size() > 1 && s[0] == '-' && !(s[1] >= '0' && s[1] <= '9')) {
            if (with_value.count(s)) {
                if (i + 1 >= argc) fail(command + ": option " + s + " needs a value");
                if (a.values.count(s)) fail(command + ": option " + s + " is given twice");
                a.values[s] = argv[++i];
                if (a.values[s].empty() && s != "-i") fail(command + ": option " + s + " is given an empty value");
            } else if (flags.count(s)) {
                a.flags.insert(s);
            } else {
                fail(command + ": unknown option '" + s + "' (see --help)");
            }
        } else {
            a.positional.push_back(s);
        }
    }
    return a;
}
