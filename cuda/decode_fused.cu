// Fused decode projections (cuda/decode_kernels.h). In a decode step every projection is a
// matrix-vector product over a handful of rows (the batch): the cost is reading the weight
// matrix once, and what the unfused path (cuda/kernels.h) adds around each product, an
// RMSNorm before, RoPE, the K/V store, SwiGLU or the residual add after, is small work in a
// separate launch that rereads and rewrites its activations. Here those ops ride along:
//
//   decode_qkv_gpu       RMSNorm prologue; W_Q | W_K | W_V in one pass (W_Q alone for a layer
//                        that reads another layer's cache); RoPE and the K/V store epilogue
//   decode_ffn_up_gpu    RMSNorm prologue; W1 and W3 side by side; SwiGLU epilogue
//   decode_residual_gpu  W_O or W2; residual add epilogue
//   decode_matvec_gpu    plain product (the classifier)
//
// One kernel template does all four: a "unit" is a pair of weight rows (RoPE rotates
// adjacent pairs, SwiGLU pairs a W1 row with its W3 row) dotted with every input row, and a
// Job type says where a unit's rows are and what its epilogue writes.
//
// The RMSNorm prologue needs no pass of its own: out = W (g * x / rms(x)) = (W (g * x)) / rms(x),
// and the warp that streams the weights reads every x[k] anyway, so it adds up x[k]^2 on the
// way and applies 1 / rms in the epilogue. The rounding differs from rmsnorm then matmul in
// the last bits only (the tests compare both within DESIGN.md's bounds).
//
// Memory: a warp streams its two rows with U = 4 float4 loads per lane per row in flight
// (4 KB per warp), twice what the gemv of cuda/gemm.cu keeps in flight. When the grid would
// be under two blocks per multiprocessor (few rows, e.g. W_O of a small model), `split`
// warps of a block share one pair along k (split-K inside the block) and add their partial
// sums through shared memory in a fixed order, so results do not depend on timing.
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"

using namespace kvk;

namespace {

constexpr int THREADS = 256, WARPS = THREADS / WARP;
constexpr int P = 2;  // weight rows per unit
constexpr int U = 4;  // float4 loads in flight per lane and row

__device__ __forceinline__ float dot4(const float4& a, const float4& b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

// One warp's share of the unit's dot products over k in [k0, k1):
//   acc[p][b] += sum_k w[p][k] * xs[b][k],  xs[b][k] = x[b][k] * g[k] with NORM, else x[b][k]
//   ss[b]     += sum_k x[b][k]^2            (NORM: the RMSNorm's sum of squares)
// x is (nb, k), row b at x + b * k. VEC: k, k0 and k1 are multiples of 4 and the arrays are
// 16-byte aligned.
template <int NB, bool VEC, bool NORM>
__device__ __forceinline__ void slice_dots(float (&acc)[P][NB], float (&ss)[NB], const float* const (&w)[P],
                                           const float* __restrict__ x, const float* __restrict__ g, int k, int nb,
                                           int k0, int k1, int lane) {
    if (VEC) {
        const float4* x4 = reinterpret_cast<const float4*>(x);
        const float4* g4 = reinterpret_cast<const float4*>(g);
        const float4* w4[P];
#pragma unroll
        for (int p = 0; p < P; p++) w4[p] = reinterpret_cast<const float4*>(w[p]);
        const int k4 = k / 4, end = k1 / 4;
        for (int i = k0 / 4 + lane; i < end; i += U * WARP) {
            // every weight load of this round is issued before any of them is used
            float4 wv[U][P];
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int p = 0; p < P; p++)
                    wv[u][p] = i + u * WARP < end ? __ldg(w4[p] + i + u * WARP) : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
            for (int u = 0; u < U; u++) {
                const int j = i + u * WARP;
                if (j >= end) break;
                const float4 gv = NORM ? __ldg(g4 + j) : make_float4(1.f, 1.f, 1.f, 1.f);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    if (b >= nb) break;
                    float4 xv = __ldg(x4 + (size_t)b * k4 + j);
                    if (NORM) {
                        ss[b] += dot4(xv, xv);
                        xv = make_float4(xv.x * gv.x, xv.y * gv.y, xv.z * gv.z, xv.w * gv.w);
                    }
#pragma unroll
                    for (int p = 0; p < P; p++) acc[p][b] += dot4(wv[u][p], xv);
                }
            }
        }
    } else {
        for (int i = k0 + lane; i < k1; i += WARP) {
            float wv[P];
#pragma unroll
            for (int p = 0; p < P; p++) wv[p] = __ldg(w[p] + i);
            const float gv = NORM ? __ldg(g + i) : 1.0f;
#pragma unroll
            for (int b = 0; b < NB; b++) {
                if (b >= nb) break;
                float xv = __ldg(x + (size_t)b * k + i);
                if (NORM) {
                    ss[b] += xv * xv;
                    xv *= gv;
                }
#pragma unroll
                for (int p = 0; p < P; p++) acc[p][b] += wv[p] * xv;
            }
        }
    }
}

// Block: WARPS warps, `split` per unit, so WARPS / split units per block. NB >= job.batch
// is the number of accumulators per row (a compile-time register count).
template <int NB, bool VEC, class Job>
__global__ void __launch_bounds__(THREADS) fused_kernel(Job job, int split) {
    __shared__ float part[WARPS][P * NB];  // per warp: its P x NB sums, when split > 1
    __shared__ float squares[WARPS][NB];   // sums of squares of each slice of k (NORM)
    const int warp = threadIdx.x / WARP, lane = threadIdx.x % WARP;
    const int unit = blockIdx.x * (WARPS / split) + warp / split, slice = warp % split;
    const bool active = unit < job.units;
    const int nb = job.batch;
    float acc[P][NB], ss[NB];
#pragma unroll
    for (int b = 0; b < NB; b++) {
        ss[b] = 0.0f;
#pragma unroll
        for (int p = 0; p < P; p++) acc[p][b] = 0.0f;
    }
    if (active) {
        const float* w[P];
        job.rows(unit, w);
        // this warp's slice of k; with VEC a whole number of float4
        const int per = VEC ? (job.k / 4 + split - 1) / split * 4 : (job.k + split - 1) / split;
        const int k0 = min(job.k, slice * per), k1 = min(job.k, k0 + per);
        slice_dots<NB, VEC, Job::NORM>(acc, ss, w, job.x, job.norm_weight, job.k, nb, k0, k1, lane);
    }
    // Lane sums to warp sums: every lane takes part in the shuffles (b < nb is warp-uniform),
    // and afterwards every lane holds the sums.
#pragma unroll
    for (int b = 0; b < NB; b++)
        if (b < nb)
#pragma unroll
            for (int p = 0; p < P; p++) acc[p][b] = warp_sum(acc[p][b]);
    if (Job::NORM) {
        // Every unit's warps cover the same slices of k, so the sums of squares are the same
        // for all of them: the block's first `split` warps (its first unit, always active)
        // reduce theirs, and every warp adds those up in the same order.
        if (warp < split) {
#pragma unroll
            for (int b = 0; b < NB; b++)
                if (b < nb) {
                    const float s = warp_sum(ss[b]);
                    if (lane == 0) squares[warp][b] = s;
                }
        }
        __syncthreads();
#pragma unroll
        for (int b = 0; b < NB; b++) {
            float s = 0.0f;
            if (b < nb)
                for (int sl = 0; sl < split; sl++) s += squares[sl][b];
            ss[b] = s;
        }
    }
    if (split > 1) {  // block-uniform: the slices of a unit meet in shared memory
        if (lane == 0) {
#pragma unroll
            for (int b = 0; b < NB; b++)
#pragma unroll
                for (int p = 0; p < P; p++) part[warp][p * NB + b] = acc[p][b];
        }
        __syncthreads();
        if (slice == 0) {
#pragma unroll
            for (int b = 0; b < NB; b++) {
                float a[P] = {};
                for (int sl = 0; sl < split; sl++)  // the same order in every run
#pragma unroll
                    for (int p = 0; p < P; p++) a[p] += part[warp + sl][p * NB + b];
#pragma unroll
                for (int p = 0; p < P; p++) acc[p][b] = a[p];
            }
        }
    }
    if (slice != 0 || !active) return;
    // lane b writes the outputs of input row b (registers are indexed at compile time)
#pragma unroll
    for (int b = 0; b < NB; b++)
        if (b == lane && b < nb) job.epilogue(unit, b, acc[0][b], acc[1][b], ss[b]);
}

// 1 / rms(x) from the sum of squares, as rmsnorm_gpu computes it.
__device__ __forceinline__ float rms_scale(float ss, int dim, float eps) { return 1.0f / sqrtf(ss / dim + eps); }

// Q, K and V of one layer: unit u is rows 2u, 2u+1 of Wq | Wk | Wv stacked (q_dim + 2 kv_dim
// rows; q_dim for a layer without K/V). Both rows of a pair lie in one matrix and one head,
// since q_dim, kv_dim and head_size are even: the pair is what RoPE rotates.
struct QkvJob {
    static constexpr bool NORM = true;
    const float* x;
    const float* norm_weight;
    int k, batch, units;
    float eps;
    const float *wq, *wk, *wv;
    int q_dim, kv_dim, head_size, context;
    float *q, *key_slot, *value_slot;
    const float* freqs;
    const int* counter;

    __device__ void rows(int unit, const float* (&w)[P]) const {
        const int c = 2 * unit;
        const float* r = c < q_dim            ? wq + (size_t)c * k
                         : c < q_dim + kv_dim ? wk + (size_t)(c - q_dim) * k
                                              : wv + (size_t)(c - q_dim - kv_dim) * k;
        w[0] = r;
        w[1] = r + k;
    }
    __device__ void epilogue(int unit, int b, float d0, float d1, float ss) const {
        const float scale = rms_scale(ss, k, eps);
        float v0 = d0 * scale, v1 = d1 * scale;
        const int c = 2 * unit, pos = *counter;
        if (c < q_dim + kv_dim) {  // RoPE on Q and K, adjacent pairs, as rope_gpu
            const float angle = pos * freqs[(c % head_size) / 2];
            float s, co;
            sincosf(angle, &s, &co);
            const float r0 = v0 * co - v1 * s, r1 = v0 * s + v1 * co;
            v0 = r0;
            v1 = r1;
        }
        float* dst;
        if (c < q_dim) {
            dst = q + (size_t)b * q_dim + c;
        } else {  // the cache, at the counter's position of sequence b
            if (pos < 0 || pos >= context) return;  // past the context: nothing (the host refuses such a step)
            const bool is_k = c < q_dim + kv_dim;
            const int j = c - q_dim - (is_k ? 0 : kv_dim);
            dst = (is_k ? key_slot : value_slot) + ((size_t)b * context + pos) * kv_dim + j;
        }
        dst[0] = v0;
        dst[1] = v1;
    }
};

// The FFN's up projections: unit u is row u of W1 (gate) and row u of W3 (up).
struct FfnUpJob {
    static constexpr bool NORM = true;
    const float* x;
    const float* norm_weight;
    int k, batch, units;
    float eps;
    const float *w1, *w3;
    float* hb;

    __device__ void rows(int unit, const float* (&w)[P]) const {
        w[0] = w1 + (size_t)unit * k;
        w[1] = w3 + (size_t)unit * k;
    }
    __device__ void epilogue(int unit, int b, float d0, float d1, float ss) const {
        const float scale = rms_scale(ss, k, eps);
        const float g = d0 * scale, h = d1 * scale;
        hb[(size_t)b * units + unit] = g / (1.0f + expf(-g)) * h;  // silu(g) * h, as swiglu_gpu
    }
};

// out (batch, d) = or += in @ w^T: unit u is rows 2u, 2u+1 (the second repeats the first
// when d is odd, and is not written).
struct RowsJob {
    static constexpr bool NORM = false;
    const float* x;
    const float* norm_weight;  // unused
    int k, batch, units;
    const float* w;
    float* out;
    int d;
    bool add;

    __device__ void rows(int unit, const float* (&r)[P]) const {
        const int c = 2 * unit;
        r[0] = w + (size_t)c * k;
        r[1] = w + (size_t)min(c + 1, d - 1) * k;
    }
    __device__ void epilogue(int unit, int b, float d0, float d1, float) const {
        const int c = 2 * unit;
        float* o = out + (size_t)b * d + c;
        if (add) {
            o[0] += d0;
            if (c + 1 < d) o[1] += d1;
        } else {
            o[0] = d0;
            if (c + 1 < d) o[1] = d1;
        }
    }
};

template <int NB, class Job>
void launch_nb(const Job& job, int split, bool vec) {
    const int blocks = ceil_div(job.units, WARPS / split);
    if (vec)
        fused_kernel<NB, true, Job><<<blocks, THREADS, 0, launch_stream()>>>(job, split);
    else
        fused_kernel<NB, false, Job><<<blocks, THREADS, 0, launch_stream()>>>(job, split);
    CUDA_CHECK_LAST();
}

template <class Job>
void launch_fused(const char* what, const Job& job, int split, bool vec) {
    if (job.batch < 1 || job.batch > kMaxFusedBatch)
        bad_args(std::string(what) + ": batch must be 1.." + std::to_string(kMaxFusedBatch) + " (got " + std::to_string(job.batch) + ")");
    if (job.k < 1 || job.units < 1) bad_args(std::string(what) + ": empty matrix");
    if (split == 0) split = decode_auto_split(job.units, job.k);
    if (split != 1 && split != 2 && split != 4 && split != 8)
        bad_args(std::string(what) + ": split must be 1, 2, 4 or 8 (got " + std::to_string(split) + ")");
    if (job.batch <= 1) return launch_nb<1>(job, split, vec);
    if (job.batch <= 2) return launch_nb<2>(job, split, vec);
    if (job.batch <= 4) return launch_nb<4>(job, split, vec);
    if (job.batch <= 8) return launch_nb<8>(job, split, vec);
    return launch_nb<16>(job, split, vec);
}

bool all_aligned(std::initializer_list<const void*> ptrs) {
    for (const void* p : ptrs)
        if (p && !aligned16(p)) return false;
    return true;
}

}  // namespace

int decode_auto_split(int units, int k) {
    // Double the warps per pair while the grid is under two blocks per multiprocessor and
    // each slice keeps at least 128 floats (a float4 per lane and row).
    int split = 1;
    while (split < WARPS && ceil_div(units * split, WARPS) < 2 * num_sms() && k / (2 * split) >= 128) split *= 2;
    return split;
}

void decode_qkv_gpu(float* q, float* key_slot, float* value_slot, const float* x, const float* norm_weight,
                    const float* wq, const float* wk, const float* wv, const float* rope_freqs, const int* counter,
                    int batch, int dim, int n_heads, int n_kv_heads, int head_size, int context, float eps, int split) {
    const bool owns_kv = wk != nullptr;
    if (owns_kv != (wv != nullptr) || owns_kv != (key_slot != nullptr) || owns_kv != (value_slot != nullptr))
        bad_args("decode_qkv: give W_K, W_V and both cache slots, or none of them");
    if (head_size <= 0 || head_size % 2 != 0) bad_args("decode_qkv: head_size must be even");
    if (n_heads <= 0 || n_kv_heads <= 0 || dim <= 0 || context <= 0) bad_args("decode_qkv: sizes must be positive");
    QkvJob job;
    job.x = x;
    job.norm_weight = norm_weight;
    job.k = dim;
    job.batch = batch;
    job.eps = eps;
    job.wq = wq;
    job.wk = wk;
    job.wv = wv;
    job.q_dim = n_heads * head_size;
    job.kv_dim = owns_kv ? n_kv_heads * head_size : 0;
    job.units = (job.q_dim + 2 * job.kv_dim) / 2;
    job.head_size = head_size;
    job.context = context;
    job.q = q;
    job.key_slot = key_slot;
    job.value_slot = value_slot;
    job.freqs = rope_freqs;
    job.counter = counter;
    const bool vec = dim % 4 == 0 && all_aligned({x, norm_weight, wq, wk, wv});
    launch_fused("decode_qkv", job, split, vec);
}

void decode_ffn_up_gpu(float* hb, const float* x, const float* norm_weight, const float* w1, const float* w3, int batch,
                       int dim, int hidden, float eps, int split) {
    if (dim <= 0 || hidden <= 0) bad_args("decode_ffn_up: sizes must be positive");
    FfnUpJob job;
    job.x = x;
    job.norm_weight = norm_weight;
    job.k = dim;
    job.batch = batch;
    job.units = hidden;
    job.eps = eps;
    job.w1 = w1;
    job.w3 = w3;
    job.hb = hb;
    const bool vec = dim % 4 == 0 && all_aligned({x, norm_weight, w1, w3});
    launch_fused("decode_ffn_up", job, split, vec);
}

static void rows_product(const char* what, float* out, const float* in, const float* w, int batch, int k, int d,
                         int split, bool add) {
    if (k <= 0 || d <= 0) bad_args(std::string(what) + ": sizes must be positive");
    RowsJob job;
    job.x = in;
    job.norm_weight = nullptr;
    job.k = k;
    job.batch = batch;
    job.units = ceil_div(d, 2);
    job.w = w;
    job.out = out;
    job.d = d;
    job.add = add;
    const bool vec = k % 4 == 0 && all_aligned({in, w});
    launch_fused(what, job, split, vec);
}

void decode_residual_gpu(float* x, const float* in, const float* w, int batch, int k, int d, int split) {
    rows_product("decode_residual", x, in, w, batch, k, d, split, true);
}

void decode_matvec_gpu(float* out, const float* in, const float* w, int batch, int k, int d, int split) {
    rows_product("decode_matvec", out, in, w, batch, k, d, split, false);
}
