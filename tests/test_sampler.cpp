// Sampler: greedy, seeded reproducibility, top-p, and frequencies against softmax.
#include <catch2/catch.hpp>
#include "src/text/sampler.h"
#include "src/text/sampling_math.h"
#include "tests/helpers.h"
#include <cmath>
#include <vector>

// softmax(logits / temperature), in double, as the frequencies should come out.
static std::vector<double> softmax(const std::vector<float>& logits, double temperature) {
    std::vector<double> p(logits.size());
    double z = 0;
    for (size_t i = 0; i < logits.size(); i++) z += p[i] = std::exp(logits[i] / temperature);
    for (double& x : p) x /= z;
    return p;
}

// How often each token comes out over `draws` samples.
static std::vector<double> frequencies(Sampler& s, const std::vector<float>& logits, int draws) {
    std::vector<double> f(logits.size(), 0.0);
    for (int i = 0; i < draws; i++) f[s.sample(logits.data())] += 1.0 / draws;
    return f;
}

TEST_CASE("greedy picks the argmax and leaves the logits alone", "[sampler]") {
    const uint64_t seed = 11;
    INFO("logits seed " << seed);
    std::vector<float> logits = random_vector(1000, seed, -5.0f, 5.0f), copy = logits;
    int best = 0;
    for (int i = 1; i < 1000; i++)
        if (logits[i] > logits[best]) best = i;
    Sampler s(1000, 0.0f, 0.9f, 1);
    for (int i = 0; i < 10; i++) CHECK(s.sample(logits.data()) == best);
    CHECK(logits == copy);
}

TEST_CASE("the same seed gives the same sequence", "[sampler]") {
    std::vector<float> logits = random_vector(50, 5);
    Sampler a(50, 1.0f, 0.9f, 42), b(50, 1.0f, 0.9f, 42), c(50, 1.0f, 0.9f, 43);
    std::vector<int> sa, sb, sc;
    for (int i = 0; i < 200; i++) {
        sa.push_back(a.sample(logits.data()));
        sb.push_back(b.sample(logits.data()));
        sc.push_back(c.sample(logits.data()));
    }
    CHECK(sa == sb);
    CHECK(sa != sc);  // another seed, another sequence
}

TEST_CASE("frequencies follow softmax(logits / temperature)", "[sampler]") {
    std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f}, copy = logits;
    const int draws = 20000;  // a standard error of at most 0.0035 per token
    for (float temperature : {1.0f, 2.0f, 0.5f}) {
        INFO("temperature " << temperature);
        Sampler s(5, temperature, 1.0f, 42);
        std::vector<double> want = softmax(logits, temperature), got = frequencies(s, logits, draws);
        for (int i = 0; i < 5; i++) CHECK(std::fabs(got[i] - want[i]) < 0.015);
    }
    // top-p 0 means no nucleus, the full distribution
    Sampler s(5, 1.0f, 0.0f, 9);
    std::vector<double> want = softmax(logits, 1.0), got = frequencies(s, logits, draws);
    for (int i = 0; i < 5; i++) CHECK(std::fabs(got[i] - want[i]) < 0.015);
    CHECK(logits == copy);
}

TEST_CASE("top-p samples only the nucleus, renormalized", "[sampler]") {
    std::vector<float> logits = {1.0f, 3.0f, 0.0f, 2.0f}, copy = logits;
    std::vector<double> p = softmax(logits, 1.0);  // ~ 0.09, 0.64, 0.03, 0.24
    // 0.64 alone is under 0.8, 0.64 + 0.24 is over: the nucleus is tokens 1 and 3
    REQUIRE(p[1] < 0.8);
    REQUIRE(p[1] + p[3] > 0.8);
    Sampler s(4, 1.0f, 0.8f, 3);
    std::vector<double> got = frequencies(s, logits, 20000);
    CHECK(got[0] == 0.0);
    CHECK(got[2] == 0.0);
    CHECK(std::fabs(got[1] - p[1] / (p[1] + p[3])) < 0.015);
    CHECK(std::fabs(got[3] - p[3] / (p[1] + p[3])) < 0.015);
    CHECK(logits == copy);
    // a top-p below the top token's probability leaves only it
    for (float topp : {0.5f, 0.01f}) {
        Sampler tiny(4, 1.0f, topp, 3);
        for (int i = 0; i < 200; i++) CHECK(tiny.sample(logits.data()) == 1);
    }
}

TEST_CASE("top-p handles near-uniform and one-token vocabularies", "[sampler]") {
    // every probability sits just under (1 - topp) / (n - 1): the top token must still come out
    std::vector<float> flat(1000, 0.0f);
    flat[777] = 1e-5f;
    Sampler s(1000, 1.0f, 1e-4f, 5);
    for (int i = 0; i < 100; i++) CHECK(s.sample(flat.data()) == 777);
    float one = 0.3f;
    Sampler single(1, 1.0f, 0.5f, 5);
    CHECK(single.sample(&one) == 0);
}

TEST_CASE("bad sampler settings are rejected", "[sampler]") {
    CHECK_THROWS_WITH(Sampler(4, -1.0f, 0.9f, 1), Catch::Contains("temperature"));
    CHECK_THROWS_WITH(Sampler(4, NAN, 0.9f, 1), Catch::Contains("temperature"));
    CHECK_THROWS_WITH(Sampler(4, 1.0f, 1.5f, 1), Catch::Contains("top-p"));
    CHECK_THROWS_WITH(Sampler(4, 1.0f, -0.1f, 1), Catch::Contains("top-p"));
    CHECK_THROWS_WITH(Sampler(0, 1.0f, 0.9f, 1), Catch::Contains("vocab_size"));
}

// The integer arithmetic both samplers share (src/text/sampling_math.h).
TEST_CASE("sampling arithmetic: exp, token weights and the draw, exact in integers", "[sampler]") {
    // exp from fma, rint and ldexp stays within 1e-13 of the library's
    for (double x = 0.0; x > -60.0; x -= 0.0137) {
        const double want = std::exp(x), got = sampling::exp_nonpositive(x);
        CHECK(std::fabs(got - want) <= 1e-13 * want);
    }
    CHECK(sampling::exp_nonpositive(0.0) == 1.0);
    CHECK(sampling::exp_nonpositive(-61.0) == 0.0);
    CHECK(sampling::exp_nonpositive(NAN) == 0.0);
    // the largest logit weighs 2^31; weights fall with the logit
    CHECK(sampling::token_weight(3.5f, 3.5f, 0.7f) == (1u << 31));
    CHECK(sampling::token_weight(3.0f, 3.5f, 1.0f) == (uint32_t)(std::exp(-0.5) * 2147483648.0));
    CHECK(sampling::token_weight(-40.0f, 3.5f, 1.0f) == 0u);  // e^-43.5 x 2^31 < 1
    // floor(mass x units / 2^24) without overflow, against a 128-bit product
    Rng rng(3);
    for (int i = 0; i < 1000; i++) {
        const uint64_t mass = ((uint64_t)rng.next_u32() << 24) ^ rng.next_u32();  // up to 2^56
        const uint32_t units = rng.next_u32() >> 8;                               // below 2^24
        const unsigned __int128 exact = (unsigned __int128)mass * units >> 24;
        CHECK(sampling::scale_by_draw(mass, units) == (uint64_t)exact);
        CHECK(sampling::scale_by_draw(mass, units) < mass + 1);
    }
    CHECK(sampling::draw_units(0.0f) == 0u);
    CHECK(sampling::draw_units(0.5f) == 8388608u);
    CHECK(sampling::draw_units(1.0f - 1.0f / 16777216.0f) == 16777215u);
}

TEST_CASE("top-p orders equal weights by id, and the draw walks the nucleus in that order", "[sampler]") {
    // Weights (T = 1, max 0): tokens 1 and 3 tie at the top, 0 and 4 tie below, 2 is lightest.
    // Sorted: 1, 3, 0, 4, 2. With top-p 0.8 the nucleus is 1, 3 and the first of the next tie.
    const std::vector<float> logits = {-1.0f, 0.0f, -3.0f, 0.0f, -1.0f};
    std::vector<uint32_t> w(5);
    uint64_t total = 0;
    for (int i = 0; i < 5; i++) total += w[i] = sampling::token_weight(logits[i], 0.0f, 1.0f);
    REQUIRE(w[1] == w[3]);
    REQUIRE(w[0] == w[4]);
    const uint64_t limit = sampling::top_p_limit(0.8f, total);
    REQUIRE(2ull * w[1] <= limit);          // the two top tokens alone are not enough
    REQUIRE(2ull * w[1] + w[0] > limit);    // one more (token 0, the lower id) is
    const uint64_t mass = 2ull * w[1] + w[0];
    std::vector<uint32_t> scratch;
    std::vector<int> order;
    const SamplingSettings s{1.0f, 0.8f};
    // draws that land in the middle of each token's share of the nucleus: 1, then 3, then 0
    auto draw_for = [&](uint64_t target) { return (float)((double)target / (double)mass); };
    CHECK(sample_token(logits.data(), 5, s, 0.0f, scratch, order) == 1);
    CHECK(sample_token(logits.data(), 5, s, draw_for(w[1] / 2), scratch, order) == 1);
    CHECK(sample_token(logits.data(), 5, s, draw_for(w[1] + w[1] / 2), scratch, order) == 3);
    CHECK(sample_token(logits.data(), 5, s, draw_for(2ull * w[1] + w[0] / 2), scratch, order) == 0);
    CHECK(sample_token(logits.data(), 5, s, 1.0f - 1.0f / 16777216.0f, scratch, order) == 0);
    // greedy: the lowest id among the largest logits
    CHECK(sample_token(logits.data(), 5, SamplingSettings{}, 0.0f, scratch, order) == 1);
}
