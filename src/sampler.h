// Choosing the next token from logits: greedy, temperature, top-p; seeded.
#pragma once
#include "src/util.h"
#include <vector>

class Sampler {
public:
    // temperature 0 = greedy argmax; topp in (0, 1) = nucleus sampling, else plain sampling.
    Sampler(int vocab_size, float temperature, float topp, uint64_t seed);
    int sample(const float* logits);  // logits (vocab_size), not modified

private:
    int vocab_size_;
    float temperature_, topp_;
    Rng rng_;
    std::vector<float> probs_;  // (vocab_size)
    std::vector<int> order_;    // (vocab_size) candidates for top-p
};
