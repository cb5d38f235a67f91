#include "src/commands/args.h"
#include "src/util.h"

std::string Args::get(const std::string& opt, const std::string& fallback) const {
    auto it = values.find(opt);
    return it == values.end() ? fallback : it->second;
}

int Args::get_int(const std::string& opt, int fallback) const {
    return values.count(opt) ? parse_int(values.at(opt), command + " " + opt) : fallback;
}

float Args::get_float(const std::string& opt, float fallback) const {
    return values.count(opt) ? parse_float(values.at(opt), command + " " + opt) : fallback;
}

const std::string& Args::need_positional(size_t i, const std::string& what) const {
    if (i >= positional.size()) fail(command + ": missing " + what + " (see --help)");
    return positional[i];
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
                a.values[s] = argv[++i];
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
