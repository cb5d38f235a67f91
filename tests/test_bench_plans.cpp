// bench plans and bench prefill: the decode byte count (checked against numbers worked out
// by hand from the config), layer passes, argument parsing, and whole CPU runs on the tiny
// preset whose rows must be complete and positive. No timing is asserted.
#include <catch2/catch.hpp>
#include "src/bench/plans.h"
#include "src/util.h"
#include <cmath>
#include <string>
#include <vector>

TEST_CASE("decode_bytes: weights once plus the visible K/V cache, worked out by hand", "[bench_plans]") {
    // tiny: dim 48, hidden 100, 8 layers, 4 heads of 12, 2 KV heads (kv_dim 24), vocab 259.
    // cla:2 keeps 4 KV layers. Batch 2, prompt 5, 3 decode steps.
    const Config c = preset_config("tiny");
    const Plan p = parse_plan("cla:2", 8);
    REQUIRE(p.n_kv_layers() == 4);
    const size_t per_layer = 48 + 48             // the two RMSNorm weights
                             + 48 * 48 + 48 * 48 // W_Q (48 x 48) and W_O (48 x 48)
                             + 3 * 100 * 48;     // W1, W3 (100 x 48) and W2 (48 x 100)
    const size_t kv_weights = 4 * 2 * 24 * 48;   // W_K and W_V (24 x 48) of the 4 KV layers
    const size_t floats = 8 * per_layer + kv_weights + 48 /* final norm */ + 259 * 48 /* classifier */
                          + 2 * 48 /* the batch's embedding rows */;
    CHECK(floats == 174624);
    const size_t cache_per_position = 2 * 4 * 2 * 24 * 4;  // 2 sequences x 4 KV layers x K,V x kv_dim x 4 bytes
    // steps see 6, 7 and 8 positions
    CHECK(decode_step_bytes(c, 4, 2, 6) == floats * 4 + 6 * cache_per_position);
    CHECK(decode_bytes(c, 4, 2, 5, 3) == 3 * floats * 4 + (6 + 7 + 8) * cache_per_position);
    CHECK(decode_bytes(c, 4, 2, 5, 3) == 2127744);
    CHECK(decode_bytes(c, 4, 2, 5, 0) == 0);
}

TEST_CASE("decode_step_bytes and decode_step_flops agree with the weights a model allocates", "[bench_plans]") {
    for (bool tied : {true, false}) {
        Config c = preset_config("tiny");
        c.shared_classifier = tied;
        for (const char* spec : {"standard", "yoco", "lckv:3"}) {
            INFO(spec << (tied ? " tied" : " untied"));
            Model m;
            m.config = c;
            m.plan = parse_plan(spec, c.n_layers);
            allocate_weights(m);
            size_t weights = m.n_params() * sizeof(float);
            // the step reads the whole classifier and only 3 embedding rows: with an untied
            // classifier the full embedding table is not read
            if (!tied) weights -= (size_t)c.vocab_size * c.dim * sizeof(float);
            CHECK(decode_step_bytes(c, m.plan.n_kv_layers(), 3, 0) == weights + 3 * c.dim * sizeof(float));
            // every weight it reads is a matmul weight but the norms; with no positions there
            // is no attention
            const size_t matmul = weights / sizeof(float) - (size_t)(2 * c.n_layers + 1) * c.dim;
            CHECK(decode_step_flops(c, m.plan.n_kv_layers(), 3, 0) == 3 * 2 * matmul);
        }
    }
}

TEST_CASE("decode_flops: 2 per weight multiply-add plus attention, worked out by hand", "[bench_plans]") {
    // tiny (see above), cla:2 with 4 KV layers, batch 2
    const Config c = preset_config("tiny");
    const size_t matmul_weights = 8 * (48 * 48 + 48 * 48 + 3 * 100 * 48)  // W_Q, W_O, W1, W2, W3
                                  + 4 * 2 * 24 * 48                      // W_K, W_V of 4 KV layers
                                  + 259 * 48;                            // classifier
    CHECK(matmul_weights == 173712);
    const size_t attention_per_position = 8 * 2 * 2 * 48;  // 8 layers, q.k and sum of V, 4 heads x 12
    CHECK(decode_step_flops(c, 4, 2, 6) == 2 * (2 * matmul_weights + 6 * attention_per_position));
    CHECK(decode_step_flops(c, 4, 2, 6) == 713280);
    // steps see 6, 7 and 8 positions
    CHECK(decode_flops(c, 4, 2, 5, 3) == 3 * 2 * 2 * matmul_weights + 2 * (6 + 7 + 8) * attention_per_position);
    CHECK(decode_flops(c, 4, 2, 5, 3) == 2149056);
    CHECK(decode_flops(c, 4, 2, 5, 0) == 0);
}

TEST_CASE("cpu_gemm_gflops: a positive rate, and bad sizes are refused", "[bench_plans]") {
    const double g = cpu_gemm_gflops(48, 2);
    CHECK(g > 0);
    CHECK(std::isfinite(g));
    CHECK_THROWS_WITH(cpu_gemm_gflops(0, 2), Catch::Contains("size >= 1"));
    CHECK_THROWS_WITH(cpu_gemm_gflops(48, 0), Catch::Contains("runs >= 1"));
}

TEST_CASE("prefill_layer_passes: layers outside blocks once, block layers T times", "[bench_plans]") {
    // the counts of walkthrough chapter 3.7, for 8 layers and T = 9
    CHECK(prefill_layer_passes(parse_plan("standard", 8), 9) == 8);
    CHECK(prefill_layer_passes(parse_plan("cla:2", 8), 9) == 8);
    CHECK(prefill_layer_passes(parse_plan("pizza-top:4", 8), 9) == 3 + 5 * 9);
    CHECK(prefill_layer_passes(parse_plan("lckv:2", 8), 9) == 1 + 6 * 9 + 1);
    CHECK(prefill_layer_passes(parse_plan("lasagna-top:4", 8), 9) == 4 * 2 * 9);
    CHECK(prefill_layer_passes(parse_plan("lckv:2", 8), 1) == 8);  // one iteration: one pass
}

TEST_CASE("parse_int_list and parse_devices", "[bench_plans]") {
    CHECK(parse_int_list("1 2 4 9", "--iterations") == std::vector<int>{1, 2, 4, 9});
    CHECK(parse_int_list("  3 ", "--iterations") == std::vector<int>{3});
    for (const char* bad : {"", "  ", "0", "1 -2", "2x", "1,2"}) {
        INFO("'" << bad << "'");
        CHECK_THROWS_WITH(parse_int_list(bad, "--iterations"), Catch::Contains("--iterations"));
    }
    CHECK(parse_devices("cpu") == std::vector<Device>{Device::CPU});
    CHECK_THROWS_WITH(parse_devices("tpu"), Catch::Contains("unknown device"));
    if (!cuda_available(nullptr)) {
        CHECK_THROWS_WITH(parse_devices("cuda"), Catch::Contains("--device cuda"));
        CHECK_THROWS_WITH(parse_devices("both"), Catch::Contains("--device both"));
    } else {
        CHECK(parse_devices("both") == std::vector<Device>{Device::CPU, Device::CUDA});
    }
}

static PlanBenchOptions parse(const std::string& which, std::vector<std::string> args) {
    args.insert(args.begin(), which);
    std::vector<char*> argv;
    for (std::string& s : args) argv.push_back(&s[0]);
    return parse_plan_bench((int)argv.size(), argv.data(), which);
}

TEST_CASE("parse_plan_bench: defaults, and one clear error per bad input", "[bench_plans]") {
    PlanBenchOptions o = parse("plans", {"--preset", "tiny", "--prompt", "8", "-n", "16"});
    REQUIRE(o.plans.size() == 5);
    CHECK(o.plans[0].name == "standard");
    CHECK(o.plans[3].name == "sandwich-middle:4");  // L/2 of 8 layers
    CHECK(o.plans[4].name == "lckv:2");
    CHECK(o.devices == std::vector<Device>{Device::CPU});
    CHECK((o.batch == 1 && o.prompt == 8 && o.steps == 16 && o.repeats == 5));
    CHECK(o.copy_bytes == (size_t)256 << 20);
    CHECK(o.gemm_size == 0);  // the device's default
    CHECK(o.iterations.empty());  // bench prefill's option
    CHECK(o.models.preset);
    CHECK(o.models.name == "tiny");

    o = parse("prefill", {"--preset", "tiny", "--plans", "yoco lckv:3", "--batch", "2"});
    REQUIRE(o.plans.size() == 2);
    CHECK(o.plans[1].name == "lckv:3");
    CHECK((o.batch == 2 && o.prompt == 64 && o.steps == 0 && o.repeats == 3));  // 64 fits tiny's context
    CHECK(o.iterations == std::vector<int>{1, 2, 4, 9});

    struct Bad {
        const char* which;
        std::vector<std::string> args;
        const char* says;
    };
    const std::vector<Bad> bad = {
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--plans", "standard banana"}, "unknown"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--plans", " "}, "--plans is empty"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "0"}, "at least 1"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--batch", "0"}, "at least 1"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--repeats", "two"}, "not an integer"},
        {"plans", {"--preset", "tiny"}, "exceeds the context"},  // 32 + 64 > 64
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--copy-size", "lots"}, "not a size"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--gemm-size", "0"}, "--gemm-size must be at least 1"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--gemm-size", "big"}, "not an integer"},
        {"prefill", {"--preset", "tiny", "--gemm-size", "64"}, "unknown option"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--iterations", "2"}, "unknown option"},
        {"plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--device", "tpu"}, "unknown device"},
        {"plans", {"--preset", "nope"}, "unknown preset"},
        {"plans", {"--prompt", "8"}, "MODEL"},
        {"plans", {"m.kvs", "--preset", "tiny"}, "not both"},
        {"prefill", {"--preset", "tiny", "--iterations", "1 0"}, "at least 1"},
        {"prefill", {"--preset", "tiny", "--iterations", ""}, "empty"},
        {"prefill", {"--preset", "tiny", "-n", "8"}, "unknown option"},
        {"prefill", {"--preset", "tiny", "--prompt", "65"}, "exceeds the context"},
    };
    for (const Bad& b : bad) {
        std::string line = b.which;
        for (const std::string& a : b.args) line += " '" + a + "'";
        INFO(line);
        CHECK_THROWS_WITH(parse(b.which, b.args), Catch::Contains(b.says));
    }
}

TEST_CASE("bench plans on the CPU: one complete row per plan, rates positive", "[bench_plans]") {
    PlanBenchOptions o = parse("plans", {"--preset", "tiny", "--plans", "standard cla:4 lckv:2", "--prompt", "6", "-n",
                                         "4", "--repeats", "1", "--copy-size", "4M", "--gemm-size", "64"});
    CHECK(o.gemm_size == 64);
    const DecodeTable t = run_decode_table(o);
    REQUIRE(t.ceilings.size() == 1);
    CHECK(t.ceilings[0].device == Device::CPU);
    CHECK(t.ceilings[0].gbs > 0);
    CHECK(t.ceilings[0].gflops > 0);
    CHECK_THAT(t.ceilings[0].gemm_how, Catch::Contains("64^3"));
    REQUIRE(t.rows.size() == 3);
    const int kv[] = {8, 2, 3};
    for (size_t i = 0; i < t.rows.size(); i++) {
        const DecodeRow& r = t.rows[i];
        INFO(r.plan);
        CHECK(r.plan == o.plans[i].name);
        CHECK(r.device == Device::CPU);
        CHECK(r.kv_layers == kv[i]);
        CHECK(r.prefill_tok_s > 0);
        CHECK(r.decode_tok_s > 0);
        CHECK(r.gbs > 0);
        CHECK(r.ceiling_gbs == t.ceilings[0].gbs);
        CHECK(r.step_bytes == decode_bytes(o.models.config, kv[i], 1, 6, 4) / 4);
        CHECK(r.gflops > 0);
        CHECK(r.ceiling_gflops == t.ceilings[0].gflops);
        CHECK(r.step_flops == decode_flops(o.models.config, kv[i], 1, 6, 4) / 4);
    }
    CHECK(t.rows[1].step_bytes < t.rows[0].step_bytes);  // fewer K/V weights and cache
    CHECK(t.rows[1].step_flops < t.rows[0].step_flops);  // no K/V projections in 6 of 8 layers
    CHECK(t.rows[0].calls == 0);  // no runtime calls, and no host time headline, on the CPU
    const std::vector<std::string> lines = decode_headlines(o, t);
    CHECK(lines.size() == 2);
    for (const std::string& line : lines) CHECK(line.find("host_us") == std::string::npos);
}

TEST_CASE("bench plans: the CUDA decode options and the headline lines for make gpu-report", "[bench_plans]") {
    PlanBenchOptions o = parse("plans", {"--preset", "tiny", "--prompt", "8", "-n", "8"});
    CHECK((o.cuda.graphs && o.cuda.fused));
    o = parse("plans", {"--preset", "tiny", "--prompt", "8", "-n", "8", "--no-graphs", "--unfused"});
    CHECK((!o.cuda.graphs && !o.cuda.fused));
    CHECK_THROWS_WITH(parse("prefill", {"--preset", "tiny", "--unfused"}), Catch::Contains("--unfused"));

    // A table as a GPU run with --device both would fill it: standard's row per device.
    o.devices = {Device::CPU, Device::CUDA};
    DecodeTable t;
    DecodeRow cpu, yoco, standard;
    cpu.plan = "standard";
    cpu.device = Device::CPU;
    cpu.gbs = 9;
    cpu.ceiling_gbs = 10;
    cpu.decode_tok_s = 55;
    yoco.plan = "yoco";
    yoco.device = Device::CUDA;
    yoco.gbs = 1000;
    yoco.ceiling_gbs = 4000;
    standard = yoco;
    standard.plan = "standard";
    standard.gbs = 3321.5;
    standard.decode_tok_s = 801.25;
    standard.host_us = 12.34;
    t.rows = {cpu, yoco, standard};
    const std::vector<std::string> want = {"headline: decode_b1_tiny_cpu_tok_s 55 tok/s",
                                           "headline: decode_b1_tiny_cpu_pct_copy 90 %",
                                           "headline: decode_b1_tiny_tok_s 801.2 tok/s",
                                           "headline: decode_b1_tiny_pct_copy 83.04 %",
                                           "headline: decode_b1_tiny_host_us_per_step 12.34 us"};
    CHECK(decode_headlines(o, t) == want);
    // the CPU alone: no host time per step
    o.devices = {Device::CPU};
    CHECK(decode_headlines(o, t).size() == 2);
}

TEST_CASE("bench prefill on the CPU: token by token, one pass or each T, and the ratios", "[bench_plans]") {
    PlanBenchOptions o = parse("prefill", {"--preset", "tiny", "--plans", "cla:2 lckv:2", "--prompt", "8",
                                           "--iterations", "1 3", "--repeats", "1"});
    std::vector<double> standard_s;
    const std::vector<PrefillRow> rows = run_prefill_table(o, &standard_s);
    REQUIRE(standard_s.size() == 1);
    CHECK(standard_s[0] > 0);  // timed although standard is not in the list
    REQUIRE(rows.size() == 5);  // cla:2: token by token, one pass; lckv:2: token by token, T=1, T=3
    const char* modes[] = {"token by token", "one pass", "token by token", "T=1", "T=3"};
    const char* passes[] = {"8/token", "8", "8/token", "8", "20"};  // lckv:2 at T=3: 1 + 6 x 3 + 1
    for (size_t i = 0; i < rows.size(); i++) {
        const PrefillRow& r = rows[i];
        INFO(r.plan << " " << r.mode);
        CHECK(r.plan == (i < 2 ? "cla:2" : "lckv:2"));
        CHECK(r.mode == modes[i]);
        CHECK(r.passes == passes[i]);
        CHECK(r.seconds > 0);
        CHECK(r.tok_s > 0);
        CHECK(r.vs_token_by_token > 0);
        CHECK(r.vs_standard == Approx(r.seconds / standard_s[0]));
    }
    CHECK(rows[0].vs_token_by_token == 1.0);
    CHECK(rows[2].vs_token_by_token == 1.0);
    CHECK(rows[4].iterations == 3);
}

TEST_CASE("headline lines: one word for the key, a plain number, the unit", "[bench_plans]") {
    // the format bench/gpu-report.sh collects (its summary reads "headline: KEY VALUE UNIT")
    CHECK(headline_line("gemm_best_pct_cublas_4096", 87.34, "%") == "headline: gemm_best_pct_cublas_4096 87.34 %");
    CHECK(headline_line("throughput_stories110M_cla:2_vs_standard", 1.8049, "x") ==
          "headline: throughput_stories110M_cla_2_vs_standard 1.805 x");
    CHECK(headline_line("decode_b1_tinyllama_sandwich-middle:11 tok_s", 812.26, "tok/s") ==
          "headline: decode_b1_tinyllama_sandwich_middle_11_tok_s 812.3 tok/s");
    CHECK(headline_line("copy_gbs", 4312.6, "GB/s") == "headline: copy_gbs 4313 GB/s");  // no exponent
    CHECK(headline_line("cublas_sgemm_gflops_4096", 51234.6, "GFLOP/s") == "headline: cublas_sgemm_gflops_4096 51235 GFLOP/s");
    CHECK(headline_line("tiny", 0.000123, "x") == "headline: tiny 0.000123 x");
    CHECK(headline_model("tinyllama") == "tinyllama");
    CHECK(headline_model("models/lckv.kvs") == "lckv");
    CHECK(headline_model("/tmp/a.b/stories15M.bin") == "stories15M");
}
