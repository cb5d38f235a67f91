// Every reference op against small cases worked out by hand.
#include <catch2/catch.hpp>
#include "reference/ops.h"
#include <cmath>
#include <vector>


TEST_CASE("matmul: out = x @ w^T", "[ops]") {
    // x (2, 3), w (2, 3)
    std::vector<float> x = {1, 2, 3, 4, 5, 6}, w = {1, 0, -1, 0.5f, 0.5f, 0.5f}, out(4);
    matmul(out.data(), x.data(), w.data(), 2, 3, 2);
    CHECK(out == std::vector<float>{-2, 3, -2, 7.5f});
}

TEST_CASE("rmsnorm scales by the root mean square", "[ops]") {
    std::vector<float> x = {3, 4}, w = {1, 2}, out(2);
    rmsnorm(out.data(), x.data(), w.data(), 1, 2, 0.0f);
    const double rms = std::sqrt(12.5);
    CHECK(out[0] == Approx(3 / rms).epsilon(1e-6));
    CHECK(out[1] == Approx(2 * 4 / rms).epsilon(1e-6));
}

TEST_CASE("rope rotates adjacent or half-split pairs", "[ops]") {
    // head_size 4: pair 0 turns by pos * 1, pair 1 by pos * theta^(-2/4) = pos / 100
    std::vector<float> a = {1, 0, 1, 0};
    int pos = 1;
    rope(a.data(), &pos, 1, 1, 4, 10000.0f, RopeStyle::Adjacent);
    CHECK(a[0] == Approx(std::cos(1.0)).margin(1e-6));
    CHECK(a[1] == Approx(std::sin(1.0)).margin(1e-6));
    CHECK(a[2] == Approx(std::cos(0.01)).margin(1e-6));
    CHECK(a[3] == Approx(std::sin(0.01)).margin(1e-6));
    // half split pairs (0, 2) and (1, 3)
    std::vector<float> h = {1, 1, 0, 0};
    pos = 2;
    rope(h.data(), &pos, 1, 1, 4, 10000.0f, RopeStyle::HalfSplit);
    CHECK(h[0] == Approx(std::cos(2.0)).margin(1e-6));
    CHECK(h[2] == Approx(std::sin(2.0)).margin(1e-6));
    CHECK(h[1] == Approx(std::cos(0.02)).margin(1e-6));
    CHECK(h[3] == Approx(std::sin(0.02)).margin(1e-6));
    // position 0 is the identity; two heads rotate independently
    std::vector<float> z = {1, 2, 3, 4, 5, 6, 7, 8}, z0 = z;
    int p0 = 0;
    rope(z.data(), &p0, 1, 2, 4, 10000.0f, RopeStyle::Adjacent);
    CHECK(z == z0);
}

TEST_CASE("rope of many rows equals rope of each row alone: repeated, shuffled and far-apart positions", "[ops]") {
    // rope computes each position's angles once per call (RopeTable): a batch repeats its
    // positions, and positions spread wider than the rows take a row of angles each
    const int heads = 3, hs = 8;
    const std::vector<std::vector<int>> cases = {
        {0, 1, 2, 3, 0, 1, 2, 3},   // two sequences of a training batch
        {7, 5, 6, 5, 9},            // shuffled, repeated, with a gap
        {5, 1000, 3},               // wider than the rows
        {42},                       // one decode step
    };
    for (const auto& positions : cases)
        for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::HalfSplit}) {
            const int n = (int)positions.size();
            INFO("rows " << n << " first position " << positions[0]);
            std::vector<float> x((size_t)n * heads * hs);
            for (size_t i = 0; i < x.size(); i++) x[i] = std::sin(0.37f * (float)i + 0.1f);
            std::vector<float> all = x;
            rope(all.data(), positions.data(), n, heads, hs, 10000.0f, style);
            for (int r = 0; r < n; r++) {
                std::vector<float> one(x.begin() + (size_t)r * heads * hs, x.begin() + (size_t)(r + 1) * heads * hs);
                rope(one.data(), &positions[r], 1, heads, hs, 10000.0f, style);
                for (int i = 0; i < heads * hs; i++) CHECK(all[(size_t)r * heads * hs + i] == one[i]);
            }
        }
}

TEST_CASE("softmax is safe with large outliers", "[ops]") {
    std::vector<float> s = {1, 2, 3};
    softmax(s.data(), 3);
    const double e = std::exp(1.0), sum = 1 + e + e * e;
    CHECK(s[0] == Approx(1 / sum).epsilon(1e-6));
    CHECK(s[2] == Approx(e * e / sum).epsilon(1e-6));
    std::vector<float> big = {1000.0f, 0.0f, -1000.0f};
    softmax(big.data(), 3);
    CHECK(big[0] == 1.0f);
    CHECK(big[1] == 0.0f);
    CHECK(std::isfinite(big[2]));
}

TEST_CASE("swiglu, residual and embedding", "[ops]") {
    std::vector<float> hb = {0, 1, -2}, hb2 = {5, 2, 1};
    swiglu(hb.data(), hb2.data(), 3);
    CHECK(hb[0] == 0.0f);
    CHECK(hb[1] == Approx(2.0 / (1 + std::exp(-1.0))).epsilon(1e-6));
    CHECK(hb[2] == Approx(-2.0 / (1 + std::exp(2.0))).epsilon(1e-6));
    std::vector<float> x = {1, 2}, y = {10, 20};
    residual_add(x.data(), y.data(), 2);
    CHECK(x == std::vector<float>{11, 22});
    std::vector<float> table = {0, 0, 1, 1, 2, 2}, out(4);
    int tokens[2] = {2, 1};
    embedding(out.data(), table.data(), tokens, 2, 2);
    CHECK(out == std::vector<float>{2, 2, 1, 1});
}

TEST_CASE("attention: causal, strict, empty rows, grouped heads", "[ops]") {
    // head_size 2, cache of 2 positions: k0 = (1,0), k1 = (0,1); v0 = (1,2), v1 = (3,4).
    // A query q = (sqrt(2) ln 3, 0) scores (ln 3, 0) after the 1/sqrt(2) scale: weights 3/4, 1/4.
    const float q0 = (float)(std::sqrt(2.0) * std::log(3.0));
    std::vector<float> k = {1, 0, 0, 1}, v = {1, 2, 3, 4};
    std::vector<float> q = {q0, 0, q0, 0};  // two query heads sharing the one KV head
    std::vector<float> out(4, -99.0f);
    attention(out.data(), q.data(), k.data(), v.data(), 1, 1, false, 2, 1, 2);  // position 1, causal
    for (int h = 0; h < 2; h++) {
        CHECK(out[2 * h] == Approx(1.5).epsilon(1e-6));
        CHECK(out[2 * h + 1] == Approx(2.5).epsilon(1e-6));
    }
    attention(out.data(), q.data(), k.data(), v.data(), 1, 1, true, 2, 1, 2);   // strict: only s = 0
    CHECK(out[0] == Approx(1.0f));
    CHECK(out[1] == Approx(2.0f));
    attention(out.data(), q.data(), k.data(), v.data(), 1, 0, true, 2, 1, 2);   // strict at 0: sees nothing
    CHECK(out == std::vector<float>{0, 0, 0, 0});
    attention(out.data(), q.data(), k.data(), v.data(), 1, 0, false, 2, 1, 2);  // causal at 0: v0
    CHECK(out[0] == Approx(1.0f));
    CHECK(out[3] == Approx(2.0f));
    // two queries at positions 0 and 1 in one call equal the one-by-one calls
    std::vector<float> q2 = {q0, 0, q0, 0, q0, 0, q0, 0}, out2(8);
    attention(out2.data(), q2.data(), k.data(), v.data(), 2, 0, false, 2, 1, 2);
    CHECK(out2[0] == Approx(1.0f));
    CHECK(out2[4] == Approx(1.5f).epsilon(1e-6));
}
