// Choosing the next token from logits: greedy, temperature, top-p; seeded.
#pragma once
#include "src/util.h"
#include <cstdint>
#include <vector>

class Sampler {
public:
    // temperature 0 = greedy argmax; topp in (0, 1) = nucleus sampling, 0 or 1 = the full
    // distribution. The buffers are allocated here, so sample() never allocates.
    Sampler(int vocab_size, float temperature, float topp, uint64_t seed);
    int sample(const float* logits);  // logits (vocab_size), not modified

private:
    void softmax(const float* logits);  // probs_ = softmax(logits / temperature)
    int sample_all(float r) const;
    int sample_top_p(float r);

    int vocab_size_;
    float temperature_, topp_;
    Rng rng_;
    std::vector<float> probs_;  // (vocab_size)
    std::vector<int> order_;    // (vocab_size) top-p candidates, most probable first
};
