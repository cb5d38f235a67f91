// bench throughput: the budget arithmetic, the memory measurement, the CSV and SVG writers,
// and a whole CPU run whose rows must respect the budget. No timing is asserted.
#include <catch2/catch.hpp>
#include "src/bench/common.h"
#include "src/bench/throughput.h"
#include "src/util.h"
#include "tests/helpers.h"
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

TEST_CASE("max_batch_for: the largest batch inside the budget", "[throughput]") {
    CHECK(max_batch_for(100, 10, 9, 1000) == 10);   // 10 + 10 * 9 = 100 fits exactly
    CHECK(max_batch_for(99, 10, 9, 1000) == 9);
    CHECK(max_batch_for(100, 10, 9, 4) == 4);       // the cap
    CHECK(max_batch_for(100, 101, 1, 1000) == 0);   // not even the fixed part fits
    CHECK(max_batch_for(100, 95, 9, 1000) == 0);    // the fixed part fits, one sequence does not
    CHECK(max_batch_for(100, 10, 0, 7) == 7);       // nothing grows with the batch
}

TEST_CASE("parse_bytes: sizes with K, M, G suffixes and clear errors", "[throughput]") {
    CHECK(parse_bytes("300000", "--budget") == 300000);
    CHECK(parse_bytes("4K", "--budget") == 4096);
    CHECK(parse_bytes("512M", "--budget") == 512ull << 20);
    CHECK(parse_bytes("1.5g", "--budget") == 3ull << 29);
    for (const char* bad : {"", "12X", "-1", "0", "M", "1e400", "2GG"}) {
        INFO(bad);
        CHECK_THROWS_WITH(parse_bytes(bad, "--budget"), Catch::Contains("--budget"));
    }
}

TEST_CASE("allocated_bytes(cpu) sees a large allocation come and go", "[throughput]") {
    const size_t before = allocated_bytes(Device::CPU);
    size_t during = 0;
    {
        std::vector<float> big(4u << 20, 1.0f);  // 16 MiB
        during = allocated_bytes(Device::CPU);
        CHECK(big[12345] == 1.0f);
    }
    const size_t after = allocated_bytes(Device::CPU);
    CHECK(during >= before + (16u << 20));
    CHECK(after < during - (15u << 20));
}

static ThroughputRow row(const std::string& plan, int batch, double prefill_s, double decode_s) {
    ThroughputRow r;
    r.plan = plan;
    r.kv_layers = 2;
    r.kv_bytes_per_token = 64;
    r.max_batch = 8;
    r.batch = batch;
    r.memory = 1000u * batch;
    r.prefill_s = prefill_s;
    r.decode_s = decode_s;
    r.gen = 10;
    return r;
}

TEST_CASE("ThroughputRow: decode and end-to-end tokens/s", "[throughput]") {
    ThroughputRow r = row("standard", 4, 1.0, 3.0);
    CHECK(r.decode_tok_s() == Approx(40.0 / 3.0));
    CHECK(r.total_tok_s() == Approx(10.0));  // 4 x 10 generated tokens in 4 s
}

TEST_CASE("throughput_csv and throughput_svg: one line per run, one polyline per plan", "[throughput]") {
    std::vector<ThroughputRow> rows = {row("standard", 1, 0.1, 1), row("standard", 2, 0.1, 1), row("cla:2", 1, 0.1, 1),
                                       row("cla:2", 4, 0.2, 1), row("a<b&c", 8, 0.2, 1)};
    const std::string csv = throughput_csv(rows);
    std::istringstream in(csv);
    std::string line;
    std::vector<std::string> lines;
    while (std::getline(in, line)) lines.push_back(line);
    REQUIRE(lines.size() == 6);
    CHECK(lines[0].rfind("plan,kv_layers,", 0) == 0);
    CHECK(lines[4].rfind("cla:2,2,64,8,4,4000,0.200000,40.000,33.333", 0) == 0);

    const std::string svg = throughput_svg(rows, "title <x>");
    CHECK(svg.rfind("<svg ", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    size_t polylines = 0;
    for (size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) polylines++;
    CHECK(polylines == 3);
    CHECK(svg.find("a&lt;b&amp;c") != std::string::npos);
    CHECK(svg.find("title &lt;x&gt;") != std::string::npos);
    CHECK(svg.find("<b") == std::string::npos);  // nothing unescaped from the names
}

// Runs the real command on a tiny random model and reads its CSV back.
static std::map<std::string, std::vector<std::string>> run_bench(std::vector<std::string> args) {
    const std::string csv = temp_path("throughput.csv");
    args.insert(args.begin(), "throughput");
    args.push_back("--csv");
    args.push_back(csv);
    std::vector<char*> argv;
    for (std::string& s : args) argv.push_back(&s[0]);
    REQUIRE(bench_throughput((int)argv.size(), argv.data()) == 0);
    std::ifstream f(csv);
    std::string line;
    std::getline(f, line);  // header
    std::map<std::string, std::vector<std::string>> by_plan;
    while (std::getline(f, line)) {
        auto fields = split(line, ',');
        REQUIRE(fields.size() == 9);
        by_plan[fields[0]] = fields;
    }
    std::remove(csv.c_str());
    return by_plan;
}

TEST_CASE("bench throughput on the CPU: every plan inside the budget, fewer KV layers fit more", "[throughput]") {
    const size_t budget = 1700u << 10;  // 1.66 MiB: the tiny preset fits a few sequences, not the cap
    auto rows = run_bench({"--preset", "tiny", "--plans", "standard cla:4 pizza-bottom:1", "--prompt", "8", "-n", "4",
                           "--budget", std::to_string(budget)});
    REQUIRE(rows.size() == 3);
    const int standard = std::stoi(rows["standard"][3]), cla4 = std::stoi(rows["cla:4"][3]),
              pizza = std::stoi(rows["pizza-bottom:1"][3]);
    INFO("max batch: standard " << standard << ", cla:4 " << cla4 << ", pizza-bottom:1 " << pizza);
    CHECK(standard >= 1);
    CHECK(standard < 64);  // the budget, not the cap, decided
    CHECK(cla4 > standard);
    CHECK(pizza >= cla4);
    for (auto& [plan, f] : rows) {
        INFO(plan);
        CHECK(std::stoi(f[4]) == std::stoi(f[3]));      // ran at its max batch
        CHECK(std::stoull(f[5]) <= budget);            // measured memory inside the budget
        CHECK(std::stod(f[8]) > 0);                    // it generated something
    }
    CHECK(rows["standard"][1] == "8");
    CHECK(rows["cla:4"][2] == std::to_string(2 * 2 * 24 * 4));  // 2 KV layers x K,V x kv_dim 24 x 4 bytes
}

TEST_CASE("bench throughput --batch runs every plan at that batch", "[throughput]") {
    auto rows = run_bench({"--preset", "tiny", "--plans", "standard yoco", "--prompt", "6", "-n", "3", "--batch", "3"});
    REQUIRE(rows.size() == 2);
    for (auto& [plan, f] : rows) {
        CHECK(f[3] == "-1");  // no search
        CHECK(f[4] == "3");
    }
    CHECK(std::stoull(rows["yoco"][5]) < std::stoull(rows["standard"][5]));  // half the cache, no W_K/W_V above
}
