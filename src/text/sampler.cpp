#include "src/text/sampler.h"
#include "src/text/sampling_math.h"
#include <algorithm>
#include <cmath>

void check_sampling(const SamplingSettings& s) {
    if (!(s.temperature >= 0.0f) || !std::isfinite(s.temperature))
        fail("temperature must be >= 0 (0 = greedy), got " + std::to_string(s.temperature));
    if (!(s.topp >= 0.0f && s.topp <= 1.0f)) fail("top-p must be in [0, 1], got " + std::to_string(s.topp));
}

Sampler::Sampler(int vocab_size, float temperature, float topp, uint64_t seed)
    : vocab_size_(vocab_size), settings_{temperature, topp}, rng_(seed) {
    if (vocab_size <= 0) fail("sampler: vocab_size must be positive, got " + std::to_string(vocab_size));
    check_sampling(settings_);
    weights_.resize(vocab_size);
    order_.resize(vocab_size);
}

float Sampler::next_draw() { return settings_.greedy() ? 0.0f : rng_.uniform(); }

int Sampler::sample(const float* logits) {
    const float draw = next_draw();
    return sample_token(logits, vocab_size_, settings_, draw, weights_, order_);
}

// The first token, in `order`'s order (ids, or the first `count` of a list), whose running
// weight exceeds target. The caller guarantees target < the sum of those weights.
template <class Id>
static int first_past(uint64_t target, int count, const std::vector<uint32_t>& w, Id id) {
    uint64_t cdf = 0;
    for (int i = 0; i < count; i++) {
        cdf += w[id(i)];
        if (target < cdf) return id(i);
    }
    return id(count - 1);  // unreachable when the caller keeps its promise
}

int sample_token(const float* logits, int n, const SamplingSettings& s, float draw, std::vector<uint32_t>& w,
                 std::vector<int>& order) {
    // greedy: the first of the largest logits
    if (s.greedy()) return (int)(std::max_element(logits, logits + n) - logits);

    const float max = *std::max_element(logits, logits + n);
    w.resize(n);
    uint64_t total = 0;  // >= 2^31: the largest logit's weight
    for (int i = 0; i < n; i++) total += w[i] = sampling::token_weight(logits[i], max, s.temperature);
    const uint32_t units = sampling::draw_units(draw);
    if (!(s.topp > 0.0f && s.topp < 1.0f))
        return first_past(sampling::scale_by_draw(total, units), n, w, [](int i) { return i; });

    // Nucleus: the heaviest tokens, in order, until their weight exceeds the limit. A token
    // with n x weight < total - limit cannot be in it (the mass before it would be over the
    // limit), so only the others are sorted; they are the heaviest, so the order holds.
    const uint64_t limit = sampling::top_p_limit(s.topp, total);
    order.resize(n);
    int m = 0;
    for (int i = 0; i < n; i++)
        if ((uint64_t)w[i] * (uint64_t)n >= total - limit) order[m++] = i;
    std::sort(order.begin(), order.begin() + m, [&](int a, int b) { return w[a] > w[b] || (w[a] == w[b] && a < b); });
    uint64_t mass = 0;
    int kept = m;
    for (int i = 0; i < m; i++) {
        mass += w[order[i]];
        if (mass > limit) {
            kept = i + 1;
            break;
        }
    }
    return first_past(sampling::scale_by_draw(mass, units), kept, w, [&](int i) { return order[i]; });
}
