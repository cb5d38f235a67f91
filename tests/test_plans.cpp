// Plans: the named plans against DESIGN.md's L = 8 table and a hand-made L = 12 table,
// chains, cycles, blocks, plan files and bad specs.
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include "src/model/plan.h"
#include <cstdio>
#include <algorithm>
#include <fstream>

static std::vector<int> map_of(const std::string& spec, int L) { return parse_plan(spec, L).source; }

static std::string blocks_of(const Plan& p) {
    std::string s;
    for (const Block& b : p.blocks) s += (s.empty() ? "" : " ") + std::to_string(b.first) + "-" + std::to_string(b.last);
    return s;
}

struct Row { const char* plan; std::vector<int> source; int kv; const char* blocks; };

TEST_CASE("named plans match DESIGN.md's L = 8 table", "[plans]") {
    const std::vector<Row> rows = {
        {"pizza-bottom:4", {0, 1, 2, 3, 3, 3, 3, 3}, 4, ""},
        {"pizza-middle:4", {0, 1, 2, 5, 5, 5, 5, 5}, 4, "3-5"},
        {"pizza-top:4", {0, 1, 2, 7, 7, 7, 7, 7}, 4, "3-7"},
        {"sandwich-middle:4", {0, 1, 4, 4, 4, 4, 4, 7}, 4, "2-4"},
        {"sandwich-top:4", {0, 1, 6, 6, 6, 6, 6, 7}, 4, "2-6"},
        {"lasagna-bottom:4", {0, 0, 2, 2, 4, 4, 6, 6}, 4, ""},
        {"cla:2", {0, 0, 2, 2, 4, 4, 6, 6}, 4, ""},
        {"lasagna-top:4", {1, 1, 3, 3, 5, 5, 7, 7}, 4, "0-1 2-3 4-5 6-7"},
        {"lckv:2", {0, 6, 6, 6, 6, 6, 6, 7}, 3, "1-6"},
        {"standard", {0, 1, 2, 3, 4, 5, 6, 7}, 8, ""},
        {"yoco", {0, 1, 2, 3, 3, 3, 3, 3}, 4, ""},
    };
    for (const Row& r : rows) {
        INFO("plan " << r.plan);
        Plan p = parse_plan(r.plan, 8);
        CHECK(p.source == r.source);
        CHECK(p.n_kv_layers() == r.kv);
        CHECK(blocks_of(p) == r.blocks);
    }
}

TEST_CASE("named plans for L = 12, worked out by hand", "[plans]") {
    const std::vector<Row> rows = {
        {"pizza-bottom:4", {0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3}, 4, ""},
        {"pizza-middle:4", {0, 1, 2, 7, 7, 7, 7, 7, 7, 7, 7, 7}, 4, "3-7"},
        {"pizza-top:4", {0, 1, 2, 11, 11, 11, 11, 11, 11, 11, 11, 11}, 4, "3-11"},
        {"sandwich-bottom:4", {0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 11}, 4, ""},
        {"sandwich-middle:4", {0, 1, 6, 6, 6, 6, 6, 6, 6, 6, 6, 11}, 4, "2-6"},
        {"sandwich-top:4", {0, 1, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11}, 4, "2-10"},
        {"sandwich-middle:5", {0, 1, 5, 5, 5, 5, 5, 5, 5, 5, 10, 11}, 5, "2-5"},
        {"lasagna-bottom:4", {0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9}, 4, ""},
        {"lasagna-middle:4", {1, 1, 1, 4, 4, 4, 7, 7, 7, 10, 10, 10}, 4, "0-1 3-4 6-7 9-10"},
        {"lasagna-top:4", {2, 2, 2, 5, 5, 5, 8, 8, 8, 11, 11, 11}, 4, "0-2 3-5 6-8 9-11"},
        {"lasagna-bottom:5", {0, 0, 0, 3, 3, 3, 6, 6, 8, 8, 10, 10}, 5, ""},  // uneven: 3 3 2 2 2
        {"cla:3", {0, 0, 0, 3, 3, 3, 6, 6, 6, 9, 9, 9}, 4, ""},
        {"cla:5", {0, 0, 0, 0, 0, 5, 5, 5, 5, 5, 10, 10}, 3, ""},
        {"yoco", {0, 1, 2, 3, 4, 5, 5, 5, 5, 5, 5, 5}, 6, ""},
        {"lckv:0", {11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11}, 1, "0-11"},
        {"lckv:2", {0, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11}, 3, "1-10"},
        {"lckv:3", {0, 1, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11}, 4, "2-10"},
        {"pizza-top:12", {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, 12, ""},
        {"sandwich-top:1", {11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11, 11}, 1, "0-11"},
    };
    for (const Row& r : rows) {
        INFO("plan " << r.plan);
        Plan p = parse_plan(r.plan, 12);
        CHECK(p.source == r.source);
        CHECK(p.n_kv_layers() == r.kv);
        CHECK(blocks_of(p) == r.blocks);
    }
    CHECK(map_of("lckv:3", 12) == map_of("sandwich-top:4", 12));
    CHECK(map_of("cla:3", 12) == map_of("lasagna-bottom:4", 12));
}

TEST_CASE("kv_slot points every layer at its source's slot", "[plans]") {
    Plan p = parse_plan("lckv:2", 8);
    CHECK(p.kv_layers == std::vector<int>{0, 6, 7});
    CHECK(p.kv_slot == std::vector<int>{0, 1, 1, 1, 1, 1, 1, 2});
    CHECK(p.strict(1));
    CHECK_FALSE(p.strict(6));   // layer 6 reads itself: causal
    CHECK_FALSE(p.strict(0));
}

TEST_CASE("explicit maps: chains resolve, cycles and bad maps are rejected", "[plans]") {
    CHECK(map_of("0,0,1,1", 4) == std::vector<int>{0, 0, 0, 0});
    CHECK(map_of("2,2,3,3", 4) == std::vector<int>{3, 3, 3, 3});  // 0 -> 2 -> 3
    Plan grown = parse_plan("1,3,2,3", 4);                          // 0 reads 1, which reads 3: one block 0-3
    CHECK(grown.source == std::vector<int>{3, 3, 2, 3});
    CHECK(blocks_of(grown) == "0-3");
    CHECK(blocks_of(parse_plan("2,1,2,5,4,5", 6)) == "0-2 3-5");
    CHECK_THROWS_WITH(parse_plan("1,0", 2), Catch::Contains("cycle"));
    CHECK_THROWS_WITH(parse_plan("0,0,2", 4), Catch::Contains("maps 3 layers"));
    CHECK_THROWS_WITH(parse_plan("0,4,2,3", 4), Catch::Contains("reads layer 4"));
    CHECK_THROWS_WITH(parse_plan("0,-1,2,3", 4), Catch::Contains("reads layer -1"));
    CHECK_THROWS_WITH(parse_plan("0,x,2,3", 4), Catch::Contains("not an integer"));
}

TEST_CASE("named plans reject arguments that do not fit the model", "[plans]") {
    CHECK_THROWS_WITH(parse_plan("pizza-bottom:0", 8), Catch::Contains("1..8"));
    CHECK_THROWS_WITH(parse_plan("pizza-bottom:9", 8), Catch::Contains("1..8"));
    CHECK_THROWS_WITH(parse_plan("lasagna-left:2", 8), Catch::Contains("bottom, middle or top"));
    CHECK_THROWS_WITH(parse_plan("lckv:8", 8), Catch::Contains("0..7"));
    CHECK_THROWS_WITH(parse_plan("cla:0", 8), Catch::Contains("group size"));
    CHECK_THROWS_WITH(parse_plan("cla", 8), Catch::Contains("needs ':g'"));
    CHECK_THROWS_WITH(parse_plan("yoco", 1), Catch::Contains("at least 2"));
    CHECK_THROWS_WITH(parse_plan("pizza", 8), Catch::Contains("unknown"));
    CHECK_THROWS_WITH(parse_plan("banana:3", 8), Catch::Contains("unknown"));
    CHECK_THROWS(parse_plan("", 8));
}

TEST_CASE("diag=all and plan files round-trip", "[plans]") {
    Plan p = parse_plan("cla:2,diag=all", 8);
    CHECK(p.diag_all);
    CHECK(p.strict(0));
    CHECK(p.spec() == "0,0,2,2,4,4,6,6,diag=all");
    const std::string path = temp_path("test_plan.txt");
    write_plan_file(path, p, "written by a test\nsecond comment line");
    Plan q = parse_plan(path, 8);
    CHECK(q.source == p.source);
    CHECK(q.diag_all);
    CHECK_THROWS_WITH(parse_plan(path, 6), Catch::Contains("maps 8 layers"));
    std::ofstream(temp_path("empty_plan.txt")) << "# nothing here\n";
    CHECK_THROWS_WITH(parse_plan(temp_path("empty_plan.txt"), 8), Catch::Contains("holds no plan"));
    std::remove(path.c_str());
}

TEST_CASE("named_plans lists only plans that fit, filtered by KV count", "[plans]") {
    for (const std::string& name : named_plans(8, 4)) CHECK(parse_plan(name, 8).n_kv_layers() == 4);
    auto all = named_plans(8, 0);
    CHECK(std::find(all.begin(), all.end(), "lckv:2") != all.end());
    CHECK(std::find(all.begin(), all.end(), "yoco") != all.end());
}
