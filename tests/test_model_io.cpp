// Checkpoints: the project's format round trip, llama2.c import of a file this test writes,
// plans applied at load time, and files that are truncated, foreign or do not fit.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "tests/helpers.h"
#include "src/formats/checkpoint.h"
#include <cstdio>
#include <fstream>

static Model small_model(const std::string& plan, bool tied = true) {
    Config c = preset_config("tiny");
    c.shared_classifier = tied;
    return init_model(c, parse_plan(plan, c.n_layers), 11);
}

static void check_same_weights(Model& a, Model& b) {
    auto ta = a.weights.tensors(), tb = b.weights.tensors();
    for (size_t i = 0; i < ta.size(); i++) {
        INFO("tensor " << i);
        CHECK(*ta[i] == *tb[i]);
    }
}

static std::vector<float> last_logits(const Model& m) {
    auto be = make_cpu_backend(m, 1, 8);
    std::vector<int> t = {1, 50, 60, 70, 80};
    be->prefill(t.data(), 5, PrefillOptions{});
    return std::vector<float>(be->logits(), be->logits() + m.config.vocab_size);
}

static void truncate_copy(const std::string& from, const std::string& to, size_t drop) {
    std::ifstream in(from, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(to, std::ios::binary) << bytes.substr(0, bytes.size() - drop);
}

TEST_CASE("the project's format round-trips config, plan and weights", "[model]") {
    for (std::string plan : {"standard", "lckv:2,diag=all", "cla:2"}) {
        for (bool tied : {true, false}) {
            INFO("plan " << plan << " tied " << tied);
            Model m = small_model(plan, tied);
            save_model(temp_path("test_model.kvs"), m);
            Model r = load_model(temp_path("test_model.kvs"));
            CHECK(r.config.dim == m.config.dim);
            CHECK(r.config.n_kv_heads == m.config.n_kv_heads);
            CHECK(r.config.shared_classifier == tied);
            CHECK(r.plan.source == m.plan.source);
            CHECK(r.plan.diag_all == m.plan.diag_all);
            CHECK(r.random_weights);
            check_same_weights(m, r);
        }
    }
    std::remove(temp_path("test_model.kvs").c_str());
}

TEST_CASE("a llama2.c checkpoint written here imports with the same outputs", "[model]") {
    for (bool tied : {true, false}) {
        INFO("tied " << tied);
        Model m = small_model("standard", tied);
        save_llama2c(temp_path("test_model.bin"), m);
        Model r = load_model(temp_path("test_model.bin"));
        CHECK(r.config.shared_classifier == tied);
        CHECK(r.config.vocab_size == m.config.vocab_size);
        check_same_weights(m, r);
        CHECK(compare(last_logits(r), last_logits(m)).max_abs == 0.0);
        // any plan can be applied at load: unused W_K / W_V are dropped
        Model lckv = load_model(temp_path("test_model.bin"), "lckv:2");
        CHECK(lckv.plan.n_kv_layers() == 3);
        CHECK(lckv.weights.wk.size() == 3 * (size_t)m.config.kv_dim() * m.config.dim);
        const size_t per = (size_t)m.config.kv_dim() * m.config.dim;
        CHECK(std::equal(lckv.weights.wk.begin() + per, lckv.weights.wk.begin() + 2 * per, m.weights.wk.begin() + 6 * per));
        CHECK(compare(last_logits(lckv), last_logits(apply_plan(m, parse_plan("lckv:2", 8)))).max_abs == 0.0);
    }
    std::remove(temp_path("test_model.bin").c_str());
}

TEST_CASE("a checkpoint cannot take a plan whose K/V weights it lacks", "[model]") {
    Model m = small_model("cla:2");
    save_model(temp_path("test_cla.kvs"), m);
    CHECK(load_model(temp_path("test_cla.kvs"), "cla:2").plan.n_kv_layers() == 4);
    CHECK(load_model(temp_path("test_cla.kvs"), "cla:4").plan.n_kv_layers() == 2);  // 0, 4 are KV layers of cla:2
    CHECK_THROWS_WITH(load_model(temp_path("test_cla.kvs"), "standard"), Catch::Contains("does not hold"));
    CHECK_THROWS_WITH(load_model(temp_path("test_cla.kvs"), "cla:2,0"), Catch::Contains("not an integer"));
    CHECK_THROWS_WITH(load_model(temp_path("test_cla.kvs"), "lckv:2"), Catch::Contains("layer 7"));
    std::remove(temp_path("test_cla.kvs").c_str());
}

TEST_CASE("truncated, foreign and missing files give one clear error", "[model]") {
    Model m = small_model("standard");
    save_model(temp_path("good.kvs"), m);
    save_llama2c(temp_path("good.bin"), m);
    truncate_copy(temp_path("good.kvs"), temp_path("short.kvs"), 100);
    truncate_copy(temp_path("good.bin"), temp_path("short.bin"), 4);
    CHECK_THROWS_WITH(load_model(temp_path("short.kvs")), Catch::Contains("truncated"));
    CHECK_THROWS_WITH(load_model(temp_path("short.bin")), Catch::Contains("truncated"));
    std::ofstream(temp_path("foreign.txt")) << "this is certainly not a model file, just some text that is long enough";
    CHECK_THROWS_WITH(load_model(temp_path("foreign.txt")), Catch::Contains("llama2.c"));
    std::ofstream(temp_path("tiny.txt")) << "hi";
    CHECK_THROWS_WITH(load_model(temp_path("tiny.txt")), Catch::Contains("too small"));
    CHECK_THROWS_WITH(load_model(temp_path("does-not-exist.kvs")), Catch::Contains("cannot open"));
    CHECK_THROWS_WITH(load_model(temp_path("good.kvs"), "pizza-top:9"), Catch::Contains("1..8"));
    for (const std::string& f : {temp_path("good.kvs"), temp_path("good.bin"), temp_path("short.kvs"), temp_path("short.bin"), temp_path("foreign.txt"), temp_path("tiny.txt")})
        std::remove(f.c_str());
}

TEST_CASE("a write that fails part way leaves the old file and no temporary file", "[model]") {
    const std::string path = temp_path("atomic.kvs");
    const Model a = small_model("standard");
    save_model(path, a);
    const std::string before = read_text_file(path);
    {
        OutputFile f(path);
        f.write("half a model");
        // no commit(): an error was thrown on the way
    }
    CHECK(read_text_file(path) == before);
    CHECK_FALSE(std::filesystem::exists(path + ".tmp-" + std::to_string(getpid())));
    // and a committed write replaces it
    write_file_atomic(path, "new");
    CHECK(read_text_file(path) == "new");
    std::remove(path.c_str());
}

TEST_CASE("random weights: skipping ahead and the parallel fill give one generator's numbers", "[model]") {
    for (uint64_t calls : {0ull, 1ull, 2ull, 63ull, 64ull, 1000ull, 123457ull}) {
        Rng stepped(42), skipped(42);
        for (uint64_t i = 0; i < calls; i++) stepped.next_u32();
        skipped.skip(calls);
        CAPTURE(calls);
        CHECK(skipped.state == stepped.state);
    }
    // w1 and w3 span three of init_model's chunks, so the skips inside a tensor are tested too
    Config c;
    c.dim = 64; c.hidden_dim = 1100; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 300; c.max_seq_len = 16; c.shared_classifier = false;
    const uint64_t seed = 3;
    Model m = init_model(c, parse_plan("standard", c.n_layers), seed);
    // what init_model computed, one generator filling tensor after tensor
    Rng rng(seed);
    Weights& w = m.weights;
    const float std_in = 0.02f, std_out = 0.02f / std::sqrt(2.0f * c.n_layers);
    size_t i = 0;
    for (auto* t : {&w.token_embedding, &w.wq, &w.wk, &w.wv, &w.w1, &w.w3, &w.wcls, &w.wo, &w.w2}) {
        const float scale = t == &w.wo || t == &w.w2 ? std_out : std_in;
        size_t differ = 0;
        for (float x : *t) differ += x != scale * rng.normal();
        CAPTURE(i++, t->size());
        CHECK(differ == 0);
    }
    CHECK(w.w1.size() > 2 * 65536);
}
