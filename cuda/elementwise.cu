// The memory-bound element-wise ops: RoPE, SwiGLU, residual add, embedding lookup. Each
// reads and writes every element once, so the goal is bandwidth: grid-stride loops over
// a few blocks per SM, float4 accesses where the data is 16-byte aligned.
#include "cuda/common.cuh"
#include "cuda/kernels.h"
#include <cmath>

using namespace kvk;

namespace {

// ---- RoPE ------------------------------------------------------------------------------
// The frequencies are computed on the host with the reference's float arithmetic (powf),
// so the angles are bit for bit those of the reference and of llama2.c: a one-ulp change
// in a frequency moves the angle at position p by p ulps. They travel as a kernel
// argument and are copied to shared memory, since threads of a warp read different ones.
constexpr int ROPE_MAX_HALF = 256;
struct RopeFreqs {
    float f[ROPE_MAX_HALF];
};

// One thread per (row, pair index i): the angle depends on the row's position and i
// only, so its sincos (the costly part) is computed once and applied to the pair i of
// every head of the row. Consecutive threads take consecutive i, so each head's pairs
// are read and written coalesced. I is the index type (32-bit unless the tensor is
// huge, since 64-bit division is slow).
template <typename I>
__global__ void __launch_bounds__(256) rope_kernel(float* x, const int* positions, int n, int n_heads, int head_size,
                                                   RopeFreqs fr, bool half_split) {
    __shared__ float freq[ROPE_MAX_HALF];
    const int half = head_size / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) freq[i] = fr.f[i];
    __syncthreads();
    const I total = (I)n * (I)half;
    const I stride = (I)gridDim.x * blockDim.x;
    for (I idx = (I)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int i = (int)(idx % (I)half);
        const int r = (int)(idx / (I)half);
        const float angle = positions[r] * freq[i];
        float s, c;
        sincosf(angle, &s, &c);
        const int a = half_split ? i : 2 * i, b = half_split ? i + half : 2 * i + 1;
        float* row = x + (size_t)r * n_heads * head_size;
        constexpr int H = 4;  // heads per step: their loads are issued before any store
        for (int h0 = 0; h0 < n_heads; h0 += H) {
            float x0[H], x1[H];
#pragma unroll
            for (int u = 0; u < H; u++) {
                const float* head = row + (size_t)(h0 + u) * head_size;
                x0[u] = h0 + u < n_heads ? head[a] : 0.0f;
                x1[u] = h0 + u < n_heads ? head[b] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < H; u++) {
                if (h0 + u >= n_heads) break;
                float* head = row + (size_t)(h0 + u) * head_size;
                head[a] = x0[u] * c - x1[u] * s;
                head[b] = x0[u] * s + x1[u] * c;
            }
        }
    }
}

// ---- SwiGLU and residual add: float4 main part, scalar tail --------------------------------
__device__ __forceinline__ float silu_mul(float g, float h) { return g / (1.0f + expf(-g)) * h; }

template <bool VEC>
__global__ void __launch_bounds__(256) swiglu_kernel(float* hb, const float* __restrict__ hb2, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t done = 0;
    if (VEC) {
        float4* h4 = reinterpret_cast<float4*>(hb);
        const float4* u4 = reinterpret_cast<const float4*>(hb2);
        const size_t n4 = n / 4;
        for (size_t i = i0; i < n4; i += stride) {
            float4 g = h4[i];
            const float4 u = __ldg(u4 + i);
            g.x = silu_mul(g.x, u.x);
            g.y = silu_mul(g.y, u.y);
            g.z = silu_mul(g.z, u.z);
            g.w = silu_mul(g.w, u.w);
            h4[i] = g;
        }
        done = n4 * 4;
    }
    for (size_t i = done + i0; i < n; i += stride) hb[i] = silu_mul(hb[i], hb2[i]);
}

template <bool VEC>
__global__ void __launch_bounds__(256) residual_kernel(float* x, const float* __restrict__ y, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t done = 0;
    if (VEC) {
        float4* x4 = reinterpret_cast<float4*>(x);
        const float4* y4 = reinterpret_cast<const float4*>(y);
        const size_t n4 = n / 4;
        for (size_t i = i0; i < n4; i += stride) {
            float4 a = x4[i];
            const float4 b = __ldg(y4 + i);
            a.x += b.x;
            a.y += b.y;
            a.z += b.z;
            a.w += b.w;
            x4[i] = a;
        }
        done = n4 * 4;
    }
    for (size_t i = done + i0; i < n; i += stride) x[i] += y[i];
}

// ---- embedding: a block copies whole rows (grid-stride over rows) ------------------------
template <bool VEC>
__global__ void __launch_bounds__(256) embedding_kernel(float* __restrict__ out, const float* __restrict__ table,
                                                        const int* __restrict__ tokens, int n, int dim) {
    for (int r = blockIdx.x; r < n; r += gridDim.x) {
        const float* src = table + (size_t)tokens[r] * dim;
        float* dst = out + (size_t)r * dim;
        if (VEC) {
            const float4* s4 = reinterpret_cast<const float4*>(src);
            float4* d4 = reinterpret_cast<float4*>(dst);
            for (int i = threadIdx.x; i < dim / 4; i += blockDim.x) d4[i] = __ldg(s4 + i);
        } else {
            for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = __ldg(src + i);
        }
    }
}

}  // namespace

void rope_gpu(float* x, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style) {
    if (n < 0 || n_heads < 0 || head_size < 0) bad_args("rope: negative size");
    if (head_size % 2 != 0 || head_size / 2 > ROPE_MAX_HALF)
        bad_args("rope: head_size must be even and at most " + std::to_string(2 * ROPE_MAX_HALF) + " (got " +
                 std::to_string(head_size) + ")");
    const size_t items = (size_t)n * (head_size / 2);  // (row, pair) items; each covers every head
    if (items == 0 || n_heads == 0) return;
    RopeFreqs fr{};
    for (int i = 0; i < head_size / 2; i++) fr.f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)head_size);
    const bool half_split = style == RopeStyle::HalfSplit;
    const int grid = stride_grid(items, 256);
    if (items + (size_t)grid * 256 < (size_t)UINT32_MAX)  // no 32-bit overflow in idx += stride
        rope_kernel<uint32_t><<<grid, 256, 0, launch_stream()>>>(x, positions, n, n_heads, head_size, fr, half_split);
    else
        rope_kernel<size_t><<<grid, 256, 0, launch_stream()>>>(x, positions, n, n_heads, head_size, fr, half_split);
    CUDA_CHECK_LAST();
}

void swiglu_gpu(float* hb, const float* hb2, size_t n) {
    if (n == 0) return;
    const bool vec = aligned16(hb) && aligned16(hb2);
    const int grid = stride_grid(vec ? n / 4 + 1 : n, 256);
    if (vec)
        swiglu_kernel<true><<<grid, 256, 0, launch_stream()>>>(hb, hb2, n);
    else
        swiglu_kernel<false><<<grid, 256, 0, launch_stream()>>>(hb, hb2, n);
    CUDA_CHECK_LAST();
}

void residual_add_gpu(float* x, const float* y, size_t n) {
    if (n == 0) return;
    const bool vec = aligned16(x) && aligned16(y);
    const int grid = stride_grid(vec ? n / 4 + 1 : n, 256);
    if (vec)
        residual_kernel<true><<<grid, 256, 0, launch_stream()>>>(x, y, n);
    else
        residual_kernel<false><<<grid, 256, 0, launch_stream()>>>(x, y, n);
    CUDA_CHECK_LAST();
}

void embedding_gpu(float* out, const float* token_embedding, const int* tokens, int n, int dim) {
    if (n < 0 || dim < 0) bad_args("embedding: negative size");
    if (n == 0 || dim == 0) return;
    const int grid = std::min(n, num_sms() * 16);
    const bool vec = dim % 4 == 0 && aligned16(out) && aligned16(token_embedding);
    const int threads = std::min(256, std::max(WARP, ceil_div(vec ? dim / 4 : dim, WARP) * WARP));
    if (vec)
        embedding_kernel<true><<<grid, threads, 0, launch_stream()>>>(out, token_embedding, tokens, n, dim);
    else
        embedding_kernel<false><<<grid, threads, 0, launch_stream()>>>(out, token_embedding, tokens, n, dim);
    CUDA_CHECK_LAST();
}
