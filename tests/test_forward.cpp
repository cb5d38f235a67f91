// The reference forward for every named plan: iterative prefill against token by token,
// exact positions below T, decode after either prefill, batched against unbatched,
// visibility, and cache bytes against the formula.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "tests/helpers.h"
#include <cstring>

// The tiny preset with weights scaled up so attention matters (random N(0, 0.02) weights
// give near-uniform attention, which would hide masking mistakes).
static Model test_model(const std::string& plan_spec, uint64_t seed = 3) {
    Config c = preset_config("tiny");
    Model m = init_model(c, parse_plan("standard", c.n_layers), seed);
    for (auto* t : {&m.weights.wq, &m.weights.wk, &m.weights.wv, &m.weights.wo, &m.weights.w1, &m.weights.w2, &m.weights.w3})
        for (float& x : *t) x *= 8.0f;
    return apply_plan(m, parse_plan(plan_spec, c.n_layers));
}

static std::vector<int> test_tokens(int batch, int n, uint64_t seed) {
    Rng rng(seed);
    std::vector<int> t((size_t)batch * n);
    for (int& x : t) x = (int)(rng.next_u32() % 259);
    return t;
}

struct Run {
    std::vector<float> logits, hidden;
    std::vector<std::vector<float>> k, v;  // per layer
};

static Run capture(Backend& be, const Model& m) {
    Run r;
    const size_t n = (size_t)be.batch() * be.logit_positions();
    r.logits.assign(be.logits(), be.logits() + n * m.config.vocab_size);
    r.hidden.assign(be.hidden(), be.hidden() + n * m.config.dim);
    r.k.resize(m.config.n_layers);
    r.v.resize(m.config.n_layers);
    for (int l = 0; l < m.config.n_layers; l++) be.read_kv(l, r.k[l], r.v[l]);
    return r;
}

static void require_identical(const Run& a, const Run& b) {
    REQUIRE(a.logits.size() == b.logits.size());
    CHECK(compare(a.logits, b.logits).max_abs == 0.0);
    CHECK(compare(a.hidden, b.hidden).max_abs == 0.0);
    for (size_t l = 0; l < a.k.size(); l++) {
        INFO("layer " << l);
        REQUIRE(a.k[l].size() == b.k[l].size());
        CHECK(compare(a.k[l], b.k[l]).max_abs == 0.0);
        CHECK(compare(a.v[l], b.v[l]).max_abs == 0.0);
    }
}

static std::vector<std::string> all_plans() {
    std::vector<std::string> plans = named_plans(8, 0);
    plans.push_back("lckv:2,diag=all");
    plans.push_back("cla:2,diag=all");
    plans.push_back("standard,diag=all");
    plans.push_back("2,1,2,5,4,5,7,7");  // three cyclic blocks: 0-2, 3-5, 6-7
    return plans;
}

static PrefillOptions sequential_all() {
    PrefillOptions o;
    o.sequential = true;
    o.all_positions = true;
    return o;
}

static PrefillOptions iterations_all(int T) {
    PrefillOptions o;
    o.iterations = T;
    o.always_iterate = true;
    o.all_positions = true;
    return o;
}

TEST_CASE("prefill by T = n parallel iterations equals token by token, for every plan", "[forward]") {
    const int batch = 2, n = 11;
    for (const std::string& spec : all_plans()) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        std::vector<int> tokens = test_tokens(batch, n, 17);
        auto seq = make_cpu_backend(m, batch, 32), par = make_cpu_backend(m, batch, 32);
        seq->prefill(tokens.data(), n, sequential_all());
        par->prefill(tokens.data(), n, iterations_all(n));
        Run a = capture(*seq, m), b = capture(*par, m);
        require_identical(a, b);
        // and decode after either prefill stays identical
        std::vector<int> next = {5, 200};
        for (int step = 0; step < 4; step++) {
            seq->decode(next.data());
            par->decode(next.data());
            next[0] = (next[0] * 7 + 3) % 259;
            next[1] = (next[1] * 5 + 1) % 259;
        }
        require_identical(capture(*seq, m), capture(*par, m));
    }
}

TEST_CASE("a prefill that keeps only the last position returns that position's logits and hidden state", "[forward]") {
    // Token by token runs the classifier for the last position only; the one-pass and
    // iterative prefills gather the last row. Either must equal the last row of the same
    // prefill keeping every position, bit for bit, and leave the same cache.
    const int batch = 2, n = 10;
    const std::vector<int> tokens = test_tokens(batch, n, 23);
    for (std::string spec : {"standard", "cla:2", "lckv:2", "sandwich-middle:4", "2,1,2,5,4,5,7,7"}) {
        const Model m = test_model(spec);
        const size_t V = m.config.vocab_size, D = m.config.dim;
        for (bool sequential : {true, false}) {
            INFO("plan " << spec << (sequential ? ", token by token" : ", parallel"));
            PrefillOptions all, last;
            all.sequential = last.sequential = sequential;
            all.iterations = last.iterations = 3;
            all.always_iterate = last.always_iterate = true;
            all.all_positions = true;
            auto a = make_cpu_backend(m, batch, n), b = make_cpu_backend(m, batch, n);
            a->prefill(tokens.data(), n, all);
            b->prefill(tokens.data(), n, last);
            const Run every = capture(*a, m), one = capture(*b, m);
            REQUIRE(b->logit_positions() == 1);
            REQUIRE(one.logits.size() == (size_t)batch * V);
            for (int s = 0; s < batch; s++) {
                INFO("sequence " << s);
                const size_t row = (size_t)s * n + (n - 1);
                CHECK(std::memcmp(&one.logits[s * V], &every.logits[row * V], V * sizeof(float)) == 0);
                CHECK(std::memcmp(&one.hidden[s * D], &every.hidden[row * D], D * sizeof(float)) == 0);
            }
            for (int l = 0; l < m.config.n_layers; l++) {
                INFO("layer " << l);
                CHECK(compare(one.k[l], every.k[l]).max_abs == 0.0);
                CHECK(compare(one.v[l], every.v[l]).max_abs == 0.0);
            }
        }
    }
}

TEST_CASE("with T < n iterations, positions below T are exact", "[forward]") {
    const int n = 12, T = 4;
    for (std::string spec : {"lckv:2", "pizza-top:3", "lasagna-top:4", "sandwich-middle:4", "lckv:0,diag=all"}) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        std::vector<int> tokens = test_tokens(1, n, 5);
        auto be = make_cpu_backend(m, 1, n);
        be->prefill(tokens.data(), n, sequential_all());
        Run ref = capture(*be, m);
        be->prefill(tokens.data(), n, iterations_all(T));
        Run got = capture(*be, m);
        const size_t V = m.config.vocab_size;
        for (int p = 0; p < T; p++) {
            INFO("position " << p);
            CHECK(std::memcmp(&got.logits[p * V], &ref.logits[p * V], V * sizeof(float)) == 0);
        }
        // the approximation is real: the last position is not exact after so few iterations
        CHECK(compare(&got.logits[(n - 1) * V], &ref.logits[(n - 1) * V], V).max_abs > 0.0);
    }
}

TEST_CASE("plans without upward sources prefill in one pass, equal to token by token", "[forward]") {
    const int n = 9;
    for (std::string spec : {"standard", "cla:2", "pizza-bottom:3", "yoco", "sandwich-bottom:4", "cla:3,diag=all"}) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        REQUIRE_FALSE(m.plan.iterates());
        std::vector<int> tokens = test_tokens(2, n, 8);
        auto a = make_cpu_backend(m, 2, n), b = make_cpu_backend(m, 2, n);
        a->prefill(tokens.data(), n, sequential_all());
        PrefillOptions one_pass;
        one_pass.all_positions = true;
        b->prefill(tokens.data(), n, one_pass);
        require_identical(capture(*a, m), capture(*b, m));
    }
}

TEST_CASE("a batch of sequences equals each sequence alone", "[forward]") {
    const int batch = 3, n = 10;
    for (std::string spec : {"standard", "lckv:2", "lasagna-top:4"}) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        std::vector<int> tokens = test_tokens(batch, n, 21);
        auto all = make_cpu_backend(m, batch, 16);
        PrefillOptions opt;  // default: parallel with 9 iterations (n = 10 > 9 iterates)
        opt.all_positions = true;
        all->prefill(tokens.data(), n, opt);
        std::vector<int> next = {1, 2, 3};
        all->decode(next.data());
        for (int b = 0; b < batch; b++) {
            INFO("sequence " << b);
            auto one = make_cpu_backend(m, 1, 16);
            one->prefill(&tokens[(size_t)b * n], n, opt);
            one->decode(&next[b]);
            const size_t V = m.config.vocab_size;
            CHECK(compare(one->logits(), all->logits() + b * V, V).max_abs == 0.0);
        }
    }
}

TEST_CASE("a layer reading an upper source never sees position p of it", "[forward]") {
    // Stale K/V of another prompt is left in the cache; a layer that read its source at the
    // diagonal before the source wrote it would pick the stale values up.
    const int n = 8;
    for (std::string spec : {"lckv:2", "pizza-top:4", "lasagna-top:4"}) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        std::vector<int> tokens = test_tokens(1, n, 4), other = test_tokens(1, n, 99);
        auto fresh = make_cpu_backend(m, 1, n), dirty = make_cpu_backend(m, 1, n);
        dirty->prefill(other.data(), n, sequential_all());
        fresh->prefill(tokens.data(), n, sequential_all());
        dirty->prefill(tokens.data(), n, sequential_all());
        require_identical(capture(*fresh, m), capture(*dirty, m));
    }
}

TEST_CASE("the diagonal mask and the source change the result", "[forward]") {
    const int n = 6;
    std::vector<int> tokens = test_tokens(1, n, 2);
    auto logits_of = [&](const std::string& spec) {
        Model m = test_model(spec);
        auto be = make_cpu_backend(m, 1, n);
        be->prefill(tokens.data(), n, sequential_all());
        return std::vector<float>(be->logits(), be->logits() + (size_t)n * m.config.vocab_size);
    };
    auto standard = logits_of("standard"), diag = logits_of("standard,diag=all"), lckv = logits_of("lckv:2");
    CHECK(compare(diag, standard).rel_l2 > 1e-3);
    CHECK(compare(lckv, standard).rel_l2 > 1e-3);
    // diag=all at position 0 sees nothing in any layer: attention adds nothing, so the
    // logits equal a model whose attention output projection is zero
    Model m = test_model("standard,diag=all");
    Model no_attn = m;
    std::fill(no_attn.weights.wo.begin(), no_attn.weights.wo.end(), 0.0f);
    auto a = make_cpu_backend(m, 1, 1), b = make_cpu_backend(no_attn, 1, 1);
    a->prefill(tokens.data(), 1, PrefillOptions{});
    b->prefill(tokens.data(), 1, PrefillOptions{});
    CHECK(compare(a->logits(), b->logits(), m.config.vocab_size).max_abs == 0.0);
}

TEST_CASE("the cache allocates only KV layers: bytes equal the formula", "[forward]") {
    const int batch = 3, context = 40;
    for (const std::string& spec : all_plans()) {
        INFO("plan " << spec);
        Model m = test_model(spec);
        auto be = make_cpu_backend(m, batch, context);
        const size_t formula = (size_t)m.plan.n_kv_layers() * 2 * m.config.n_kv_heads * m.config.head_size() * 4 * context * batch;
        CHECK(be->kv_cache_bytes() == formula);
        CHECK(m.weights.wk.size() == (size_t)m.plan.n_kv_layers() * m.config.kv_dim() * m.config.dim);
    }
}

TEST_CASE("the forward rejects what does not fit", "[forward]") {
    Model m = test_model("lckv:2");
    auto be = make_cpu_backend(m, 1, 8);
    std::vector<int> tokens = test_tokens(1, 9, 1);
    CHECK_THROWS_WITH(be->prefill(tokens.data(), 9, PrefillOptions{}), Catch::Contains("more than the context"));
    tokens[3] = 259;
    CHECK_THROWS_WITH(be->prefill(tokens.data(), 8, PrefillOptions{}), Catch::Contains("outside the vocabulary"));
    tokens[3] = 1;
    PrefillOptions none;
    none.iterations = 0;  // would skip the cyclic block's layers altogether
    CHECK_THROWS_WITH(be->prefill(tokens.data(), 8, none), Catch::Contains("at least 1 iteration"));
    be->prefill(tokens.data(), 8, PrefillOptions{});
    CHECK_THROWS_WITH(be->decode(tokens.data()), Catch::Contains("full"));
    CHECK_THROWS_WITH(make_cpu_backend(m, 1, 65), Catch::Contains("max_seq_len"));
}

TEST_CASE("a rejected prompt leaves the previous sequence as it was", "[forward]") {
    Model m = test_model("lckv:2");
    for (bool sequential : {false, true}) {
        INFO("sequential " << sequential);
        auto be = make_cpu_backend(m, 2, 16);
        std::vector<int> tokens = test_tokens(2, 6, 4);
        PrefillOptions opt;
        opt.sequential = sequential;
        opt.always_iterate = true;
        be->prefill(tokens.data(), 6, opt);
        std::vector<int> bad = test_tokens(2, 5, 5);
        bad[8] = -1;  // second sequence, position 3: token by token would have run 8 steps
        CHECK_THROWS_WITH(be->prefill(bad.data(), 5, opt), Catch::Contains("outside the vocabulary"));
        CHECK(be->pos() == 6);
        std::vector<int> next = {7, 8};
        be->decode(next.data());  // continues the first prompt
        auto ref = make_cpu_backend(m, 2, 16);
        ref->prefill(tokens.data(), 6, opt);
        ref->decode(next.data());
        CHECK(std::equal(be->logits(), be->logits() + 2 * m.config.vocab_size, ref->logits()));
    }
}
