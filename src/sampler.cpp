#include "src/sampler.h"
#include <algorithm>
#include <cmath>

Sampler::Sampler(int vocab_size, float temperature, float topp, uint64_t seed)
    : vocab_size_(vocab_size), temperature_(temperature), topp_(topp), rng_(seed), probs_(vocab_size), order_(vocab_size) {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature)) fail("temperature must be >= 0");
    if (!(topp >= 0.0f && topp <= 1.0f)) fail("top-p must be in [0, 1]");
}

int Sampler::sample(const float* logits) {
    const int n = vocab_size_;
    if (temperature_ == 0.0f) return (int)(std::max_element(logits, logits + n) - logits);
    // softmax(logits / temperature)
    float max = *std::max_element(logits, logits + n);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        probs_[i] = std::exp((logits[i] - max) / temperature_);
        sum += probs_[i];
    }
    for (int i = 0; i < n; i++) probs_[i] = (float)(probs_[i] / sum);
    const float r = rng_.uniform();
    if (topp_ <= 0.0f || topp_ >= 1.0f) {
        float cdf = 0.0f;
        for (int i = 0; i < n; i++) {
            cdf += probs_[i];
            if (r < cdf) return i;
        }
        return n - 1;  // rounding
    }
    // nucleus: the most probable tokens until their mass passes topp. Tokens below
    // (1 - topp) / (n - 1) can never be in it, so they are dropped before sorting.
    const float cutoff = (1.0f - topp_) / (n - 1);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (probs_[i] >= cutoff) order_[m++] = i;
    std::sort(order_.begin(), order_.begin() + m, [&](int a, int b) { return probs_[a] > probs_[b]; });
    float mass = 0.0f;
    int last = m - 1;
    for (int i = 0; i < m; i++) {
        mass += probs_[order_[i]];
        if (mass > topp_) { last = i; break; }
    }
    const float target = r * mass;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += probs_[order_[i]];
        if (target < cdf) return order_[i];
    }
    return order_[last];
}
