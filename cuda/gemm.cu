// GEMM, out (n, d) = x (n, k) @ w (d, k)^T, row-major: the reference matmul. Both operands
// are contiguous along k, so every output is a dot of an x row with a w row. The versions
// rise in sophistication and each stays runnable (gemm(version, ...)):
//   1 naive                 one thread per output, everything from global memory
//   2 shared-memory tiles   32x32 tiles of x and w staged in shared memory
//   3 register blocking     128x128 block tile, 8x8 outputs per thread held in registers
//   4 float4 + double buf.  as 3, with 16-byte loads and the next tile loaded while the
//                           current one is multiplied
//   5 matrix-vector         warp per output column, for small n (decode)
#include "cuda/common.cuh"
#include "cuda/kernels.h"

using namespace kvk;

namespace {

// ---------------------------------------------------------------------------------------
// Version 1: naive. Thread (c, r) computes out[r][c]. Consecutive threads read different w
// rows (stride k), so the loads are not coalesced: the baseline everything else beats.
__global__ void gemm_naive_kernel(float* out, const float* x, const float* w, int n, int k, int d) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const int r = blockIdx.y * blockDim.y + threadIdx.y;
    if (r >= n || c >= d) return;
    const float* xr = x + (size_t)r * k;
    const float* wc = w + (size_t)c * k;
    float s = 0.0f;
    for (int i = 0; i < k; i++) s += xr[i] * wc[i];
    out[(size_t)r * d + c] = s;
}

// ---------------------------------------------------------------------------------------
// Version 2: shared-memory tiles. A 32x32 block stages 32x32 tiles of x and w (coalesced
// along k), then every thread dots its x row with its w row from shared memory. The +1
// pad makes ws[tx][kk] (32 threads, 32 different rows) hit 32 different banks.
constexpr int T2 = 32;

__global__ void __launch_bounds__(T2* T2) gemm_tiled_kernel(float* out, const float* x, const float* w, int n, int k, int d) {
    __shared__ float xs[T2][T2 + 1];
    __shared__ float ws[T2][T2 + 1];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int row0 = blockIdx.y * T2, col0 = blockIdx.x * T2;
    float s = 0.0f;
    for (int k0 = 0; k0 < k; k0 += T2) {
        const int kk = k0 + tx;
        const int xr = row0 + ty, wr = col0 + ty;
        xs[ty][tx] = (xr < n && kk < k) ? x[(size_t)xr * k + kk] : 0.0f;
        ws[ty][tx] = (wr < d && kk < k) ? w[(size_t)wr * k + kk] : 0.0f;
        __syncthreads();
#pragma unroll
        for (int i = 0; i < T2; i++) s += xs[ty][i] * ws[tx][i];
        __syncthreads();  // the tile is consumed before the next one overwrites it
    }
    const int r = row0 + ty, c = col0 + tx;
    if (r < n && c < d) out[(size_t)r * d + c] = s;
}

// ---------------------------------------------------------------------------------------
// Version 3: register blocking. A 128x128 output tile per block of 256 threads, each
// thread an 8x8 sub-tile. Per step of k it reads 8 x values and 8 w values from shared
// memory and does 64 multiply-adds with them: 4x fewer shared loads per FMA than
// version 2. Tiles are stored k-major (xs[k][m]) so the 8 values a thread needs sit
// side by side.
constexpr int B3 = 128, K3 = 8, R3 = 8, THREADS3 = 256;

__global__ void __launch_bounds__(THREADS3) gemm_regblock_kernel(float* out, const float* x, const float* w, int n, int k, int d) {
    __shared__ float xs[K3][B3];
    __shared__ float ws[K3][B3];
    const int tid = threadIdx.x;
    const int tx = tid % (B3 / R3), ty = tid / (B3 / R3);  // 16 x 16 threads
    const int row0 = blockIdx.y * B3, col0 = blockIdx.x * B3;
    float acc[R3][R3] = {};
    for (int k0 = 0; k0 < k; k0 += K3) {
        // 128 rows x 8 k of each operand: 4 elements per thread, 8 threads per row.
#pragma unroll
        for (int i = 0; i < B3 * K3 / THREADS3; i++) {
            const int e = tid + i * THREADS3;
            const int m = e / K3, kk = e % K3;
            const int gk = k0 + kk, xr = row0 + m, wr = col0 + m;
            xs[kk][m] = (xr < n && gk < k) ? x[(size_t)xr * k + gk] : 0.0f;
            ws[kk][m] = (wr < d && gk < k) ? w[(size_t)wr * k + gk] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < K3; kk++) {
            float a[R3], b[R3];
#pragma unroll
            for (int i = 0; i < R3; i++) a[i] = xs[kk][ty * R3 + i];
#pragma unroll
            for (int j = 0; j < R3; j++) b[j] = ws[kk][tx * R3 + j];
#pragma unroll
            for (int i = 0; i < R3; i++)
#pragma unroll
                for (int j = 0; j < R3; j++) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < R3; i++) {
        const int r = row0 + ty * R3 + i;
        if (r >= n) continue;
#pragma unroll
        for (int j = 0; j < R3; j++) {
            const int c = col0 + tx * R3 + j;
            if (c < d) out[(size_t)r * d + c] = acc[i][j];
        }
    }
}

// ---------------------------------------------------------------------------------------
// Version 4: version 3 plus
//  - float4 global loads (4 k values at once) when k % 4 == 0 and the rows are 16-byte
//    aligned; scalar loads otherwise (VEC = false), same kernel otherwise;
//  - float4 shared-memory reads: a thread's 8 rows are ty*4..+3 and 64+ty*4..+3 (and the
//    same for columns), so a warp's 16 column groups are contiguous 16-byte words
//    (no bank conflicts) and its rows are broadcasts;
//  - double buffering: the next k tile is fetched into registers while the current one is
//    multiplied, then stored into the other shared buffer; one barrier per tile.
constexpr int B4 = 128, K4 = 16, THREADS4 = 256, PAD4 = 4;  // pad keeps rows 16-byte aligned

template <bool VEC>
__device__ __forceinline__ float4 load4(const float* p, int row, int rows, int kk, int k) {
    // 4 consecutive k values of one row; out-of-range elements read as 0
    if (row >= rows) return make_float4(0.f, 0.f, 0.f, 0.f);
    const float* q = p + (size_t)row * k + kk;
    if (VEC) {
        // k % 4 == 0 and kk % 4 == 0: the 4 values are all in range or all out
        if (kk < k) return __ldg(reinterpret_cast<const float4*>(q));
        return make_float4(0.f, 0.f, 0.f, 0.f);
    }
    float4 v;
    v.x = kk + 0 < k ? __ldg(q + 0) : 0.0f;
    v.y = kk + 1 < k ? __ldg(q + 1) : 0.0f;
    v.z = kk + 2 < k ? __ldg(q + 2) : 0.0f;
    v.w = kk + 3 < k ? __ldg(q + 3) : 0.0f;
    return v;
}

template <bool VEC>
__global__ void __launch_bounds__(THREADS4, 2) gemm_vec_kernel(float* __restrict__ out, const float* __restrict__ x,
                                                            const float* __restrict__ w, int n, int k, int d) {
    __shared__ __align__(16) float xs[2][K4][B4 + PAD4];
    __shared__ __align__(16) float ws[2][K4][B4 + PAD4];
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * B4, col0 = blockIdx.x * B4;
    // loader: 128 rows x 16 k = 512 float4 per operand, 2 per thread; 4 threads per row
    const int lm = tid / 4, lk = (tid % 4) * 4;
    float4 xr[2], wr[2];

    auto fetch = [&](int k0) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            xr[i] = load4<VEC>(x, row0 + lm + 64 * i, n, k0 + lk, k);
            wr[i] = load4<VEC>(w, col0 + lm + 64 * i, d, k0 + lk, k);
        }
    };
    auto stash = [&](int buf) {  // transpose into the k-major tiles
#pragma unroll
        for (int i = 0; i < 2; i++) {
            const int m = lm + 64 * i;
            xs[buf][lk + 0][m] = xr[i].x; xs[buf][lk + 1][m] = xr[i].y;
            xs[buf][lk + 2][m] = xr[i].z; xs[buf][lk + 3][m] = xr[i].w;
            ws[buf][lk + 0][m] = wr[i].x; ws[buf][lk + 1][m] = wr[i].y;
            ws[buf][lk + 2][m] = wr[i].z; ws[buf][lk + 3][m] = wr[i].w;
        }
    };

    float acc[8][8] = {};
    const int tiles = (k + K4 - 1) / K4;
    if (tiles > 0) {  // block-uniform
        fetch(0);
        stash(0);
    }
    __syncthreads();
    for (int t = 0; t < tiles; t++) {
        const int cur = t & 1;
        const bool more = t + 1 < tiles;  // block-uniform
        if (more) fetch((t + 1) * K4);    // in flight while we multiply
#pragma unroll
        for (int kk = 0; kk < K4; kk++) {
            const float4 a0 = *reinterpret_cast<const float4*>(&xs[cur][kk][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&xs[cur][kk][64 + ty * 4]);
            const float4 b0 = *reinterpret_cast<const float4*>(&ws[cur][kk][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&ws[cur][kk][64 + tx * 4]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; i++)
#pragma unroll
                for (int j = 0; j < 8; j++) acc[i][j] += a[i] * b[j];
        }
        // The other buffer was last read in iteration t-1, before its closing barrier.
        if (more) stash(cur ^ 1);
        __syncthreads();
    }

    const bool vec_out = (d % 4 == 0) && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int r = row0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        if (r >= n) continue;
        float* orow = out + (size_t)r * d;
#pragma unroll
        for (int half = 0; half < 2; half++) {
            const int c = col0 + half * 64 + tx * 4;
            const float* v = &acc[i][half * 4];
            if (vec_out && c + 3 < d) {
                *reinterpret_cast<float4*>(orow + c) = make_float4(v[0], v[1], v[2], v[3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; j++)
                    if (c + j < d) orow[c + j] = v[j];
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Version 5: matrix-vector for small n (decode: n = batch). The cost is reading w once, so
// a warp streams one w row with float4 loads (4 in flight per lane) and dots it with up to
// NB x rows at a time (x is tiny and stays in L1/L2); a shuffle tree sums the lanes.
constexpr int THREADS5 = 256;

template <int NB, bool VEC>
__global__ void __launch_bounds__(THREADS5) gemv_kernel(float* __restrict__ out, const float* __restrict__ x,
                                                        const float* __restrict__ w, int n, int k, int d) {
    const int lane = threadIdx.x % WARP;
    const int c = blockIdx.x * (THREADS5 / WARP) + threadIdx.x / WARP;
    if (c >= d) return;  // the whole warp leaves together; no barriers below
    const float* wc = w + (size_t)c * k;
    for (int r0 = 0; r0 < n; r0 += NB) {
        const int nb = min(NB, n - r0);
        float acc[NB];
#pragma unroll
        for (int b = 0; b < NB; b++) acc[b] = 0.0f;
        if (VEC) {
            const int k4 = k / 4;
            const float4* w4 = reinterpret_cast<const float4*>(wc);
            int i = lane;
            for (; i + 3 * WARP < k4; i += 4 * WARP) {
                float4 wv[4];
#pragma unroll
                for (int u = 0; u < 4; u++) wv[u] = __ldg(w4 + i + u * WARP);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    if (b >= nb) break;
                    const float4* x4 = reinterpret_cast<const float4*>(x + (size_t)(r0 + b) * k);
#pragma unroll
                    for (int u = 0; u < 4; u++) {
                        const float4 xv = __ldg(x4 + i + u * WARP);
                        acc[b] += wv[u].x * xv.x + wv[u].y * xv.y + wv[u].z * xv.z + wv[u].w * xv.w;
                    }
                }
            }
            for (; i < k4; i += WARP) {
                const float4 wv = __ldg(w4 + i);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    if (b >= nb) break;
                    const float4 xv = __ldg(reinterpret_cast<const float4*>(x + (size_t)(r0 + b) * k) + i);
                    acc[b] += wv.x * xv.x + wv.y * xv.y + wv.z * xv.z + wv.w * xv.w;
                }
            }
        } else {
            for (int i = lane; i < k; i += WARP) {
                const float wv = __ldg(wc + i);
#pragma unroll
                for (int b = 0; b < NB; b++) {
                    if (b >= nb) break;
                    acc[b] += wv * __ldg(x + (size_t)(r0 + b) * k + i);
                }
            }
        }
#pragma unroll
        for (int b = 0; b < NB; b++) {
            const float s = warp_sum(acc[b]);  // all lanes take part, whatever nb is
            if (lane == 0 && b < nb) out[(size_t)(r0 + b) * d + c] = s;
        }
    }
}

template <int NB>
void launch_gemv(float* out, const float* x, const float* w, int n, int k, int d) {
    const int blocks = ceil_div(d, THREADS5 / WARP);
    const bool vec = k % 4 == 0 && aligned16(x) && aligned16(w);
    if (vec)
        gemv_kernel<NB, true><<<blocks, THREADS5, 0, launch_stream()>>>(out, x, w, n, k, d);
    else
        gemv_kernel<NB, false><<<blocks, THREADS5, 0, launch_stream()>>>(out, x, w, n, k, d);
    CUDA_CHECK_LAST();
}

const char* const kNames[] = {"auto", "naive", "smem-tiled", "register-blocked", "float4+double-buffer", "matvec"};
constexpr int kVersions = 5;
constexpr int kGemvMaxN = 16;  // auto: up to this many rows the matrix-vector kernel wins

}  // namespace

int gemm_versions() { return kVersions; }

const char* gemm_version_name(int version) {
    return version >= 0 && version <= kVersions ? kNames[version] : "unknown";
}

void gemm(int version, float* out, const float* x, const float* w, int n, int k, int d) {
    if (n < 0 || k < 0 || d < 0) bad_args("gemm: negative size");
    if (version == 0) version = n <= kGemvMaxN ? 5 : 4;
    if (n == 0 || d == 0) return;
    if (ceil_div(n, 8) > 65535) bad_args("gemm: n too large for the grid (" + std::to_string(n) + " rows)");
    switch (version) {
        case 1: {
            const dim3 block(32, 8), grid(ceil_div(d, 32), ceil_div(n, 8));
            gemm_naive_kernel<<<grid, block, 0, launch_stream()>>>(out, x, w, n, k, d);
            break;
        }
        case 2: {
            const dim3 block(T2, T2), grid(ceil_div(d, T2), ceil_div(n, T2));
            gemm_tiled_kernel<<<grid, block, 0, launch_stream()>>>(out, x, w, n, k, d);
            break;
        }
        case 3: {
            const dim3 grid(ceil_div(d, B3), ceil_div(n, B3));
            gemm_regblock_kernel<<<grid, THREADS3, 0, launch_stream()>>>(out, x, w, n, k, d);
            break;
        }
        case 4: {
            const dim3 grid(ceil_div(d, B4), ceil_div(n, B4));
            const bool vec = k % 4 == 0 && aligned16(x) && aligned16(w);
            if (vec)
                gemm_vec_kernel<true><<<grid, THREADS4, 0, launch_stream()>>>(out, x, w, n, k, d);
            else
                gemm_vec_kernel<false><<<grid, THREADS4, 0, launch_stream()>>>(out, x, w, n, k, d);
            break;
        }
        case 5:
            if (n == 1) return launch_gemv<1>(out, x, w, n, k, d);
            if (n == 2) return launch_gemv<2>(out, x, w, n, k, d);
            if (n <= 4) return launch_gemv<4>(out, x, w, n, k, d);
            return launch_gemv<8>(out, x, w, n, k, d);
        default:
            bad_args("gemm: no version " + std::to_string(version) + " (1.." + std::to_string(kVersions) + ", 0 = auto)");
    }
    CUDA_CHECK_LAST();
}
