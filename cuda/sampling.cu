// Sampling on the device (cuda/decode_kernels.h): one block per sequence turns its logits
// into one token id, so a decode step sends the host 4 bytes per sequence instead of its
// logits. The same arithmetic as the CPU sampler (src/text/sampler.cpp), on the integer
// weights of src/text/sampling_math.h, so the same logits and draw give the same token:
//
//   argmax  the largest logit, the lowest id among equal ones
//   sample  weights w_i = floor(2^31 exp((l_i - max) / T)) and their total S (exact);
//           full distribution: the first id whose running weight exceeds floor(r S);
//           top-p: the CPU sorts tokens heaviest first and keeps them until their weight
//           exceeds limit = floor(topp S). Sorting is costly in one block, so the kernel
//           finds the same cut by binary search on the weight value v: F(v), the weight of
//           all tokens with w >= v, falls as v grows, and the nucleus' lightest weight v* is
//           the largest v with F(v) > limit; it keeps the t lowest ids of weight v* that
//           bring the weight over the limit. The drawn token is found the same way within
//           the nucleus: the largest u with F(u) > target, then among the ties of weight u
//           the one at index (target - F(u + 1)) / u in id order.
// Each binary search takes about 32 block-wide sums (weights are below 2^32); no GPU has
// timed this yet.
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"
#include "src/text/sampling_math.h"
#include <climits>

using namespace kvk;

namespace {

constexpr int THREADS = 512, WARPS = THREADS / WARP;

__device__ __forceinline__ uint64_t warp_sum_u64(uint64_t v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;
}

// Sum over the block; every thread gets it. `red` holds WARPS values.
__device__ uint64_t block_sum(uint64_t v, uint64_t* red) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    v = warp_sum_u64(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    uint64_t total = 0;
    for (int w = 0; w < WARPS; w++) total += red[w];
    __syncthreads();  // red is read before the next call writes it
    return total;
}

// The sum of the values of threads before this one (in thread order); `red` holds WARPS values.
__device__ uint64_t block_exclusive_scan(uint64_t v, uint64_t* red) {
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    uint64_t inclusive = v;
#pragma unroll
    for (int off = 1; off < WARP; off <<= 1) {
        const uint64_t before = __shfl_up_sync(FULL_MASK, inclusive, off);
        if (lane >= off) inclusive += before;
    }
    if (lane == WARP - 1) red[warp] = inclusive;
    __syncthreads();
    uint64_t earlier = 0;
    for (int w = 0; w < warp; w++) earlier += red[w];
    __syncthreads();
    return earlier + inclusive - v;
}

// F(v): the weight of the tokens whose weight is at least v.
__device__ uint64_t mass_at_least(const uint32_t* w, int vocab, uint64_t v, uint64_t* red) {
    uint64_t local = 0;
    for (int i = threadIdx.x; i < vocab; i += THREADS)
        if (w[i] >= v) local += w[i];
    return block_sum(local, red);
}

// The largest v >= lo with F(v) > bound, given F(lo) > bound (F falls as v grows).
__device__ uint64_t largest_weight_above(const uint32_t* w, int vocab, uint64_t bound, uint64_t lo, uint64_t* red) {
    uint64_t hi = (uint64_t)sampling::kTopWeight + 1;  // F(hi) = 0 <= bound
    while (hi - lo > 1) {                              // block-uniform: every thread has the same sums
        const uint64_t mid = lo + (hi - lo) / 2;
        if (mass_at_least(w, vocab, mid, red) > bound) lo = mid;
        else hi = mid;
    }
    return lo;
}

// Each thread owns one contiguous run of ids, so that "the first id such that ..." is the
// first in the run of the one thread whose running total crosses the mark.
struct Run {
    int begin, end;
};
__device__ Run my_run(int vocab) {
    const int per = (vocab + THREADS - 1) / THREADS;
    const int begin = min(vocab, (int)threadIdx.x * per);
    return Run{begin, min(vocab, begin + per)};
}

// out = the first id whose running weight (in id order) exceeds target < the total.
__device__ void write_first_past(int* out, const uint32_t* w, int vocab, uint64_t target, uint64_t* red) {
    const Run run = my_run(vocab);
    uint64_t local = 0;
    for (int i = run.begin; i < run.end; i++) local += w[i];
    uint64_t cdf = block_exclusive_scan(local, red);
    if (target < cdf || target >= cdf + local) return;  // not in this thread's run
    for (int i = run.begin; i < run.end; i++) {
        cdf += w[i];
        if (target < cdf) {
            *out = i;
            return;
        }
    }
}

// out = the id of the n-th (from 0) token of weight u, in id order.
__device__ void write_nth_of_weight(int* out, const uint32_t* w, int vocab, uint32_t u, uint64_t n, uint64_t* red) {
    const Run run = my_run(vocab);
    uint64_t local = 0;
    for (int i = run.begin; i < run.end; i++) local += w[i] == u;
    uint64_t seen = block_exclusive_scan(local, red);
    if (n < seen || n >= seen + local) return;
    for (int i = run.begin; i < run.end; i++)
        if (w[i] == u && seen++ == n) {
            *out = i;
            return;
        }
}

__global__ void __launch_bounds__(THREADS) argmax_kernel(int* out, const float* logits, size_t row_stride, int vocab) {
    __shared__ float best_v[WARPS];
    __shared__ int best_i[WARPS];
    __shared__ int non_finite;  // any NaN or infinite logit in the row: the row's id is -1
    const float* row = logits + blockIdx.x * row_stride;
    const int lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    if (threadIdx.x == 0) non_finite = 0;
    __syncthreads();
    float v = -INFINITY;
    int at = INT_MAX;
    for (int i = threadIdx.x; i < vocab; i += THREADS) {
        const float x = row[i];
        if (!(fabsf(x) < INFINITY)) non_finite = 1;  // every writer writes the same value
        if (x > v || (x == v && i < at)) {
            v = x;
            at = i;
        }
    }
    // the larger value wins; equal values, the lower id
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) {
        const float v2 = __shfl_xor_sync(FULL_MASK, v, off);
        const int at2 = __shfl_xor_sync(FULL_MASK, at, off);
        if (v2 > v || (v2 == v && at2 < at)) {
            v = v2;
            at = at2;
        }
    }
    if (lane == 0) {
        best_v[warp] = v;
        best_i[warp] = at;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < WARPS; w++)
            if (best_v[w] > v || (best_v[w] == v && best_i[w] < at)) {
                v = best_v[w];
                at = best_i[w];
            }
        out[blockIdx.x] = non_finite ? -1 : at;  // the host refuses -1 (read_sampled)
    }
}

__global__ void __launch_bounds__(THREADS) sample_kernel(int* out, const float* logits, size_t row_stride,
                                                         const float* draws, int vocab, float temperature, float topp,
                                                         uint32_t* scratch) {
    __shared__ uint64_t red[WARPS];
    __shared__ float red_max[WARPS];
    const int b = blockIdx.x, lane = threadIdx.x % WARP, warp = threadIdx.x / WARP;
    const float* row = logits + b * row_stride;
    __shared__ int non_finite;  // any NaN or infinite logit in the row: the row's id is -1
    uint32_t* w = scratch + (size_t)b * vocab;

    if (threadIdx.x == 0) non_finite = 0;
    __syncthreads();
    float mx = -INFINITY;
    for (int i = threadIdx.x; i < vocab; i += THREADS) {
        if (!(fabsf(row[i]) < INFINITY)) non_finite = 1;  // every writer writes the same value
        mx = fmaxf(mx, row[i]);
    }
    mx = warp_max(mx);
    if (lane == 0) red_max[warp] = mx;
    __syncthreads();
    if (non_finite) {  // block-uniform: read after the barrier, written only before it
        if (threadIdx.x == 0) out[b] = -1;
        return;
    }
    for (int i = 0; i < WARPS; i++) mx = fmaxf(mx, red_max[i]);

    uint64_t local = 0;
    for (int i = threadIdx.x; i < vocab; i += THREADS) local += w[i] = sampling::token_weight(row[i], mx, temperature);
    const uint64_t total = block_sum(local, red);  // its barriers also publish w to the block
    const uint32_t units = sampling::draw_units(draws[b]);

    if (!(topp > 0.0f && topp < 1.0f)) {
        write_first_past(out + b, w, vocab, sampling::scale_by_draw(total, units), red);
        return;
    }
    // the nucleus: all tokens heavier than v*, and the t lowest ids of weight v*
    const uint64_t limit = sampling::top_p_limit(topp, total);
    const uint64_t vstar = largest_weight_above(w, vocab, limit, 1, red);  // F(1) = total > limit
    const uint64_t heavier = mass_at_least(w, vocab, vstar + 1, red);
    const uint64_t t = (limit - heavier) / vstar + 1;
    const uint64_t mass = heavier + t * vstar;
    // the draw, within the nucleus in its order (heaviest first, then by id)
    const uint64_t target = sampling::scale_by_draw(mass, units);
    const uint64_t u = largest_weight_above(w, vocab, target, vstar, red);  // F(v*) in the nucleus = mass > target
    const uint64_t before = mass_at_least(w, vocab, u + 1, red);
    write_nth_of_weight(out + b, w, vocab, (uint32_t)u, (target - before) / u, red);
}

void check_rows(const char* what, int batch, int vocab, size_t row_stride) {
    if (batch < 0 || batch > 65535) bad_args(std::string(what) + ": batch must be 0..65535");
    if (vocab < 1) bad_args(std::string(what) + ": empty vocabulary");
    if (row_stride < (size_t)vocab) bad_args(std::string(what) + ": rows overlap (stride below the vocabulary)");
}

}  // namespace

void argmax_gpu(int* out, const float* logits, size_t row_stride, int batch, int vocab) {
    check_rows("argmax", batch, vocab, row_stride);
    if (batch == 0) return;
    argmax_kernel<<<batch, THREADS, 0, launch_stream()>>>(out, logits, row_stride, vocab);
    CUDA_CHECK_LAST();
}

void sample_gpu(int* out, const float* logits, size_t row_stride, const float* draws, int batch, int vocab,
                float temperature, float topp, uint32_t* scratch) {
    check_rows("sample", batch, vocab, row_stride);
    if (!(temperature > 0.0f) || !std::isfinite(temperature)) bad_args("sample: temperature must be > 0 (0: use argmax)");
    if (!(topp >= 0.0f && topp <= 1.0f)) bad_args("sample: top-p must be in [0, 1]");
    if (batch == 0) return;
    sample_kernel<<<batch, THREADS, 0, launch_stream()>>>(out, logits, row_stride, draws, vocab, temperature, topp, scratch);
    CUDA_CHECK_LAST();
}
