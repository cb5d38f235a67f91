// Number parsing and the command line's rules: the whole string is the number, every numeric
// option has a range, no empty or repeated option, no stray positional argument.
#include <catch2/catch.hpp>
#include "src/commands/args.h"
#include "src/util.h"
#include "tests/helpers.h"
#include <climits>
#include <cstdio>
#include <fstream>

TEST_CASE("parse_int takes the whole string and nothing else", "[args]") {
    CHECK(parse_int("42", "x") == 42);
    CHECK(parse_int("-7", "x") == -7);
    CHECK(parse_int("2147483647", "x") == INT_MAX);
    for (const std::string& bad : std::vector<std::string>{"", " 1", "1 ", "1x", "0x10", "1e9", "1.5", std::string("12\0" "34", 5), "--1"}) {
        INFO("'" << bad << "'");
        CHECK_THROWS_WITH(parse_int(bad, "x"), Catch::Contains("not an integer"));
    }
    CHECK_THROWS_WITH(parse_int("2147483648", "x"), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(parse_int("-99999999999999999999", "x"), Catch::Contains("out of range"));
}

TEST_CASE("parse_int_in and parse_float_in state the range", "[args]") {
    CHECK(parse_int_in("4096", "--batch", 1, 4096) == 4096);
    CHECK_THROWS_WITH(parse_int_in("4097", "--batch", 1, 4096), Catch::Equals("--batch must be 1..4096, got 4097"));
    CHECK_THROWS_WITH(parse_int_in("0", "--batch", 1, 4096), Catch::Equals("--batch must be 1..4096, got 0"));
    CHECK_THROWS_WITH(parse_int_in("1e9", "--batch", 1, 4096), Catch::Contains("not an integer (allowed: 1..4096)"));
    CHECK_THROWS_WITH(parse_int_in("99999999999999999999", "--batch", 1, 4096), Catch::Contains("must be 1..4096"));
    CHECK(parse_float_in("0.5", "-t", 0, 100) == 0.5f);
    // too small for a float is that tiny number, not "not a number"
    CHECK(parse_float_in("1e-45", "-t", 0, 100) >= 0.0f);
    CHECK(parse_float_in("1e-300", "-t", 0, 100) >= 0.0f);
    for (const char* bad : {"-1", "101", "1e39", "inf", "-inf"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_float_in(bad, "-t", 0, 100), Catch::Contains("-t must be 0..100"));
    }
    for (const char* bad : {"nan", "", "hot", "1,5"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_float_in(bad, "-t", 0, 100), Catch::Contains("not a number"));
    }
}

static Args parse(std::vector<std::string> words) {
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(&w[0]);
    return parse_args((int)argv.size(), argv.data(), 0, "kvshare test", {"--plan", "-i", "--batch", "-o"}, {"--flag"});
}

TEST_CASE("parse_args refuses empty, repeated and stray arguments", "[args]") {
    Args a = parse({"m.kvs", "--batch", "3", "-i", "", "--flag"});
    CHECK(a.get_int("--batch", 1, 1, 4) == 3);
    CHECK(a.get("-i", "x").empty());  // an empty prompt is a prompt
    CHECK_THROWS_WITH(a.get_int("--batch", 1, 1, 2), Catch::Contains("--batch must be 1..2, got 3"));
    CHECK(a.get_int("--missing", 7, 1, 4) == 7);  // the fallback is not range checked
    a.at_most_positional(1);
    CHECK_THROWS_WITH(parse({"--plan", ""}), Catch::Contains("--plan is given an empty value"));
    CHECK_THROWS_WITH(parse({"--batch", "1", "--batch", "2"}), Catch::Contains("given twice"));
    CHECK_THROWS_WITH(parse({"--nope"}), Catch::Contains("unknown option"));
    CHECK_THROWS_WITH(parse({"m.kvs", "out.plan"}).at_most_positional(1), Catch::Contains("unexpected argument 'out.plan'"));
}

TEST_CASE("input and output paths say what is wrong", "[args]") {
    const std::string dir = std::filesystem::temp_directory_path().string(), file = temp_path("args_input.txt");
    std::ofstream(file) << "x";
    check_input_file(file, "the file");
    CHECK_THROWS_WITH(check_input_file(dir, "MODEL"), Catch::Contains("is a directory"));
    CHECK_THROWS_WITH(check_input_file(temp_path("missing"), "MODEL"), Catch::Contains("no such file"));
    CHECK_THROWS_WITH(check_input_file(file + "/below", "MODEL"), Catch::Contains("no such file"));
    check_output_file(temp_path("new_output"), "OUT");
    CHECK_THROWS_WITH(check_output_file(dir, "OUT"), Catch::Contains("is a directory"));
    CHECK_THROWS_WITH(check_output_file(temp_path("no_folder") + "/out.kvs", "OUT"), Catch::Contains("does not exist"));
    CHECK_THROWS_WITH(read_text_file(file, "plan file", 0), Catch::Contains("more than the 0"));
    CHECK(read_text_file(file, "text") == "x");
    std::remove(file.c_str());
}
