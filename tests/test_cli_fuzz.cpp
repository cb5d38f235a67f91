// Fuzzing the command line: every numeric option of every subcommand fed hostile values,
// run in-process through kvshare_main (thousands of runs in seconds; a process each would
// take minutes). Each must return 1 with one line on stderr starting "kvshare: error:",
// nothing on stdout and no output file; just outside the option's range it must name the
// range, and the subcommand's --help must state it. A run that hangs is killed by an alarm.
// The table is the list of numeric options: a new option goes in it.
#include <catch2/catch.hpp>
#include "src/commands/cli.h"
#include "src/formats/checkpoint.h"
#include "tests/helpers.h"
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>

namespace {

struct Run {
    int rc = 0;
    std::string out, err;
};

std::string slurp(FILE* f) {
    std::string s;
    std::rewind(f);
    char buf[4096];
    for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) s.append(buf, n);
    std::fclose(f);
    return s;
}

// kvshare_main with stdout and stderr captured; at most 30 s (SIGALRM ends the test binary).
Run run_cli(const std::vector<std::string>& args) {
    std::vector<std::string> words = {"kvshare"};
    words.insert(words.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(&w[0]);
    argv.push_back(nullptr);
    std::fflush(stdout);
    std::fflush(stderr);
    FILE* out = std::tmpfile();
    FILE* err = std::tmpfile();
    REQUIRE((out && err));
    const int saved_out = dup(1), saved_err = dup(2);
    dup2(fileno(out), 1);
    dup2(fileno(err), 2);
    alarm(30);
    Run r;
    r.rc = kvshare_main((int)words.size(), argv.data());
    alarm(0);
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    r.out = slurp(out);
    r.err = slurp(err);
    return r;
}

int lines(const std::string& s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

// Values no option accepts. (A NUL byte cannot reach argv; parse_int's own test has it.)
const std::vector<std::string> kGarbage = {"",     "abc",  "1e9", "nan", "inf", "-inf", "0x10", "1 2",  "1,5",
                                           " 7",   "7 ",   "2147483648", "-2147483649", "99999999999999999999",
                                           "--",   "-"};

struct Option {
    std::vector<std::string> command;  // M = the model file, OUT = an output path, TEXT = a text file
    std::string option;
    long lo, hi;                       // the range; lo > hi: no edge to test (any integer, a float)
    std::string help_says;             // what the subcommand's --help says about it
};

const long kNone = 1, kNo = 0;  // lo > hi

const std::vector<Option> kOptions = {
    {{"generate", "M"}, "-n", 0, 1048576, "0..1048576"},
    {{"generate", "M", "-n", "2"}, "--batch", 1, 4096, "1..4096"},
    {{"generate", "M", "-n", "2"}, "-t", kNone, kNo, "0..100"},
    {{"generate", "M", "-n", "2"}, "-p", kNone, kNo, "0..1"},
    {{"generate", "M", "-n", "2"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"info", "M"}, "--context", 1, 64, "N 1..the model's max_seq_len"},
    {{"info", "M"}, "--batch", 1, 1048576, "1..1048576"},
    {{"plans"}, "--layers", 1, 1024, "1..1024"},
    {{"plans", "--layers", "8"}, "--kv", 1, 8, "1..L"},
    {{"eval", "M", "--data", "TEXT"}, "--context", 1, 64, "1..the model's max_seq_len"},
    {{"eval", "M"}, "--probes", 1, INT_MAX, "1..2147483647"},
    {{"init", "OUT", "--preset", "tiny"}, "--dim", 1, 65536, "D 1..65536"},
    {{"init", "OUT", "--preset", "tiny"}, "--hidden", 1, 262144, "H 1..262144"},
    {{"init", "OUT", "--preset", "tiny"}, "--layers", 1, 1024, "L 1..1024"},
    {{"init", "OUT", "--preset", "tiny"}, "--heads", 1, 65536, "N divides D"},
    {{"init", "OUT", "--preset", "tiny"}, "--kv-heads", 1, 65536, "K divides N"},
    {{"init", "OUT", "--preset", "tiny"}, "--vocab", 1, 4194304, "V 1..4194304"},
    {{"init", "OUT", "--preset", "tiny"}, "--seq", 1, 1048576, "S 1..1048576"},
    {{"init", "OUT", "--preset", "tiny"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"train", "OUT", "--preset", "tiny"}, "--stories", 1, 10000000, "1..10000000"},
    {{"train", "OUT", "--text", "TEXT", "--preset", "tiny"}, "--val-frac", kNone, kNo, "0..0.99"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--steps", 1, 100000000, "1..100000000"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--batch", 1, 4096, "1..4096"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--seq", 1, 1048576, "1..the model's context"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--lr", kNone, kNo, "at most 1"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny", "--steps", "100"}, "--warmup", 0, 100, "0..steps"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--weight-decay", kNone, kNo, "0..10"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--clip", kNone, kNo, "0..1000000"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny", "--steps", "100"}, "--eval-every", 0, 100, "0..steps"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--eval-windows", 1, 10000, "1..10000"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny", "--steps", "100"}, "--log-every", 0, 100, "0..steps"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--dim", 1, 65536, "D 1..65536"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--hidden-dim", 1, 262144, "H 1..262144"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--layers", 1, 1024, "L 1..1024"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--context", 1, 1048576, "C 1..1048576"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "--vocab", 1, 4194304, "1..4194304"},
    {{"train", "OUT", "--stories", "20", "--preset", "tiny"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"calibrate", "M", "-o", "OUT", "--shared", "2"}, "--sequences", 1, 4096, "1..4096"},
    {{"calibrate", "M", "-o", "OUT", "--shared", "2"}, "--tokens", 2, 64, "2..the model's max_seq_len"},
    {{"calibrate", "M", "-o", "OUT"}, "--shared", 1, 7, "1..L-1"},
    {{"calibrate", "M", "-o", "OUT"}, "--ratio", kNone, kNo, "below 1"},
    {{"calibrate", "M", "-o", "OUT", "--shared", "2"}, "--threshold", kNone, kNo, "-1..1"},
    {{"calibrate", "M", "-o", "OUT", "--shared", "2"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"tokenizer", "OUT", "--vocab", "300"}, "--stories", 1, 10000000, "1..10000000"},
    {{"tokenizer", "OUT", "--stories", "10"}, "--vocab", 259, 4194304, "259..4194304"},
    {{"bench", "decode", "--preset", "tiny"}, "--batch", 1, 65535, "1..65535"},
    {{"bench", "decode", "--preset", "tiny"}, "--prompt", 1, 64, "max_seq_len"},
    {{"bench", "decode", "--preset", "tiny"}, "-n", 0, 64, "max_seq_len"},
    {{"bench", "decode", "--preset", "tiny"}, "--repeats", 1, 1000, "1..1000"},
    {{"bench", "decode", "--preset", "tiny"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"bench", "converge", "--preset", "tiny", "--plan", "lckv:2"}, "-n", 1, 64, "1..the model's max_seq_len"},
    {{"bench", "converge", "--preset", "tiny", "--plan", "lckv:2", "-n", "8"}, "--max-iterations", 1, 8, "K 1..N"},
    {{"bench", "converge", "--preset", "tiny", "--plan", "lckv:2"}, "-s", kNone, kNo, "any 32-bit integer"},
    {{"bench", "throughput", "--preset", "tiny", "--budget", "1M"}, "--prompt", 1, 64, "max_seq_len"},
    {{"bench", "throughput", "--preset", "tiny", "--budget", "1M"}, "-n", 1, 64, "max_seq_len"},
    {{"bench", "throughput", "--preset", "tiny"}, "--batch", 1, 65535, "1..65535"},
    {{"bench", "throughput", "--preset", "tiny", "--budget", "1M"}, "--max-batch", 1, 65535, "1..65535"},
    {{"bench", "throughput", "--preset", "tiny", "--budget", "1M"}, "--repeats", 1, 1000, "1..1000"},
    {{"bench", "plans", "--preset", "tiny", "--prompt", "8", "-n", "8"}, "--batch", 1, 65535, "1..65535"},
    {{"bench", "plans", "--preset", "tiny", "-n", "8"}, "--prompt", 1, 64, "max_seq_len"},
    {{"bench", "plans", "--preset", "tiny", "--prompt", "8"}, "-n", 1, 64, "max_seq_len"},
    {{"bench", "plans", "--preset", "tiny", "--prompt", "8", "-n", "8"}, "--repeats", 1, 1000, "1..1000"},
    {{"bench", "plans", "--preset", "tiny", "--prompt", "8", "-n", "8"}, "--gemm-size", 1, 16384, "1..16384"},
    {{"bench", "prefill", "--preset", "tiny"}, "--batch", 1, 65535, "1..65535"},
    {{"bench", "prefill", "--preset", "tiny"}, "--prompt", 1, 64, "max_seq_len"},
    {{"bench", "prefill", "--preset", "tiny"}, "--repeats", 1, 1000, "1..1000"},
    {{"bench", "prefill", "--preset", "tiny"}, "--iterations", 1, 1024, "1..1024"},
    {{"chat", "M"}, "-n", 0, 1048576, "0..1048576"},
    {{"chat", "M"}, "-t", kNone, kNo, "0..100"},
    {{"chat", "M"}, "-p", kNone, kNo, "0..1"},
    {{"chat", "M"}, "-s", kNone, kNo, "any 32-bit integer"},
};

// Out of range, on either side, for the float options (their garbage is tested above too).
const std::vector<std::pair<size_t, std::vector<std::string>>> kFloatEdges = {
    {2, {"-0.5", "101", "1e39"}},        // generate -t
    {3, {"-0.1", "1.5"}},                // generate -p
    {20, {"-0.1", "1", "2"}},            // train --val-frac
    {24, {"0", "-1", "1.5", "1e30"}},    // train --lr
    {26, {"-1", "11"}},                  // train --weight-decay
    {27, {"-1", "1e7"}},                 // train --clip
    {40, {"0", "1", "-0.5", "2"}},       // calibrate --ratio
    {41, {"-1.5", "1.5"}},               // calibrate --threshold
    {kOptions.size() - 3, {"-0.5", "101", "1e39"}},  // chat -t
    {kOptions.size() - 2, {"-0.1", "1.5"}},          // chat -p
};

struct Paths {
    std::string dir, model, text, out;
};

const Paths& paths() {
    static const Paths p = [] {
        Paths q;
        q.dir = temp_path("cli_fuzz");
        std::filesystem::create_directories(q.dir);
        q.model = q.dir + "/m.kvs";
        q.text = q.dir + "/text.txt";
        q.out = q.dir + "/out.x";
        save_model(q.model, init_model(preset_config("tiny"), parse_plan("standard", 8), 3));
        std::ofstream text(q.text);
        for (int i = 0; i < 20; i++) text << "Once upon a time there was a text for the fuzz test. It is long enough.\n";
        return q;
    }();
    return p;
}

std::vector<std::string> expand(const std::vector<std::string>& command) {
    std::vector<std::string> args;
    for (const std::string& w : command)
        args.push_back(w == "M" ? paths().model : w == "OUT" ? paths().out : w == "TEXT" ? paths().text : w);
    return args;
}

// One refused run: exit 1, one error line containing `says`, no stdout, no output file.
void check_refused(std::vector<std::string> args, const std::string& says) {
    std::filesystem::remove(paths().out);
    const Run r = run_cli(args);
    std::string line;
    for (const std::string& a : args) line += " '" + printable(a) + "'";
    INFO("kvshare" << line << "\nexit " << r.rc << "\nstdout: " << r.out.substr(0, 300) << "\nstderr: " << r.err);
    CHECK(r.rc == 1);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.rfind("kvshare: error: ", 0) == 0);
    CHECK(r.err.find(says) != std::string::npos);
    CHECK(r.out.empty());
    CHECK_FALSE(std::filesystem::exists(paths().out));
}

}  // namespace

TEST_CASE("fuzz: every numeric option refuses hostile values with one line, and --help states its range", "[fuzz]") {
    for (const Option& o : kOptions) {
        std::vector<std::string> help = {o.command[0]};
        if (o.command[0] == "bench") help.push_back(o.command[1]);
        help.push_back("--help");
        const Run h = run_cli(help);
        INFO(help[0] << " " << (help.size() > 2 ? help[1] : "") << " --help, option " << o.option << ":\n" << h.out);
        CHECK(h.rc == 0);
        CHECK(h.out.find(o.help_says) != std::string::npos);

        for (const std::string& v : kGarbage) {
            // a list of integers may have spaces around and between them
            if (o.option == "--iterations" && v.find(' ') != std::string::npos) continue;
            std::vector<std::string> args = expand(o.command);
            args.push_back(o.option);
            args.push_back(v);
            check_refused(args, o.option);
        }
        if (o.lo <= o.hi)
            for (long v : {o.lo - 1, o.hi + 1}) {
                std::vector<std::string> args = expand(o.command);
                args.push_back(o.option);
                args.push_back(std::to_string(v));
                check_refused(args, std::to_string(o.lo) + ".." + std::to_string(o.hi));
            }
    }
    for (const auto& edge : kFloatEdges)
        for (const std::string& v : edge.second) {
            const Option& o = kOptions.at(edge.first);
            std::vector<std::string> args = expand(o.command);
            args.push_back(o.option);
            args.push_back(v);
            check_refused(args, o.option);
        }
    for (const std::string& v : kGarbage) check_refused({"stories", v}, "stories");
    for (const char* v : {"0", "-1"}) check_refused({"stories", v}, "1..2147483647");
    std::filesystem::remove_all(paths().dir);
}
