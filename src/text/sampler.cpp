#include "src/text/sampler.h"
#include <algorithm>
#include <cmath>

Sampler::Sampler(int vocab_size, float temperature, float topp, uint64_t seed)
    : vocab_size_(vocab_size), temperature_(temperature), topp_(topp), rng_(seed) {
    if (vocab_size <= 0) fail("sampler: vocab_size must be positive, got " + std::to_string(vocab_size));
    if (!(temperature >= 0.0f) || !std::isfinite(temperature))
        fail("temperature must be >= 0 (0 = greedy), got " + std::to_string(temperature));
    if (!(topp >= 0.0f && topp <= 1.0f)) fail("top-p must be in [0, 1], got " + std::to_string(topp));
    probs_.resize(vocab_size);
    order_.resize(vocab_size);
}

int Sampler::sample(const float* logits) {
    if (temperature_ == 0.0f) return (int)(std::max_element(logits, logits + vocab_size_) - logits);
    softmax(logits);
    float r = rng_.uniform();
    if (topp_ > 0.0f && topp_ < 1.0f) return sample_top_p(r);
    return sample_all(r);
}

void Sampler::softmax(const float* logits) {
    const int n = vocab_size_;
    float max = *std::max_element(logits, logits + n);  // subtracted so exp cannot overflow
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        probs_[i] = std::exp((logits[i] - max) / temperature_);
        sum += probs_[i];
    }
    for (int i = 0; i < n; i++) probs_[i] = (float)(probs_[i] / sum);
}

// The first token where the running sum of probabilities passes r in [0, 1).
int Sampler::sample_all(float r) const {
    float cdf = 0.0f;
    for (int i = 0; i < vocab_size_; i++) {
        cdf += probs_[i];
        if (r < cdf) return i;
    }
    return vocab_size_ - 1;  // the sum fell short of r by rounding
}

// Nucleus sampling: the fewest most-probable tokens whose mass exceeds topp, renormalized.
int Sampler::sample_top_p(float r) {
    const int n = vocab_size_;
    if (n == 1) return 0;
    // Only sort plausible candidates: below the top token, one with probability under
    // (1 - topp) / (n - 1) cannot be in the nucleus, since all the tokens after it
    // together hold less than 1 - topp. The top token itself always is.
    float top = *std::max_element(probs_.begin(), probs_.end());
    float cutoff = std::min((1.0f - topp_) / (n - 1), top);
    int m = 0;
    for (int i = 0; i < n; i++)
        if (probs_[i] >= cutoff) order_[m++] = i;
    // ties by id, so the order does not depend on the sort's implementation
    std::sort(order_.begin(), order_.begin() + m,
              [&](int a, int b) { return probs_[a] > probs_[b] || (probs_[a] == probs_[b] && a < b); });

    int last = m - 1;  // kept when rounding stops the mass short of topp
    float mass = 0.0f;
    for (int i = 0; i < m; i++) {
        mass += probs_[order_[i]];
        if (mass > topp_) {
            last = i;
            break;
        }
    }
    float target = r * mass;  // r scaled to the nucleus' mass = renormalizing it
    float cdf = 0.0f;
    for (int i = 0; i < last; i++) {
        cdf += probs_[order_[i]];
        if (target < cdf) return order_[i];
    }
    return order_[last];
}
