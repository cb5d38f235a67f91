// The arithmetic of sampling, shared by the CPU sampler (src/text/sampler.cpp, the reference) and
// the GPU sampler (cuda/sampling.cu), so that both pick the same token from the same logits
// and the same uniform draw, bit for bit:
//
// - A token's weight is floor(2^31 exp((logit - max) / temperature)), an integer: the most
//   probable token weighs 2^31, one 2^31 times less probable weighs 0 and is never drawn.
//   exp is computed here from fma, rint and ldexp only, which IEEE 754 rounds exactly on
//   every host and GPU, instead of the platforms' exp, which differ in the last bits.
// - Every sum of weights is an integer sum, exact in any order: the GPU adds in parallel,
//   the CPU in a loop, and they agree.
// - The draw r in [0, 1) (Rng::uniform: a 24-bit integer / 2^24) picks the token whose
//   cumulative weight first exceeds floor(r x total), computed in integers.
// - Ties: greedy takes the lowest id among the largest logits (as std::max_element does);
//   top-p orders tokens by weight, heaviest first, equal weights by lower id first.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KVS_SAMPLING_FN __host__ __device__ inline
#else
#define KVS_SAMPLING_FN inline
#endif

namespace sampling {

constexpr uint32_t kTopWeight = 1u << 31;  // the weight of the most probable token

// e^x for x <= 0 (0 below -60, and for NaN). Range reduction x = k ln2 + f, |f| <= ln2 / 2,
// then e^f by Taylor to degree 11 (error ~1e-13, far below the weights' 2^-31 resolution),
// then 2^k. Every addition is inside an fma, so no compiler can contract the arithmetic
// differently on the host and the device.
KVS_SAMPLING_FN double exp_nonpositive(double x) {
    if (!(x > -60.0)) return 0.0;
    const double k = rint(x * 1.4426950408889634);         // x / ln 2, to the nearest integer
    double f = fma(-k, 6.93147180369123816490e-01, x);     // ln 2, high part
    f = fma(-k, 1.90821492927058770002e-10, f);            // ln 2, low part
    double p = 2.5052108385441720e-08;                     // 1 / 11!
    p = fma(p, f, 2.7557319223985893e-07);                 // 1 / 10!
    p = fma(p, f, 2.7557319223985888e-06);                 // 1 / 9!
    p = fma(p, f, 2.4801587301587302e-05);                 // 1 / 8!
    p = fma(p, f, 1.9841269841269841e-04);                 // 1 / 7!
    p = fma(p, f, 1.3888888888888889e-03);                 // 1 / 6!
    p = fma(p, f, 8.3333333333333332e-03);                 // 1 / 5!
    p = fma(p, f, 4.1666666666666664e-02);                 // 1 / 4!
    p = fma(p, f, 1.6666666666666666e-01);                 // 1 / 3!
    p = fma(p, f, 0.5);
    p = fma(p, f, 1.0);
    p = fma(p, f, 1.0);
    return ldexp(p, (int)k);
}

// floor(2^31 exp((logit - max) / temperature)); 2^31 for the largest logit.
KVS_SAMPLING_FN uint32_t token_weight(float logit, float max, float temperature) {
    const double x = ((double)logit - (double)max) / (double)temperature;
    const double w = exp_nonpositive(x) * 2147483648.0;
    return w >= 2147483648.0 ? kTopWeight : (uint32_t)w;
}

// The draw r in [0, 1) as the integer r x 2^24 (exact for Rng::uniform's values).
KVS_SAMPLING_FN uint32_t draw_units(float r) {
    const float u = r * 16777216.0f;
    return u <= 0.0f ? 0u : u >= 16777215.0f ? 16777215u : (uint32_t)u;
}

// floor(mass x units / 2^24), exactly, without a 128-bit product: mass = a 2^24 + b.
KVS_SAMPLING_FN uint64_t scale_by_draw(uint64_t mass, uint32_t units) {
    return (mass >> 24) * units + (((mass & 0xFFFFFFu) * units) >> 24);
}

// The nucleus is the shortest run of the heaviest tokens whose weight exceeds this.
KVS_SAMPLING_FN uint64_t top_p_limit(float topp, uint64_t total) { return (uint64_t)((double)topp * (double)total); }

}  // namespace sampling
