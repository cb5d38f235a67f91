// The project's JSON reader and writer (src/formats/json.h): values, escapes and numbers as
// RFC 8259 has them, every malformed text a clear error with its place, and a round trip.
#include <catch2/catch.hpp>
#include "src/formats/json.h"
#include <string>

static Json parse(const std::string& s) { return parse_json(s, "test"); }

TEST_CASE("json: values, nesting and member order", "[json]") {
    const Json v = parse(R"( {"a": 1, "b": [true, false, null, "x"], "c": {"d": -2.5e3}, "e": []} )");
    REQUIRE(v.is(Json::Type::Object));
    REQUIRE(v.members.size() == 4);
    CHECK(v.members[0].first == "a");
    CHECK(v.members[3].first == "e");
    CHECK(v.find("a")->as_int("a") == 1);
    const Json& b = *v.find("b");
    REQUIRE(b.items.size() == 4);
    CHECK(b.items[0].as_bool("b0"));
    CHECK_FALSE(b.items[1].as_bool("b1"));
    CHECK(b.items[2].is(Json::Type::Null));
    CHECK(b.items[3].as_string("b3") == "x");
    CHECK(v.find("c")->find("d")->as_number("d") == -2500.0);
    CHECK(v.find("e")->items.empty());
    CHECK(v.find("zz") == nullptr);
    CHECK(parse("7").as_int("n") == 7);
    CHECK(parse(" \"s\" ").as_string("s") == "s");
}

TEST_CASE("json: string escapes decode to UTF-8, surrogate pairs included", "[json]") {
    CHECK(parse(R"("a\"b\\c\/d\b\f\n\r\t")").text == "a\"b\\c/d\b\f\n\r\t");
    CHECK(parse(R"("\u00e9")").text == "\xC3\xA9");             // é
    CHECK(parse(R"("\u65e5")").text == "\xE6\x97\xA5");         // 日
    CHECK(parse(R"("\ud83d\ude80")").text == "\xF0\x9F\x9A\x80");  // U+1F680 rocket, from a surrogate pair
    CHECK(parse("\"raw \xC3\xA9 \xF0\x9F\x9A\x80\"").text == "raw \xC3\xA9 \xF0\x9F\x9A\x80");
}

TEST_CASE("json: integers read exactly, floats by their text", "[json]") {
    CHECK(parse("18446744073709551615").as_uint64("n") == 18446744073709551615ull);  // 2^64 - 1: no double rounding
    CHECK(parse("9007199254740993").as_int("n") == 9007199254740993LL);              // 2^53 + 1
    CHECK(parse("-0").as_int("n") == 0);
    CHECK(parse("1e-05").as_number("x") == 1e-05);
    CHECK_THROWS_WITH(parse("7.0").as_int("hidden_size"), Catch::Contains("hidden_size must be an integer"));
    CHECK_THROWS_WITH(parse("1e3").as_int("n"), Catch::Contains("must be an integer"));
    CHECK_THROWS_WITH(parse("-1").as_uint64("offset"), Catch::Contains("non-negative"));
    CHECK_THROWS_WITH(parse("18446744073709551616").as_uint64("offset"), Catch::Contains("out of range"));
    CHECK_THROWS_WITH(parse("\"7\"").as_int("n"), Catch::Contains("not a string"));
}

TEST_CASE("json: malformed text is one error naming the place", "[json]") {
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"", "unexpected end"},
        {"{", "expected a key"},
        {"{\"a\" 1}", "expected ':'"},
        {"{\"a\": 1,}", "expected a key"},
        {"[1, 2", "expected ']'"},
        {"[1 2]", "expected ']'"},
        {"{\"a\": 1} x", "text after"},
        {"{\"a\": 1, \"a\": 2}", "duplicate key \"a\""},
        {"tru", "unknown word"},
        {"nul", "unknown word"},
        {"01", "text after"},
        {"-", "unexpected character"},
        {"1.", "digits after '.'"},
        {"1e", "digits in its exponent"},
        {"1e999", "out of range"},
        {"\"abc", "unterminated"},
        {"\"a\nb\"", "control character"},
        {"\"\\x\"", "bad escape"},
        {"\"\\u12\"", "bad \\u escape"},
        {"\"\\ud83d\"", "lone high surrogate"},
        {"\"\\ude80\"", "lone low surrogate"},
        {"\"\xff\"", "invalid UTF-8"},
        {"\"\xC0\xAF\"", "invalid UTF-8"},  // an overlong '/'
        {"\"\xED\xA0\x80\"", "invalid UTF-8"},  // a surrogate written in UTF-8
        {"'a'", "unexpected character"},
        {std::string(65, '[') + std::string(65, ']'), "nesting deeper than 64"},
        {std::string(100000, '['), "nesting deeper than 64"},
    };
    for (const auto& [text, why] : bad) {
        INFO(text.substr(0, 40));
        CHECK_THROWS_WITH(parse(text), Catch::Contains(why) && Catch::Contains("test is not valid JSON") && Catch::Contains("line"));
    }
    CHECK_THROWS_WITH(parse("{\n  \"a\": 1,\n  \"b\": x\n}"), Catch::Contains("line 3, column 8"));
    CHECK_NOTHROW(parse(std::string(64, '[') + std::string(64, ']')));
}

TEST_CASE("json: typed access names the value and its type", "[json]") {
    const Json v = parse(R"({"n": "x", "b": 1, "s": 2})");
    CHECK_THROWS_WITH(v.find("n")->as_number("config.json: rope_theta"), Catch::Contains("config.json: rope_theta must be a number, not a string"));
    CHECK_THROWS_WITH(v.find("b")->as_bool("flag"), Catch::Contains("flag must be true or false, not a number"));
    CHECK_THROWS_WITH(v.find("s")->as_string("name"), Catch::Contains("name must be a string, not a number"));
}

TEST_CASE("json: what the writer writes reads back the same", "[json]") {
    Json o = Json::object();
    o.set("int", Json::of(32000));
    o.set("theta", Json::of(10000.0));
    o.set("eps", Json::of((double)1e-5f));
    o.set("name", Json::of("a \"quoted\"\n\ttab \x01 \xC3\xA9"));
    o.set("list", Json::array().add(Json::of(1)).add(Json::of(true)).add(Json::null()));
    o.set("empty", Json::object());
    o.set("int", Json::of(7));  // replaces, keeps its place
    for (int indent : {0, 2}) {
        const std::string text = to_json(o, indent);
        INFO(text);
        const Json r = parse(text);
        REQUIRE(r.members.size() == 6);
        CHECK(r.members[0].first == "int");
        CHECK(r.find("int")->as_int("int") == 7);
        CHECK(r.find("theta")->text == "10000.0");   // stays a float for Python readers
        CHECK(r.find("eps")->text == "1e-05");       // the fewest digits that give back the float
        CHECK((float)r.find("eps")->as_number("eps") == 1e-5f);
        CHECK(r.find("name")->as_string("name") == "a \"quoted\"\n\ttab \x01 \xC3\xA9");
        CHECK(r.find("list")->items.size() == 3);
        CHECK(r.find("empty")->members.empty());
    }
    CHECK(to_json(o, 0).find('\n') == std::string::npos);
    CHECK(to_json(o, 2).find("\n  \"theta\": 10000.0,\n") != std::string::npos);
}
