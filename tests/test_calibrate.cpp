// KVSharer calibration on models where the answer is known by construction: layers whose
// K/V projections are zero have identical (zero) mean K/V, and one loud layer is far from all.
#include <catch2/catch.hpp>
#include "src/commands/calibrate.h"
#include "src/text/stories.h"
#include "tests/helpers.h"
#include <cstdio>

// tiny preset, standard plan; W_K and W_V zero in every layer but `loud`
static Model constructed_model(int loud) {
    Config c = preset_config("tiny");
    Model m = init_model(c, parse_plan("standard", c.n_layers), 5);
    const size_t per = (size_t)c.kv_dim() * c.dim;
    for (int l = 0; l < c.n_layers; l++)
        for (size_t i = 0; i < per; i++) {
            float scale = l == loud ? 20.0f : 0.0f;
            m.weights.wk[l * per + i] *= scale;
            m.weights.wv[l * per + i] *= scale;
        }
    return m;
}

static std::vector<int> calibration_tokens(int count, int n) {
    Rng rng(9);
    std::vector<int> t((size_t)count * n);
    for (int& x : t) x = 3 + (int)(rng.next_u32() % 256);
    return t;
}

TEST_CASE("distance: Euclidean over the flattened mean [K; V]", "[calibrate]") {
    CHECK(euclidean_distance({0, 0, 0}, {1, 2, 2}) == 3.0);
    CHECK(euclidean_distance({1, -1}, {1, -1}) == 0.0);
    const int count = 4, n = 6;
    Model m = constructed_model(5);
    auto mean = mean_kv_per_layer(m, calibration_tokens(count, n), count, n, Device::CPU);
    REQUIRE(mean.size() == 8);
    CHECK(mean[0].size() == 2 * (size_t)n * m.config.kv_dim());
    CHECK(euclidean_distance(mean[1], mean[3]) == 0.0);  // both zero
    CHECK(euclidean_distance(mean[5], mean[3]) > 1.0);
}

TEST_CASE("dissimilar pairs are tried first, similar ones last", "[calibrate]") {
    const int count = 4, n = 8;
    Model m = constructed_model(5);
    auto tokens = calibration_tokens(count, n);
    CalibrateOptions o;
    o.shared_layers = 1;
    o.threshold = -2.0;  // accept the first pair tried
    CalibrationResult far = calibrate(m, tokens, count, n, o);
    REQUIRE(far.pairs.size() == 28);
    const PairTrial& first = far.pairs.front();
    CHECK((first.layer == 5 || first.with == 5));
    CHECK(first.accepted);
    for (size_t i = 1; i < far.pairs.size(); i++) CHECK(far.pairs[i - 1].distance >= far.pairs[i].distance);
    CHECK(far.shared == 1);
    CHECK_FALSE(far.pairs[1].reached);  // the search stops once C layers share
    // most similar first: two zero layers; sharing them changes nothing, similarity 1
    o.order = PairOrder::Similar;
    o.threshold = 0.999999;
    CalibrationResult near = calibrate(m, tokens, count, n, o);
    CHECK(near.pairs.front().distance == 0.0);
    CHECK(near.pairs.front().layer != 5);
    CHECK(near.pairs.front().with != 5);
    CHECK(near.pairs.front().similarity == Approx(1.0).epsilon(1e-12));
    CHECK(near.pairs.front().accepted);
}

TEST_CASE("the threshold decides every tried pair", "[calibrate]") {
    const int count = 3, n = 8;
    Model m = constructed_model(2);
    auto tokens = calibration_tokens(count, n);
    CalibrateOptions o;
    o.shared_layers = 3;
    o.threshold = 1.5;  // cosine similarity never exceeds 1: nothing is accepted
    CalibrationResult none = calibrate(m, tokens, count, n, o);
    CHECK(none.shared == 0);
    CHECK(none.plan.n_kv_layers() == 8);
    int tried = 0;
    for (const PairTrial& t : none.pairs) tried += t.tried;
    CHECK(tried == 28);  // every pair was tried and refused
    o.threshold = 0.9;
    CalibrationResult some = calibrate(m, tokens, count, n, o);
    for (const PairTrial& t : some.pairs)
        if (t.tried) CHECK(t.accepted == (t.similarity > 0.9));
    CHECK(some.shared <= 3);
}

TEST_CASE("chains resolve: every source is a KV layer, a shared layer owns nothing", "[calibrate]") {
    const int count = 2, n = 6;
    Model m = constructed_model(4);
    CalibrateOptions o;
    o.shared_layers = 7;  // all but one layer
    o.threshold = -2.0;
    CalibrationResult r = calibrate(m, calibration_tokens(count, n), count, n, o);
    CHECK(r.shared == 7);
    CHECK(r.plan.n_kv_layers() == 1);
    for (int l = 0; l < 8; l++) CHECK(r.plan.owns_kv(r.plan.source[l]));
    Model shared = apply_plan(m, r.plan);
    CHECK(shared.weights.wk.size() == (size_t)m.config.kv_dim() * m.config.dim);
    CHECK(make_cpu_backend(shared, 1, 16)->kv_cache_bytes() * 8 == make_cpu_backend(m, 1, 16)->kv_cache_bytes());
    // the plan file round-trips
    write_plan_file(temp_path("test_kvsharer.plan"), r.plan, "test");
    CHECK(parse_plan(temp_path("test_kvsharer.plan"), 8).source == r.plan.source);
    std::remove(temp_path("test_kvsharer.plan").c_str());
}

TEST_CASE("random order is seeded; impossible targets are rejected", "[calibrate]") {
    const int count = 2, n = 6;
    Model m = constructed_model(1);
    auto tokens = calibration_tokens(count, n);
    CalibrateOptions o;
    o.order = PairOrder::Random;
    o.threshold = 2.0;
    auto order_of = [&](uint64_t seed) {
        o.seed = seed;
        std::vector<int> v;
        for (const PairTrial& t : calibrate(m, tokens, count, n, o).pairs) v.push_back(t.layer * 8 + t.with);
        return v;
    };
    CHECK(order_of(3) == order_of(3));
    CHECK(order_of(3) != order_of(4));
    o.shared_layers = 8;
    CHECK_THROWS_WITH(calibrate(m, tokens, count, n, o), Catch::Contains("1..7"));
    o.shared_layers = 0;
    CHECK_THROWS_WITH(calibrate(m, tokens, count, n, o), Catch::Contains("1..7"));
    o.shared_layers = 1;
    CHECK_THROWS_WITH(calibrate(m, {}, 0, n, o), Catch::Contains("no calibration"));
}

TEST_CASE("after_each: the plan after c accepted changes is what a search for c shared layers returns", "[calibrate]") {
    const int count = 3, n = 8;
    Model m = constructed_model(2);
    auto tokens = calibration_tokens(count, n);
    for (PairOrder order : {PairOrder::Dissimilar, PairOrder::Random}) {
        CalibrateOptions o;
        o.order = order;
        o.seed = 7;
        o.threshold = 0.3;
        o.shared_layers = 5;
        const CalibrationResult all = calibrate(m, tokens, count, n, o);
        REQUIRE(all.after_each.size() == (size_t)all.shared);
        REQUIRE(all.shared >= 2);
        CHECK(all.after_each.back().source == all.plan.source);
        for (int c = 1; c <= all.shared; c++) {
            INFO("c = " << c);
            CHECK(all.after_each[c - 1].n_kv_layers() == 8 - c);
            o.shared_layers = c;
            CHECK(calibrate(m, tokens, count, n, o).plan.source == all.after_each[c - 1].source);
        }
    }
}
