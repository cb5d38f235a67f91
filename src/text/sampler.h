// Choosing the next token from logits: greedy, temperature, top-p; seeded. This is the
// reference the GPU sampler (cuda/sampling.cu) must match token for token: both follow the
// integer arithmetic of src/text/sampling_math.h, so the same logits and the same draw give the
// same token on either device.
#pragma once
#include "src/util.h"
#include <cstdint>
#include <vector>

struct SamplingSettings {
    float temperature = 0.0f;  // 0 = greedy argmax
    float topp = 1.0f;         // in (0, 1): nucleus sampling; 0 or 1: the full distribution
    bool greedy() const { return temperature == 0.0f; }
};
// One clear error for a temperature below 0 (or not finite) or a top-p outside [0, 1].
void check_sampling(const SamplingSettings& s);

// The token for one sequence's logits (vocab_size) and a uniform draw in [0, 1), unused
// when greedy. `weights` and `order` are scratch (resized here).
int sample_token(const float* logits, int vocab_size, const SamplingSettings& s, float draw,
                 std::vector<uint32_t>& weights, std::vector<int>& order);

class Sampler {
public:
    // The buffers are allocated here, so sample() never allocates.
    Sampler(int vocab_size, float temperature, float topp, uint64_t seed);
    int sample(const float* logits);  // logits (vocab_size), not modified
    // The draw sample() would use next, taken from the same generator; for a sampler that
    // runs elsewhere (the GPU's). 0 when greedy: greedy consumes no draws.
    float next_draw();
    const SamplingSettings& settings() const { return settings_; }

private:
    int vocab_size_;
    SamplingSettings settings_;
    Rng rng_;
    std::vector<uint32_t> weights_;  // (vocab_size)
    std::vector<int> order_;         // (vocab_size) top-p candidates, heaviest first
};
