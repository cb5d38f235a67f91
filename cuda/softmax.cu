// Row-wise softmax, in place, numerically safe (subtract the row max before exp), as the
// reference softmax. Versions (softmax_gpu(version, ...)):
//   1 thread per row        three serial passes: max, exp and sum, scale
//   2 block per row         the passes split over 256 threads, shared-memory tree reductions
//   3 block per row, fused  one read pass keeps an online (max, sum) pair, merged with warp
//                           shuffles; a second pass writes exp(x - max) / sum; float4 loads
#include "cuda/common.cuh"
#include "cuda/kernels.h"

using namespace kvk;

namespace {

// Version 1: one thread per row. Rows far apart in memory: uncoalesced, but simple.
__global__ void softmax_row_kernel(float* x, int rows, int n) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    float* p = x + (size_t)r * n;
    float m = p[0];
    for (int i = 1; i < n; i++) m = fmaxf(m, p[i]);
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        const float e = expf(p[i] - m);
        p[i] = e;
        s += e;
    }
    const float inv = 1.0f / s;
    for (int i = 0; i < n; i++) p[i] *= inv;
}

// Version 2: one block per row, classic shared-memory tree reductions (power-of-two block).
constexpr int THREADS2 = 256;

__global__ void __launch_bounds__(THREADS2) softmax_block_kernel(float* x, int rows, int n) {
    __shared__ float red[THREADS2];
    const int tid = threadIdx.x;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {  // block-uniform loop
        float* p = x + (size_t)r * n;
        float m = -INFINITY;
        for (int i = tid; i < n; i += THREADS2) m = fmaxf(m, p[i]);
        red[tid] = m;
        __syncthreads();
        for (int s = THREADS2 / 2; s > 0; s >>= 1) {
            if (tid < s) red[tid] = fmaxf(red[tid], red[tid + s]);
            __syncthreads();
        }
        m = red[0];
        __syncthreads();  // everyone has read red[0] before it is reused
        float sum = 0.0f;
        for (int i = tid; i < n; i += THREADS2) {
            const float e = expf(p[i] - m);
            p[i] = e;
            sum += e;
        }
        red[tid] = sum;
        __syncthreads();
        for (int s = THREADS2 / 2; s > 0; s >>= 1) {
            if (tid < s) red[tid] += red[tid + s];
            __syncthreads();
        }
        const float inv = 1.0f / red[0];
        __syncthreads();  // red[0] read before the next row reuses red
        for (int i = tid; i < n; i += THREADS2) p[i] *= inv;
    }
}

// Version 3: one read pass with an online (max, sum) per thread, merged across the block
// (warp shuffles, then one value per warp through shared memory), then one pass that
// writes. The second read of the row mostly hits L1/L2. blockDim is a multiple of 32.
template <bool VEC>
__global__ void __launch_bounds__(256) softmax_online_kernel(float* x, int rows, int n) {
    __shared__ float wm[32], ws[32];
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP, nwarps = blockDim.x / WARP;
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {  // block-uniform loop
        float* p = x + (size_t)r * n;
        float m = -INFINITY, s = 0.0f;
        if (VEC) {
            const float4* p4 = reinterpret_cast<const float4*>(p);
            for (int i = tid; i < n / 4; i += blockDim.x) {
                const float4 v = p4[i];
                const float mm = fmaxf(fmaxf(m, fmaxf(v.x, v.y)), fmaxf(v.z, v.w));
                s = s * expf(m - mm) + expf(v.x - mm) + expf(v.y - mm) + expf(v.z - mm) + expf(v.w - mm);
                m = mm;
            }
        } else {
            for (int i = tid; i < n; i += blockDim.x) {
                const float v = p[i];
                if (v > m) {
                    s = s * expf(m - v) + 1.0f;  // expf(-inf) = 0 for the first value
                    m = v;
                } else {
                    s += expf(v - m);
                }
            }
        }
        warp_softmax_merge(m, s);
        if (lane == 0) {
            wm[warp] = m;
            ws[warp] = s;
        }
        __syncthreads();
        // Every thread merges the warp totals in the same order: the same (m, s) everywhere.
        m = wm[0];
        s = ws[0];
        for (int w = 1; w < nwarps; w++) softmax_merge(m, s, wm[w], ws[w]);
        __syncthreads();  // wm/ws read before the next row overwrites them
        const float inv = 1.0f / s;
        if (VEC) {
            float4* p4 = reinterpret_cast<float4*>(p);
            for (int i = tid; i < n / 4; i += blockDim.x) {
                float4 v = p4[i];
                v.x = expf(v.x - m) * inv;
                v.y = expf(v.y - m) * inv;
                v.z = expf(v.z - m) * inv;
                v.w = expf(v.w - m) * inv;
                p4[i] = v;
            }
        } else {
            for (int i = tid; i < n; i += blockDim.x) p[i] = expf(p[i] - m) * inv;
        }
    }
}

const char* const kNames[] = {"auto", "thread-per-row", "block-tree", "block-online"};
constexpr int kVersions = 3;

}  // namespace

int softmax_versions() { return kVersions; }

const char* softmax_version_name(int version) {
    return version >= 0 && version <= kVersions ? kNames[version] : "unknown";
}

void softmax_gpu(int version, float* x, int rows, int n) {
    if (rows < 0 || n < 0) bad_args("softmax: negative size");
    if (version == 0) version = 3;
    if (version < 1 || version > kVersions)
        bad_args("softmax: no version " + std::to_string(version) + " (1.." + std::to_string(kVersions) + ", 0 = auto)");
    if (rows == 0 || n == 0) return;
    // A few blocks per SM, each looping over rows (as rmsnorm): with rows above this the loop
    // and its between-row barriers run in the tests too.
    const int grid = std::min(rows, num_sms() * 16);
    switch (version) {
        case 1:
            softmax_row_kernel<<<ceil_div(rows, 128), 128, 0, launch_stream()>>>(x, rows, n);
            break;
        case 2:
            softmax_block_kernel<<<grid, THREADS2, 0, launch_stream()>>>(x, rows, n);
            break;
        case 3: {
            const bool vec = n % 4 == 0 && aligned16(x);
            // short rows get a smaller block so that threads are not left idle
            const int per_thread = vec ? 4 : 1;
            int threads = ceil_div(ceil_div(n, per_thread), WARP) * WARP;
            threads = std::min(256, std::max(WARP, threads));
            if (vec)
                softmax_online_kernel<true><<<grid, threads, 0, launch_stream()>>>(x, rows, n);
            else
                softmax_online_kernel<false><<<grid, threads, 0, launch_stream()>>>(x, rows, n);
            break;
        }
    }
    CUDA_CHECK_LAST();
}
