// bench gemm: the shapes it takes from a preset (worked out by hand), its options, and whole
// runs on the tiny preset whose table must be complete, with and without OpenBLAS. No
// timing is asserted: only that every measured rate is a positive number.
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include "src/bench/gemm.h"
#include "src/util.h"
#include <cmath>
#include <string>
#include <vector>

namespace {

GemmBenchOptions parse(std::vector<std::string> words) {
    words.insert(words.begin(), "gemm");
    std::vector<char*> argv;
    for (std::string& w : words) argv.push_back(&w[0]);
    return parse_gemm_bench((int)argv.size(), argv.data());
}

}  // namespace

TEST_CASE("gemm_shapes: a layer's five projections, from the preset's config", "[bench_gemm]") {
    // SmolLM2-135M: dim 576, 9 heads of 64, 3 KV heads (kv_dim 192), hidden 1536
    const std::vector<GemmShape> s = gemm_shapes("smollm2-135m");
    REQUIRE(s.size() == 5);
    const char* names[] = {"q", "kv", "o", "up", "down"};
    const int k[] = {576, 576, 576, 576, 1536}, d[] = {576, 192, 576, 1536, 576};
    for (int i = 0; i < 5; i++) {
        INFO(names[i]);
        CHECK(s[i].model == "smollm2-135m");
        CHECK(s[i].name == names[i]);
        CHECK(s[i].k == k[i]);
        CHECK(s[i].d == d[i]);
    }
    // TinyLlama: dim 2048, 32 heads of 64, 4 KV heads (kv_dim 256), hidden 5632
    const std::vector<GemmShape> t = gemm_shapes("tinyllama");
    CHECK(t[1].d == 256);
    CHECK(t[4].k == 5632);
    CHECK_THROWS_WITH(gemm_shapes("gpt5"), Catch::Contains("unknown preset"));
}

TEST_CASE("bench gemm options: defaults, lists, and every bad value refused", "[bench_gemm]") {
    const GemmBenchOptions d = parse({});
    CHECK(d.models == std::vector<std::string>{"smollm2-135m", "stories110M", "tinyllama"});
    CHECK(d.rows == std::vector<int>{1, 16, 64, 512});
    CHECK(d.threads == std::vector<int>{1, 2});
    CHECK(d.products == std::vector<GemmProduct>{GemmProduct::Forward});
    CHECK(d.naive);
    CHECK_FALSE(d.help);

    const GemmBenchOptions o = parse({"--models", "tiny demo", "--rows", "3 7", "--threads", "1", "--products", "dw forward",
                                      "--repeats", "2", "--no-naive", "--blas", "none"});
    CHECK(o.models == std::vector<std::string>{"tiny", "demo"});
    CHECK(o.rows == std::vector<int>{3, 7});
    CHECK(o.threads == std::vector<int>{1});
    CHECK(o.products == std::vector<GemmProduct>{GemmProduct::BackwardW, GemmProduct::Forward});
    CHECK(o.repeats == 2);
    CHECK_FALSE(o.naive);
    CHECK(o.blas == "none");
    CHECK(parse({"--help"}).help);

    CHECK_THROWS_WITH(parse({"--models", "tiny gpt5"}), Catch::Contains("unknown preset"));
    CHECK_THROWS_WITH(parse({"--models", " "}), Catch::Contains("empty"));
    CHECK_THROWS_WITH(parse({"--rows", "0"}), Catch::Contains("1..65536"));
    CHECK_THROWS_WITH(parse({"--rows", "16 x"}), Catch::Contains("not an integer"));
    CHECK_THROWS_WITH(parse({"--threads", "0"}), Catch::Contains("1..1024"));
    CHECK_THROWS_WITH(parse({"--products", "forward dq"}), Catch::Contains("unknown product"));
    CHECK_THROWS_WITH(parse({"--repeats", "0"}), Catch::Contains("1..1000"));
    CHECK_THROWS_WITH(parse({"--size", "3"}), Catch::Contains("--size"));
    CHECK_THROWS_WITH(parse({"extra"}), Catch::Contains("extra"));
}

TEST_CASE("bench gemm runs every case and prints one line each, with OpenBLAS or without", "[bench_gemm]") {
    GemmBenchOptions o;
    o.models = {"tiny"};
    o.rows = {1, 5};
    o.threads = {1, 2};
    o.products = {GemmProduct::Forward, GemmProduct::BackwardX, GemmProduct::BackwardW};
    o.repeats = 1;
    o.min_seconds = 0;

    SECTION("without OpenBLAS: it says why, and the baseline columns are empty") {
        const OpenBlas none = load_openblas("/nonexistent/libopenblas.so");
        REQUIRE_FALSE(none.ok);
        CHECK_THAT(none.why, Catch::Contains("not found") && Catch::Contains("/nonexistent/libopenblas.so"));
        CHECK_THAT(load_openblas("none").why, Catch::Contains("--blas none"));
        const std::vector<GemmRow> rows = run_gemm_bench(o, none);
        REQUIRE(rows.size() == 2 * 5 * 2 * 3);  // threads x projections x rows x products
        for (const GemmRow& r : rows) {
            CHECK(r.naive > 0);
            CHECK(r.blocked > 0);
            CHECK(std::isfinite(r.blocked));
            CHECK(r.blas == 0);
        }
        CHECK(rows[0].threads == 1);
        CHECK(rows.back().threads == 2);
        const std::string table = format_gemm_table(rows, none);
        CHECK_THAT(table, Catch::Contains("OpenBLAS: not found"));
        CHECK(count_occurrences(table, "\n1       tiny") == 30);
        CHECK(count_occurrences(table, "\n2       tiny") == 30);
        CHECK(count_occurrences(table, "headline:") == 0);  // no ratio to OpenBLAS, and no row of 64 or more
    }
    SECTION("with OpenBLAS where it is installed: its column filled, and the summary at 64 rows") {
        const OpenBlas blas = load_openblas("");
        if (!blas.ok) {
            WARN("OpenBLAS is not installed: " << blas.why);
            return;
        }
        o.rows = {64};
        o.threads = {1};
        o.naive = false;
        const std::vector<GemmRow> rows = run_gemm_bench(o, blas);
        REQUIRE(rows.size() == 5 * 3);
        for (const GemmRow& r : rows) {
            CHECK(r.naive == 0);
            CHECK(r.blocked > 0);
            CHECK(r.blas > 0);
        }
        const std::string table = format_gemm_table(rows, blas);
        CHECK_THAT(table, Catch::Contains("OpenBLAS: libopenblas"));
        for (const char* p : {"forward", "dx", "dw"}) {
            INFO(p);
            CHECK_THAT(table, Catch::Contains(std::string("1 thread, ") + p + ", n >= 64: blocked/openblas lowest"));
            CHECK_THAT(table, Catch::Contains(std::string("headline: gemm_cpu_") + p + "_t1_min_pct_openblas_n64plus"));
        }
    }
}
