// Sampler: greedy, seeded reproducibility, top-p support, and frequencies against softmax.
#include <catch2/catch.hpp>
#include "src/sampler.h"
#include <cmath>
#include <vector>

TEST_CASE("greedy picks the argmax and leaves the logits alone", "[sampler]") {
    std::vector<float> logits = {0.1f, 3.0f, -2.0f, 2.9f}, copy = logits;
    Sampler s(4, 0.0f, 0.9f, 1);
    CHECK(s.sample(logits.data()) == 1);
    CHECK(logits == copy);
}

TEST_CASE("sampling follows softmax and the seed", "[sampler]") {
    std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f};
    Sampler a(4, 1.0f, 1.0f, 42), b(4, 1.0f, 1.0f, 42);
    std::vector<int> count(4, 0);
    const int draws = 20000;
    for (int i = 0; i < draws; i++) {
        int x = a.sample(logits.data());
        CHECK(x == b.sample(logits.data()));
        count[x]++;
    }
    double z = 0;
    for (float l : logits) z += std::exp(l);
    for (int i = 0; i < 4; i++) CHECK(std::fabs(count[i] / (double)draws - std::exp(logits[i]) / z) < 0.01);
    // temperature 0.5 sharpens: the top token's share grows
    Sampler sharp(4, 0.5f, 1.0f, 7);
    int top = 0;
    for (int i = 0; i < draws; i++) top += sharp.sample(logits.data()) == 2;
    CHECK(top / (double)draws > count[2] / (double)draws + 0.1);
}

TEST_CASE("top-p keeps only the nucleus", "[sampler]") {
    // probabilities ~ 0.64, 0.24, 0.09, 0.03: top-p 0.8 keeps the first two only
    std::vector<float> logits = {3.0f, 2.0f, 1.0f, 0.0f};
    Sampler s(4, 1.0f, 0.8f, 3);
    std::vector<int> count(4, 0);
    for (int i = 0; i < 5000; i++) count[s.sample(logits.data())]++;
    CHECK(count[2] == 0);
    CHECK(count[3] == 0);
    CHECK(count[1] > 1000);  // 0.24 / 0.88 of the draws
    Sampler tiny(4, 1.0f, 0.01f, 3);
    for (int i = 0; i < 100; i++) CHECK(tiny.sample(logits.data()) == 0);
}

TEST_CASE("bad sampler settings are rejected", "[sampler]") {
    CHECK_THROWS_WITH(Sampler(4, -1.0f, 0.9f, 1), Catch::Contains("temperature"));
    CHECK_THROWS_WITH(Sampler(4, 1.0f, 1.5f, 1), Catch::Contains("top-p"));
}
