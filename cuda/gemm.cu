// GEMM, out (n, d) = x (n, k) @ w (d, k)^T, row-major: the reference matmul. Both operands
// are contiguous along k, so every output is a dot of an x row with a w row. The versions
// rise in sophistication and each stays runnable (gemm(version, ...)):
//   1 naive                 one thread per output, everything from global memory
//   2 shared-memory tiles   32x32 tiles of x and w staged in shared memory
//   3 register blocking     128x128 block tile, 8x8 outputs per thread held in registers
//   4 float4 + double buf.  as 3, with 16-byte loads and the next tile loaded while the
//                           current one is multiplied
//   5 matrix-vector         warp per output column, for small n (decode)
//   6 warp-tiled            128x128 block tile of 8 warps, 8x8 per thread, warps 4x8 threads;
//                           a 3-stage cp.async pipeline feeds shared memory straight from global
//   7 small grid            version 6's kernel with any tile of cuda/gemm_plan.h (16 to 128
//                           rows, 32 to 128 columns) and K split over up to 16 blocks per tile
// gemm(0, ...) picks one by shape: the cost model in cuda/gemm_plan.h.
#include "cuda/async_copy.cuh"
#include "cuda/common.cuh"
#include "cuda/gemm_plan.h"
#include "cuda/kernels.h"
#include <unordered_map>

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
    if (VEC) {
        // k % 4 == 0 and kk % 4 == 0: the 4 values are all in range or all out; one test for both
        if (row < rows && kk < k) return __ldg(reinterpret_cast<const float4*>(p + (size_t)row * k + kk));
        return make_float4(0.f, 0.f, 0.f, 0.f);
    }
    if (row >= rows) return make_float4(0.f, 0.f, 0.f, 0.f);
    const float* q = p + (size_t)row * k + kk;
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

// ---------------------------------------------------------------------------------------
// Versions 6 and 7: warp tiling and a cp.async pipeline. Tile shapes: kGemmTiles in
// cuda/gemm_plan.h.
//
// Shared memory keeps the global layout, each row along k: xs[stage][m][LD], ws[stage][c][LD]
// with LD = BK + 4. So cp.async copies 4 consecutive k of one row, 16 bytes, straight from
// global memory into place: no staging registers (version 4 spends 16 of its 128 on them) and
// no transposing stores. The dot products then run along k too, 4 at a time: per step of 4 k a
// thread reads its TM x rows as float4 (kept in 4 TM registers) and its TN w rows one float4
// at a time, and does 4 TM TN multiply-adds: one 16-byte shared load per 4 TM TN / (TM + TN)
// multiply-adds (8x8: 16 loads per 256; 4x4: 8 per 64).
//
// Warp tiling: a warp is 4 x 8 threads; thread (ty, tx) of warp (wm, wn) owns the rows
// wm*4*TM + ty + 4i and the columns wn*8*TN + tx + 8j of the tile. For one i the warp reads 4
// consecutive x rows, for one j 8 consecutive w rows, at the same k; with LD / 4 odd, the rows
// start in different groups of 4 banks, so each float4 read is free of bank conflicts, and the
// lanes that share a row get it by broadcast. The warp's 32 threads cover a compact 4TM x 8TN
// block of out (32 x 64 for 8x8), which needs fewer distinct shared bytes per multiply-add than
// version 4's 2 x 16 strip of threads.
//
// Pipeline (STAGES buffers): tiles t+1 .. t+STAGES-1 are in flight while tile t is multiplied;
// one __syncthreads per tile both publishes tile t (after each thread's own cp_async_wait) and
// frees the buffer of tile t-1 for the next copies.
//
// Split K (gridDim.z > 1, version 7): block z takes k in [z k_slice, (z+1) k_slice), writes its
// partial tile to the scratch, and the last block of the tile to arrive (an atomic counter per
// tile) adds the partials up in split order: the same order on every run, so the result is
// deterministic whichever block finishes last. The scratch belongs to the stream the GEMM is
// launched on (cuda/launch.h: streams run side by side, and two GEMMs sharing one scratch
// would mix their partials and counters); the counters are reset by the block that finishes a
// tile, ready for the next launch on that stream.

// rows [row0, row0 + ROWS) x k [k0, k0 + BK) of src (rows of k floats) into dst [ROWS][LD];
// zeros past `rows` or `kend`. vec: 16-byte copies (k % 4 == 0, src 16-byte aligned), else 4.
// A thread copies the same k offset of rows r0, r0 + STEP, r0 + 2 STEP, ...: one running
// pointer and one stride, so the addresses cost two registers, not one pointer per copy.
template <int ROWS, int BK, int LD, int THREADS>
__device__ __forceinline__ void load_tile(float* dst, const float* src, int row0, int rows, int k, int k0, int kend,
                                          bool vec, int tid) {
    const int width = vec ? BK / 4 : BK;  // copies per row
    const int r0 = tid / width, kk = tid % width * (vec ? 4 : 1);
    const int step = THREADS / width;     // rows between one thread's copies
    const bool k_ok = k0 + kk < kend;     // vec: kend % 4 == 0, so all 4 are in range or none
    const float* p = src + (size_t)(row0 + r0) * k + k0 + kk;
    const size_t stride = (size_t)step * k;
    if (vec) {
        constexpr int STEP = THREADS / (BK / 4);
        static_assert(THREADS % (BK / 4) == 0 && ROWS % STEP == 0, "whole rows of float4 chunks");
#pragma unroll
        for (int i = 0; i < ROWS / STEP; i++, p += stride) {
            const int r = r0 + i * STEP;
            const bool ok = k_ok && row0 + r < rows;
            cp_async16(dst + r * LD + kk, ok ? p : src, ok);
        }
    } else {
        constexpr int STEP = THREADS / BK;
        static_assert(THREADS % BK == 0 && ROWS % STEP == 0, "whole rows of floats");
#pragma unroll 1  // the fallback (k % 4 != 0 or unaligned rows): kept small, not fast
        for (int i = 0; i < ROWS / STEP; i++, p += stride) {
            const int r = r0 + i * STEP;
            const bool ok = k_ok && row0 + r < rows;
            cp_async4(dst + r * LD + kk, ok ? p : src, ok);
        }
    }
}

// The last block of a split tile adds the S partial tiles up: out = p_0 + p_1 + ... in split
// order. The reads are the cost (S tiles from L2, written by other SMs: __ldcg), so a thread
// takes 4 consecutive columns at once (float4, where d % 4 == 0 and out is 16-byte aligned)
// and issues the loads of all S partials before the first add: up to 16 x 16 bytes in flight
// per thread instead of one float at a time.
template <int BM, int BN, int THREADS>
__device__ __forceinline__ void split_k_sum(float* __restrict__ out, const float* __restrict__ partials, int n, int d,
                                            int row0, int col0, int splits, int tid) {
    const size_t plane = (size_t)n * d;  // one split's partial output
    if ((d & 3) == 0 && (reinterpret_cast<uintptr_t>(out) & 15) == 0) {
        constexpr int GROUPS = BN / 4;  // float4 groups per tile row
        for (int e = tid; e < BM * GROUPS; e += THREADS) {  // consecutive threads, consecutive groups
            const int r = row0 + e / GROUPS, c = col0 + 4 * (e % GROUPS);
            if (r >= n || c >= d) continue;  // d % 4 == 0: the group is all in or all out
            const float4* p = reinterpret_cast<const float4*>(partials + (size_t)r * d + c);
            float4 part[kGemmMaxSplits];
#pragma unroll
            for (int z = 0; z < kGemmMaxSplits; z++)
                part[z] = z < splits ? __ldcg(p + z * plane / 4) : make_float4(0.f, 0.f, 0.f, 0.f);
            float4 s = part[0];
#pragma unroll
            for (int z = 1; z < kGemmMaxSplits; z++)
                if (z < splits) {
                    s.x += part[z].x;
                    s.y += part[z].y;
                    s.z += part[z].z;
                    s.w += part[z].w;
                }
            *reinterpret_cast<float4*>(out + (size_t)r * d + c) = s;
        }
        return;
    }
    for (int e = tid; e < BM * BN; e += THREADS) {  // consecutive threads, consecutive columns
        const int r = row0 + e / BN, c = col0 + e % BN;
        if (r >= n || c >= d) continue;
        const float* p = partials + (size_t)r * d + c;
        float part[kGemmMaxSplits];
#pragma unroll
        for (int z = 0; z < kGemmMaxSplits; z++) part[z] = z < splits ? __ldcg(p + z * plane) : 0.0f;
        float s = part[0];
#pragma unroll
        for (int z = 1; z < kGemmMaxSplits; z++)
            if (z < splits) s += part[z];
        out[(size_t)r * d + c] = s;
    }
}

// THREADS = (BM / TM) * (BN / TN). At most 128 registers per thread, so that 512 threads fit
// an SM's 64K registers: two blocks of 256, four of 128, eight of 64.
template <int BM, int BN, int TM, int TN, int BK, int STAGES, int THREADS>
__global__ void __launch_bounds__(THREADS, 512 / THREADS) gemm_warptile_kernel(float* __restrict__ out,
                                                                               const float* __restrict__ x,
                                                                               const float* __restrict__ w, int n,
                                                                               int k, int d, int k_slice, bool vec,
                                                                               float* __restrict__ partials,
                                                                               unsigned* __restrict__ tickets) {
    constexpr int LD = BK + 4, WARPS_N = BN / (8 * TN);
    static_assert(THREADS == (BM / TM) * (BN / TN), "one thread per TM x TN tile");
    // An 8x8 thread tile holds 64 accumulators and 32 floats of x rows: unrolling the steps of
    // 4 k as well lets the compiler fetch the next step's rows early and spill past the 128
    // registers two blocks per SM allow. Rolled, the loop costs ~10 instructions per 256 FFMA.
    [[maybe_unused]] constexpr int KQ_UNROLL = TM * TN >= 64 ? 1 : BK / 4;  // g++ (the emulator) ignores the pragma
    static_assert(BM % (4 * TM) == 0 && BN % (8 * TN) == 0, "warps of 4 x 8 threads tile the block");
    static_assert(BK % 4 == 0 && (LD / 4) % 2 == 1, "LD / 4 odd: conflict-free float4 rows");
    extern __shared__ float smem[];
    float* const xs = smem;                     // [STAGES][BM][LD]
    float* const ws = smem + STAGES * BM * LD;  // [STAGES][BN][LD]
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int row0 = blockIdx.x * BM, col0 = blockIdx.y * BN;
    const int kbeg = blockIdx.z * k_slice, kend = min(k, kbeg + k_slice);
    const int tiles = kend > kbeg ? (kend - kbeg + BK - 1) / BK : 0;  // block-uniform
    const int ty = warp / WARPS_N * 4 * TM + lane / 8;  // this thread's first row and column
    const int tx = warp % WARPS_N * 8 * TN + lane % 8;

    auto load = [&](int t) {
        const int stage = t % STAGES, k0 = kbeg + t * BK;
        load_tile<BM, BK, LD, THREADS>(xs + stage * BM * LD, x, row0, n, k, k0, kend, vec, tid);
        load_tile<BN, BK, LD, THREADS>(ws + stage * BN * LD, w, col0, d, k, k0, kend, vec, tid);
    };

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; i++)
#pragma unroll
        for (int j = 0; j < TN; j++) acc[i][j] = 0.0f;

#pragma unroll
    for (int t = 0; t < STAGES - 1; t++) {  // prologue: the first STAGES - 1 tiles in flight
        if (t < tiles) load(t);
        cp_async_commit();  // an empty group when there is no tile: the counts stay uniform
    }
    for (int t = 0; t < tiles; t++) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of tile t have landed
        __syncthreads();              // everyone's have; and everyone is done with tile t - 1
        if (t + STAGES - 1 < tiles) load(t + STAGES - 1);  // into tile t - 1's buffer
        cp_async_commit();
        const float* xt = xs + t % STAGES * BM * LD + ty * LD;
        const float* wt = ws + t % STAGES * BN * LD + tx * LD;
#pragma unroll KQ_UNROLL
        for (int kq = 0; kq < BK; kq += 4) {
            float4 a[TM];
#pragma unroll
            for (int i = 0; i < TM; i++) a[i] = *reinterpret_cast<const float4*>(xt + 4 * i * LD + kq);
#pragma unroll
            for (int j = 0; j < TN; j++) {
                const float4 b = *reinterpret_cast<const float4*>(wt + 8 * j * LD + kq);
#pragma unroll
                for (int i = 0; i < TM; i++) {
                    acc[i][j] += a[i].x * b.x;
                    acc[i][j] += a[i].y * b.y;
                    acc[i][j] += a[i].z * b.z;
                    acc[i][j] += a[i].w * b.w;
                }
            }
        }
    }

    // A warp's store for one (i, j) writes 4 rows x 8 consecutive floats: one 32-byte sector each.
    float* const dst = gridDim.z == 1 ? out : partials + (size_t)blockIdx.z * n * d;
#pragma unroll
    for (int i = 0; i < TM; i++) {
        const int r = row0 + ty + 4 * i;
        if (r >= n) continue;
#pragma unroll
        for (int j = 0; j < TN; j++) {
            const int c = col0 + tx + 8 * j;
            if (c < d) dst[(size_t)r * d + c] = acc[i][j];
        }
    }
    if (gridDim.z == 1) return;

    __shared__ unsigned arrived;
    __threadfence();  // this thread's partials are visible to every block before the count below
    __syncthreads();
    const unsigned tile = blockIdx.y * gridDim.x + blockIdx.x;
    if (tid == 0) {
        arrived = atomicAdd(&tickets[tile], 1u);
        if (arrived == gridDim.z - 1) tickets[tile] = 0;  // every split has counted: reset
    }
    __syncthreads();
    if (arrived != gridDim.z - 1) return;  // block-uniform: not the last split of this tile
    __threadfence();
    split_k_sum<BM, BN, THREADS>(out, partials, n, d, row0, col0, (int)gridDim.z, tid);
}
// The scratch of the launch stream (cuda/launch.h); the legacy default stream's, one per GPU,
// is allocated at its first split GEMM and kept for the life of the process.
SplitKScratch split_scratch() {
    if (const SplitKScratch* s = current_split_scratch()) return *s;
    if (current_launch_stream())
        bad_args("gemm: a split-K GEMM on a stream without its own scratch (give LaunchStream a SplitKScratch)");
    static SplitKScratch legacy[64] = {};
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev >= 64) bad_args("gemm: device " + std::to_string(dev) + ": split K keeps scratch for 64 GPUs");
    SplitKScratch& s = legacy[dev];
    if (!s.partials) {
        CUDA_CHECK(cudaMalloc(&s.tickets, kGemmSplitMaxTiles * sizeof(unsigned)));
        CUDA_CHECK(cudaMemset(s.tickets, 0, kGemmSplitMaxTiles * sizeof(unsigned)));
        CUDA_CHECK(cudaMalloc(&s.partials, kGemmSplitScratchFloats * sizeof(float)));
    }
    return s;
}

// The dynamic shared memory limit is raised once per GPU, not on every launch.
template <int TILE>
void launch_warptile(float* out, const float* x, const float* w, int n, int k, int d, int splits) {
    constexpr GemmTile T = kGemmTiles[TILE];
    const size_t smem = sizeof(float) * T.stages * (T.bm + T.bn) * (T.bk + 4);
    static bool raised[64] = {};
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev >= 64 || !raised[dev]) {
        allow_dynamic_smem((const void*)gemm_warptile_kernel<T.bm, T.bn, T.tm, T.tn, T.bk, T.stages, T.threads>, smem);
        if (dev < 64) raised[dev] = true;
    }
    const int slice = gemm_split_k_slice(TILE, k, splits);
    const bool vec = k % 4 == 0 && aligned16(x) && aligned16(w);
    const dim3 grid(ceil_div(n, T.bm), ceil_div(d, T.bn), splits);
    const SplitKScratch scratch = splits > 1 ? split_scratch() : SplitKScratch{};
    gemm_warptile_kernel<T.bm, T.bn, T.tm, T.tn, T.bk, T.stages, T.threads><<<grid, T.threads, smem, launch_stream()>>>(
        out, x, w, n, k, d, slice, vec, scratch.partials, scratch.tickets);
    CUDA_CHECK_LAST("gemm_warptile_kernel");
}

const char* const kNames[] = {"auto",  "naive",  "smem-tiled", "register-blocked", "float4+double-buffer",
                              "matvec", "warp-tiled cp.async", "small-grid split-K"};
constexpr int kVersions = 7;

}  // namespace

// gemm_plan weighs about a hundred tile and split candidates (a microsecond); a forward
// asks for the same few shapes at every step, so each thread keeps the plans it has made.
struct PlanKey {
    int version, n, k, d, sms;
    bool operator==(const PlanKey& o) const {
        return version == o.version && n == o.n && k == o.k && d == o.d && sms == o.sms;
    }
};
struct PlanKeyHash {
    size_t operator()(const PlanKey& p) const {
        size_t h = 0;
        for (int v : {p.version, p.n, p.k, p.d, p.sms}) h = h * 1000003u ^ (size_t)(unsigned)v;
        return h;
    }
};

GemmPlan cached_plan(int version, int n, int k, int d, int sms) {
    thread_local std::unordered_map<PlanKey, GemmPlan, PlanKeyHash> plans;
    const PlanKey key{version, n, k, d, sms};
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    if (plans.size() > 4096) plans.clear();  // prompts of every length: keep it bounded
    return plans[key] = gemm_plan(version, n, k, d, sms);
}

int gemm_versions() { return kVersions; }

const char* gemm_version_name(int version) {
    return version >= 0 && version <= kVersions ? kNames[version] : "unknown";
}

void gemm(int version, float* out, const float* x, const float* w, int n, int k, int d) {
    if (n < 0 || k < 0 || d < 0) bad_args("gemm: negative size");
    if (version < 0 || version > kVersions)
        bad_args("gemm: no version " + std::to_string(version) + " (1.." + std::to_string(kVersions) + ", 0 = auto)");
    if (n == 0 || d == 0) return;
    const int sms = version == 0 || version == 7 ? num_sms() : 1;  // only the model's choices depend on it
    gemm_run(cached_plan(version, n, k, d, sms), out, x, w, n, k, d);
}

void gemm_run(const GemmPlan& plan, float* out, const float* x, const float* w, int n, int k, int d) {
    if (n < 0 || k < 0 || d < 0) bad_args("gemm: negative size");
    if (n == 0 || d == 0) return;
    if (plan.version < 1 || plan.version > kVersions)
        bad_args("gemm: no version " + std::to_string(plan.version) + " (1.." + std::to_string(kVersions) + ")");
    if (plan.version <= 4 && ceil_div(n, 8) > 65535)
        bad_args("gemm: n too large for the grid (" + std::to_string(n) + " rows)");
    if (plan.version >= 6) {
        if (plan.tile < 0 || plan.tile >= GEMM_TILES) bad_args("gemm: no tile configuration " + std::to_string(plan.tile));
        if (plan.splits < 1 || plan.splits > kGemmMaxSplits)
            bad_args("gemm: " + std::to_string(plan.splits) + " splits (1.." + std::to_string(kGemmMaxSplits) + ")");
        if (gemm_ceil_div(d, kGemmTiles[plan.tile].bn) > 65535)
            bad_args("gemm: d too large for the grid (" + std::to_string(d) + " columns)");
        if (plan.splits > 1 && ((size_t)plan.splits * n * d > kGemmSplitScratchFloats ||
                                gemm_tile_count(plan.tile, n, d) > kGemmSplitMaxTiles))
            bad_args("gemm: " + std::to_string(plan.splits) + " splits of a " + std::to_string(n) + " x " +
                     std::to_string(d) + " output do not fit the split-K scratch");
    }
    switch (plan.version) {
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
            switch (plan.tile) {
                case GEMM_TILE_128x128: return launch_warptile<GEMM_TILE_128x128>(out, x, w, n, k, d, plan.splits);
                case GEMM_TILE_16x64: return launch_warptile<GEMM_TILE_16x64>(out, x, w, n, k, d, plan.splits);
                case GEMM_TILE_32x64: return launch_warptile<GEMM_TILE_32x64>(out, x, w, n, k, d, plan.splits);
                case GEMM_TILE_64x64: return launch_warptile<GEMM_TILE_64x64>(out, x, w, n, k, d, plan.splits);
                case GEMM_TILE_16x32: return launch_warptile<GEMM_TILE_16x32>(out, x, w, n, k, d, plan.splits);
                default: return launch_warptile<GEMM_TILE_128x64>(out, x, w, n, k, d, plan.splits);
            }
    }
    CUDA_CHECK_LAST();
}
