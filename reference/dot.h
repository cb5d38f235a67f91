// The float dot product every CPU product uses, with its order of additions written down.
//
// A float sum depends on the order of its additions. The CPU path promises that one-pass
// prefill equals token by token to the last bit (walkthrough 1.8), and the blocked GEMM
// (reference/matmul_blocked.cpp) computes many dot products at once; both hold only if
// every product of a row and a weight row adds in one fixed order, whoever computes it.
// So the order is spelled out here rather than left to the compiler:
//
//   8 lanes: lane j sums a[i] * b[i] for i = j, j + 8, j + 16, ... in increasing i, each
//   step a fused multiply-add where the CPU has one; then the lanes are added as a tree,
//   ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).
//
// Eight lanes are one 256-bit vector: GCC turns the lane loop into one vector FMA per step
// (-O3 -march=native), so this is as fast as a compiler-vectorized reduction, and its
// result does not depend on the vector width the compiler picks.
#pragma once
#include <cmath>

constexpr int kDotLanes = 8;

// a * b + c, rounded once where the CPU has a fast FMA (FP_FAST_FMAF), else twice; the
// same choice everywhere in one build, so two kernels that follow the lane order agree.
static inline float mul_add(float a, float b, float c) {
#ifdef FP_FAST_FMAF
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
}

// The tree that adds the 8 lanes.
static inline float lane_total(const float* lane) {
    float half[4], quarter[2];
    for (int j = 0; j < 4; j++) half[j] = lane[j] + lane[j + 4];
    for (int j = 0; j < 2; j++) quarter[j] = half[j] + half[j + 2];
    return quarter[0] + quarter[1];
}

// sum a[i] * b[i], i < n, in the lane order above.
static inline float dot(const float* a, const float* b, int n) {
    float lane[kDotLanes] = {};
    int i = 0;
    for (; i + kDotLanes <= n; i += kDotLanes)
#pragma omp simd
        for (int j = 0; j < kDotLanes; j++) lane[j] = mul_add(a[i + j], b[i + j], lane[j]);
    for (int j = 0; i + j < n; j++) lane[j] = mul_add(a[i + j], b[i + j], lane[j]);  // the last n % 8
    return lane_total(lane);
}
