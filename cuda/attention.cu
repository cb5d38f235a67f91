// Attention of one layer's queries over the K/V of its source layer's cache slot, with
// grouped-query heads and causal (s <= p) or strict (s < p) masks: the reference
// attention, batched over sequences. A query that sees nothing writes zeros.
//
// Prefill (attention_prefill_gpu):
//   1 warp per (query, head)  online softmax over every visible position, one position at a
//                             time; lanes split head_size and a shuffle tree sums each dot
//   2 tiled                   a block takes 16 queries of one head and walks the visible
//                             positions in tiles of 32 keys staged in shared memory; online
//                             softmax per query, so the score matrix never exists in full
//   3 flash                   FlashAttention-2 style: 64 (position, head) rows of a KV group
//                             per block, 64- or 32-key tiles double-buffered by cp.async,
//                             register micro-tiles for scores and output, float4 shared reads,
//                             the blocks of the last positions first
// Decode (attention_decode_gpu), one query per sequence:
//   1 warp per (sequence, head), version 1 of prefill with n = 1
//   2 split                   the positions are cut into chunks; a block takes one chunk of
//                             one KV head for all query heads of its group (K/V read once)
//                             and writes a partial (max, sum, weighted V) to the caller's
//                             workspace; a second kernel merges the chunks. Fills the GPU
//                             even for batch 1, long context.
#include "cuda/async_copy.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.h"

using namespace kvk;

namespace {

constexpr int MAX_HEAD_SIZE = 256;

// Values per lane when a warp spans head_size: 1, 2, 4 or 8 (a compile-time register count).
int dims_per_lane(int head_size) {
    if (head_size <= 32) return 1;
    if (head_size <= 64) return 2;
    if (head_size <= 128) return 4;
    return 8;
}

// ---------------------------------------------------------------------------------------
// Version 1 (prefill and decode): one warp per (sequence, query, head).
template <int DPL>
__global__ void __launch_bounds__(128) attn_warp_kernel(float* out, const float* q, const float* k, const float* v,
                                                        int batch, int n, int p0, int context, bool strict, int n_heads,
                                                        int n_kv_heads, int hs, float scale) {
    const int lane = threadIdx.x % WARP;
    const size_t wid = (size_t)blockIdx.x * (blockDim.x / WARP) + threadIdx.x / WARP;
    if (wid >= (size_t)batch * n * n_heads) return;  // whole warps leave; no barriers here
    const int h = (int)(wid % n_heads);
    const size_t bt = wid / n_heads;  // b * n + t
    const int t = (int)(bt % n), b = (int)(bt / n);
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const int kvh = h / (n_heads / n_kv_heads);
    const float* qh = q + bt * q_dim + (size_t)h * hs;
    float* oh = out + bt * q_dim + (size_t)h * hs;
    const float* kb = k + (size_t)b * context * kv_dim + (size_t)kvh * hs;
    const float* vb = v + (size_t)b * context * kv_dim + (size_t)kvh * hs;
    const int vis = p0 + t + (strict ? 0 : 1);  // positions 0 .. vis-1

    float qr[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int d = lane + WARP * i;
        qr[i] = d < hs ? qh[d] : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int s = 0; s < vis; s++) {
        const float* ks = kb + (size_t)s * kv_dim;
        const float* vs = vb + (size_t)s * kv_dim;
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + WARP * i;
            if (d < hs) dot += qr[i] * ks[d];
        }
        const float sc = warp_sum(dot) * scale;
        const float mn = fmaxf(m, sc);
        const float alpha = expf(m - mn);  // 0 for the first position (m = -inf)
        const float p = expf(sc - mn);
        l = l * alpha + p;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + WARP * i;
            if (d < hs) acc[i] = acc[i] * alpha + p * vs[d];
        }
        m = mn;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int d = lane + WARP * i;
        if (d < hs) oh[d] = vis > 0 ? acc[i] / l : 0.0f;
    }
}

template <int DPL>
void launch_warp(float* out, const float* q, const float* k, const float* v, int batch, int n, int p0, int context,
                 bool strict, int n_heads, int n_kv_heads, int hs, float scale) {
    const size_t warps = (size_t)batch * n * n_heads;
    const size_t blocks = ceil_div(warps, (size_t)4);
    if (blocks > (size_t)INT32_MAX) bad_args("attention: too many queries for one launch");
    attn_warp_kernel<DPL><<<(unsigned)blocks, 128, 0, launch_stream()>>>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, hs, scale);
    CUDA_CHECK_LAST("attn_warp_kernel");
}

// ---------------------------------------------------------------------------------------
// Version 2 of prefill: tiles. Block = 4 warps x 4 queries = 16 queries of head h of
// sequence b. Per tile of 32 keys: lane j scores key j against the warp's 4 queries
// (K row j in shared memory, padded to an odd stride so the 32 rows hit 32 banks); the
// warp updates each query's running max and sum; then lanes switch to head_size and add
// p_j * V[j] (p_j broadcast by shuffle). Keys past the block's last visible position are
// never read; masked keys inside the tile get p = 0.
constexpr int FQ_WARPS = 4, FQ_QPW = 4, FQ_BQ = FQ_WARPS * FQ_QPW, FQ_BK = 32;

size_t prefill_smem_bytes(int hs) {
    return sizeof(float) * ((size_t)FQ_BQ * hs + (size_t)FQ_BK * (hs + 1) + (size_t)FQ_BK * hs);
}

template <int DPL>
__global__ void __launch_bounds__(FQ_WARPS* WARP) attn_prefill_tiled_kernel(float* out, const float* q, const float* k,
                                                                            const float* v, int n, int p0, int context,
                                                                            bool strict, int n_heads, int n_kv_heads,
                                                                            int hs, float scale) {
    extern __shared__ float smem[];
    float* qs = smem;                   // [FQ_BQ][hs]
    float* ks = qs + FQ_BQ * hs;        // [FQ_BK][hs + 1]
    float* vs = ks + FQ_BK * (hs + 1);  // [FQ_BK][hs]
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int t0 = blockIdx.x * FQ_BQ, h = blockIdx.y, b = blockIdx.z;
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const int kvh = h / (n_heads / n_kv_heads);
    const int diag = strict ? 0 : 1;
    const int kv_end = p0 + min(t0 + FQ_BQ, n) - 1 + diag;  // what the block's last query sees
    const float* kb = k + (size_t)b * context * kv_dim + (size_t)kvh * hs;
    const float* vb = v + (size_t)b * context * kv_dim + (size_t)kvh * hs;

    for (int e = tid; e < FQ_BQ * hs; e += blockDim.x) {
        const int qi = e / hs, dd = e - qi * hs, t = t0 + qi;
        qs[e] = t < n ? q[((size_t)b * n + t) * q_dim + (size_t)h * hs + dd] : 0.0f;
    }
    int vis[FQ_QPW];
    float m[FQ_QPW], l[FQ_QPW], acc[FQ_QPW][DPL];
#pragma unroll
    for (int qq = 0; qq < FQ_QPW; qq++) {
        const int t = t0 + warp * FQ_QPW + qq;
        vis[qq] = t < n ? p0 + t + diag : 0;  // queries past n see nothing and write nothing
        m[qq] = -INFINITY;
        l[qq] = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) acc[qq][i] = 0.0f;
    }
    const float* qw = qs + warp * FQ_QPW * hs;
    const float* kj = ks + lane * (hs + 1);

    for (int kv0 = 0; kv0 < kv_end; kv0 += FQ_BK) {  // block-uniform bounds
        __syncthreads();  // Q is in place; the previous tile is consumed
        for (int e = tid; e < FQ_BK * hs; e += blockDim.x) {
            const int j = e / hs, dd = e - j * hs, s = kv0 + j;
            float kval = 0.0f, vval = 0.0f;  // zeros past kv_end: p = 0 must not meet NaN
            if (s < kv_end) {
                const size_t off = (size_t)s * kv_dim + dd;
                kval = kb[off];
                vval = vb[off];
            }
            ks[j * (hs + 1) + dd] = kval;
            vs[j * hs + dd] = vval;
        }
        __syncthreads();

        float p[FQ_QPW];
#pragma unroll
        for (int qq = 0; qq < FQ_QPW; qq++) p[qq] = 0.0f;
#pragma unroll 4
        for (int dd = 0; dd < hs; dd++) {
            const float kv = kj[dd];
#pragma unroll
            for (int qq = 0; qq < FQ_QPW; qq++) p[qq] += qw[qq * hs + dd] * kv;
        }
        const int s = kv0 + lane;
#pragma unroll
        for (int qq = 0; qq < FQ_QPW; qq++) {
            const float sc = s < vis[qq] ? p[qq] * scale : -INFINITY;
            const float mn = fmaxf(m[qq], warp_max(sc));
            float alpha = 1.0f, e = 0.0f;
            if (mn != -INFINITY) {  // warp-uniform: nothing visible yet leaves the state alone
                alpha = expf(m[qq] - mn);
                e = expf(sc - mn);
            }
            l[qq] = l[qq] * alpha + warp_sum(e);
            m[qq] = mn;
#pragma unroll
            for (int i = 0; i < DPL; i++) acc[qq][i] *= alpha;
            p[qq] = e;
        }
        for (int j = 0; j < FQ_BK; j++) {
            float vj[DPL];
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + WARP * i;
                vj[i] = d < hs ? vs[j * hs + d] : 0.0f;
            }
#pragma unroll
            for (int qq = 0; qq < FQ_QPW; qq++) {
                const float pj = __shfl_sync(FULL_MASK, p[qq], j);
#pragma unroll
                for (int i = 0; i < DPL; i++) acc[qq][i] += pj * vj[i];
            }
        }
    }
#pragma unroll
    for (int qq = 0; qq < FQ_QPW; qq++) {
        const int t = t0 + warp * FQ_QPW + qq;
        if (t >= n) continue;
        float* o = out + ((size_t)b * n + t) * q_dim + (size_t)h * hs;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + WARP * i;
            if (d < hs) o[d] = l[qq] > 0.0f ? acc[qq][i] / l[qq] : 0.0f;
        }
    }
}

template <int DPL>
void launch_prefill_tiled(float* out, const float* q, const float* k, const float* v, int batch, int n, int p0,
                          int context, bool strict, int n_heads, int n_kv_heads, int hs, float scale) {
    const size_t bytes = prefill_smem_bytes(hs);
    allow_dynamic_smem((const void*)attn_prefill_tiled_kernel<DPL>, bytes);
    const dim3 grid(ceil_div(n, FQ_BQ), n_heads, batch);
    attn_prefill_tiled_kernel<DPL><<<grid, FQ_WARPS * WARP, bytes, launch_stream()>>>(out, q, k, v, n, p0, context, strict, n_heads,
                                                                     n_kv_heads, hs, scale);
    CUDA_CHECK_LAST("attn_prefill_tiled_kernel");
}

// ---------------------------------------------------------------------------------------
// Version 3 of prefill: FlashAttention-2 style, fp32 on the CUDA cores. What changes from v2:
//  - one block takes 64 query rows of one KV head's group: rows are (position, query head)
//    pairs in position-major order, so all G heads of a position sit in one block and each K/V
//    tile loaded to shared memory serves 64 rows, whatever G is (v2: 16 queries of one head,
//    K/V read again for every head of a group);
//  - key tiles of 64 (head_size <= 64) or 32, double-buffered and filled by cp.async (16-byte
//    copies when head_size % 4 == 0) while the previous tile is computed;
//  - register micro-tiles: a warp owns 8 rows; lane (lr, lc) scores 4 rows x BK/16 keys
//    (keys lc + 16 jj), reading q and k rows as float4 along head_size (4 + BK/16 shared loads
//    per 16 BK/16 multiply-adds), then accumulates O for the same 4 rows x dimensions
//    4 (16 g + lc) .. + 3, from P (written to shared memory key-major, read as a float4 of the
//    4 rows) and V rows as float4 (1 + NG loads per 16 NG multiply-adds);
//  - the running max is exact in every lane of a row (a max over 16 lanes), the running sum
//    stays per lane and is added up once at the end;
//  - the blocks of the last positions, which see the most keys, are scheduled first;
//  - row strides padded so float4 reads of 4 or 8 consecutive rows are conflict-free.
// Masks, out-of-range keys (zeros, so p = 0 never meets NaN) and the empty row (exact zeros)
// as in v2.
constexpr int FA_ROWS = 64, FA_THREADS = 256, FA_P_LD = FA_ROWS + 4;

// NG float4 groups of output per lane: head_size <= 64 NG.
int flash_groups(int head_size) { return head_size <= 64 ? 1 : head_size <= 128 ? 2 : 4; }
__host__ __device__ constexpr int flash_keys(int ng) { return ng == 1 ? 64 : 32; }  // keys per tile
// head_size rounded up to 4, then padded so that (stride / 4) is odd: consecutive rows start
// in different groups of 4 banks.
__host__ __device__ inline int flash_ld(int hs) {
    const int hsp = (hs + 3) / 4 * 4;
    return (hsp / 4) % 2 == 1 ? hsp : hsp + 4;
}
size_t flash_smem_bytes(int ng, int hs) {
    const size_t ld = flash_ld(hs), bk = flash_keys(ng);
    // Q [64][ld], K and V [2][bk][ld] each, P [bk][68]: 104 KB for head_size 64 (two blocks per
    // SM on an H100), 110 KB for 128, 208 KB for 256
    return sizeof(float) * ((FA_ROWS + 4 * bk) * ld + bk * FA_P_LD);
}

template <int NG>
__global__ void __launch_bounds__(FA_THREADS, NG == 4 ? 1 : 2) attn_prefill_flash_kernel(
    float* __restrict__ out, const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, int n,
    int p0, int context, bool strict, int n_heads, int n_kv_heads, int hs, float scale, bool vec) {
    constexpr int BK = flash_keys(NG), KPL = BK / 16;  // keys per tile, per lane
    extern __shared__ float smem[];
    const int ld = flash_ld(hs), hsp = (hs + 3) / 4 * 4;
    float* const qs = smem;                // [FA_ROWS][ld]
    float* const ks = qs + FA_ROWS * ld;   // [2][BK][ld]
    float* const vs = ks + 2 * BK * ld;    // [2][BK][ld]
    float* const ps = vs + 2 * BK * ld;    // [BK][FA_P_LD]: this tile's probabilities, key-major
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP;
    const int lr = lane / 16, lc = lane % 16;
    const int G = n_heads / n_kv_heads, rows = n * G;  // (position, head) rows of this KV group
    const int f0 = (gridDim.x - 1 - blockIdx.x) * FA_ROWS;  // the last rows, which see the most keys, first
    const int kvh = blockIdx.y, b = blockIdx.z;
    const int diag = strict ? 0 : 1;
    const int kv_end = p0 + (min(f0 + FA_ROWS, rows) - 1) / G + diag;  // keys the block's last position sees
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const float* const kb = k + (size_t)b * context * kv_dim + (size_t)kvh * hs;
    const float* const vb = v + (size_t)b * context * kv_dim + (size_t)kvh * hs;
    auto q_offset = [&](int f) {  // row f = (position f / G, head kvh G + f % G) in q and out
        const int t = f / G;
        return ((size_t)b * n + t) * q_dim + (size_t)(kvh * G + f - t * G) * hs;
    };

    // Copies walk a [rows][units] grid row-major, `width` floats per unit (4: 16-byte copies,
    // or 1); each thread starts at unit tid and steps FA_THREADS units: no division per copy.
    const int width = vec ? 4 : 1, units = hsp / width;
    const int r_step = FA_THREADS / units, u_step = FA_THREADS % units;
    auto copy = [&](float* dst, const float* src, const float* fallback, bool ok) {
        if (vec)
            cp_async16(dst, ok ? src : fallback, ok);
        else
            cp_async4(dst, ok ? src : fallback, ok);
    };
    auto load_kv = [&](int tile, int buf) {
        float* const kd = ks + buf * BK * ld;
        float* const vd = vs + buf * BK * ld;
        for (int r = tid / units, u = tid % units; r < BK;) {
            const int s = tile * BK + r, dd = u * width;
            const bool ok = s < kv_end && dd < hs;  // zeros past the last visible key and head_size
            const size_t off = (size_t)s * kv_dim + dd;
            copy(kd + r * ld + dd, kb + off, kb, ok);
            copy(vd + r * ld + dd, vb + off, vb, ok);
            r += r_step;
            u += u_step;
            if (u >= units) {
                u -= units;
                r++;
            }
        }
    };
    for (int r = tid / units, u = tid % units; r < FA_ROWS;) {  // the block's 64 query rows, once
        const int f = f0 + r, dd = u * width;
        const bool ok = f < rows && dd < hs;
        copy(qs + r * ld + dd, ok ? q + q_offset(f) + dd : q, q, ok);
        r += r_step;
        u += u_step;
        if (u >= units) {
            u -= units;
            r++;
        }
    }
    const int tiles = (kv_end + BK - 1) / BK;  // block-uniform
    if (tiles > 0) load_kv(0, 0);
    cp_async_commit();  // group 0: Q and the first tile

    // this lane's rows: warp * 8 + lr * 4 + i
    const int row = warp * 8 + lr * 4;
    int vis[4];
    float m[4], l[4], o[4][NG][4];
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int f = f0 + row + i;
        vis[i] = f < rows ? p0 + f / G + diag : 0;  // rows past the last see nothing, write nothing
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int g = 0; g < NG; g++)
#pragma unroll
            for (int c = 0; c < 4; c++) o[i][g][c] = 0.0f;
    }
    const float* const q_lane = qs + row * ld;

    for (int t = 0; t < tiles; t++) {
        const int buf = t & 1;
        if (t + 1 < tiles) load_kv(t + 1, buf ^ 1);  // its buffer was freed by the barrier ending t - 1
        cp_async_commit();
        cp_async_wait<1>();  // all but the newest group: tile t (and Q) have landed for this thread
        __syncthreads();     // ... and for every thread
        const float* const kt = ks + buf * BK * ld;
        const float* const vt = vs + buf * BK * ld;

        // S = Q K^T for 4 rows x KPL keys, float4 steps along head_size
        float sc[4][KPL];
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int jj = 0; jj < KPL; jj++) sc[i][jj] = 0.0f;
#pragma unroll 1  // unrolled, the next steps' loads push head_size 64 past 128 registers
        for (int dq = 0; dq < hsp; dq += 4) {
            float4 qv[4];
#pragma unroll
            for (int i = 0; i < 4; i++) qv[i] = *reinterpret_cast<const float4*>(q_lane + i * ld + dq);
#pragma unroll
            for (int jj = 0; jj < KPL; jj++) {
                const float4 kv = *reinterpret_cast<const float4*>(kt + (lc + 16 * jj) * ld + dq);
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    sc[i][jj] += qv[i].x * kv.x;
                    sc[i][jj] += qv[i].y * kv.y;
                    sc[i][jj] += qv[i].z * kv.z;
                    sc[i][jj] += qv[i].w * kv.w;
                }
            }
        }

        // online softmax: the tile's max over the 16 lanes of each row, then p = exp(s - max)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float mt = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < KPL; jj++) {
                const int s = t * BK + lc + 16 * jj;
                sc[i][jj] = s < vis[i] ? sc[i][jj] * scale : -INFINITY;
                mt = fmaxf(mt, sc[i][jj]);
            }
#pragma unroll
            for (int off = 8; off > 0; off >>= 1) mt = fmaxf(mt, __shfl_xor_sync(FULL_MASK, mt, off));
            const float mn = fmaxf(m[i], mt);
            float alpha = 1.0f, sum = 0.0f;
            if (mn != -INFINITY) {  // the same in the row's 16 lanes; nothing visible yet: no change
                alpha = expf(m[i] - mn);  // 0 the first time (m = -inf)
#pragma unroll
                for (int jj = 0; jj < KPL; jj++) {
                    sc[i][jj] = expf(sc[i][jj] - mn);
                    sum += sc[i][jj];
                }
            } else {
#pragma unroll
                for (int jj = 0; jj < KPL; jj++) sc[i][jj] = 0.0f;
            }
            m[i] = mn;
            l[i] = l[i] * alpha + sum;
#pragma unroll
            for (int g = 0; g < NG; g++)
#pragma unroll
                for (int c = 0; c < 4; c++) o[i][g][c] *= alpha;
        }
#pragma unroll
        for (int jj = 0; jj < KPL; jj++)
            *reinterpret_cast<float4*>(ps + (lc + 16 * jj) * FA_P_LD + row) = make_float4(sc[0][jj], sc[1][jj], sc[2][jj], sc[3][jj]);
        __syncwarp();  // this warp's P is written (only its own lanes read these rows)

        // O += P V: 4 rows x 4 dimensions per float4 group
#pragma unroll 8
        for (int j = 0; j < BK; j++) {
            const float4 p = *reinterpret_cast<const float4*>(ps + j * FA_P_LD + row);
#pragma unroll
            for (int g = 0; g < NG; g++) {
                const int dd = 4 * (16 * g + lc);
                if (dd >= hsp) break;  // lanes past head_size (small heads) idle here
                const float4 vv = *reinterpret_cast<const float4*>(vt + j * ld + dd);
                const float pr[4] = {p.x, p.y, p.z, p.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    o[i][g][0] += pr[i] * vv.x;
                    o[i][g][1] += pr[i] * vv.y;
                    o[i][g][2] += pr[i] * vv.z;
                    o[i][g][3] += pr[i] * vv.w;
                }
            }
        }
        __syncthreads();  // K, V of `buf` and P are consumed before tile t + 2 and the next P
    }
    // A block with no key tile (strict, its rows at position 0) never waited for Q's copies: a
    // thread must not end with copies in flight into shared memory the next block may own.
    cp_async_wait<0>();

#pragma unroll
    for (int i = 0; i < 4; i++) {
        float li = l[i];
#pragma unroll
        for (int off = 8; off > 0; off >>= 1) li += __shfl_xor_sync(FULL_MASK, li, off);  // the row's 16 lanes
        const int f = f0 + row + i;
        if (f >= rows) continue;
        float* const orow = out + q_offset(f);
#pragma unroll
        for (int g = 0; g < NG; g++) {
            const int dd = 4 * (16 * g + lc);
            if (dd >= hs) break;
            float r4[4];
#pragma unroll
            for (int c = 0; c < 4; c++) r4[c] = li > 0.0f ? o[i][g][c] / li : 0.0f;  // nothing visible: zeros
            if (vec) {
                *reinterpret_cast<float4*>(orow + dd) = make_float4(r4[0], r4[1], r4[2], r4[3]);
            } else {
#pragma unroll
                for (int c = 0; c < 4; c++)
                    if (dd + c < hs) orow[dd + c] = r4[c];
            }
        }
    }
}

template <int NG>
void launch_prefill_flash(float* out, const float* q, const float* k, const float* v, int batch, int n, int p0,
                          int context, bool strict, int n_heads, int n_kv_heads, int hs, float scale) {
    const size_t rows = (size_t)n * (n_heads / n_kv_heads);
    if (rows > (size_t)INT32_MAX) bad_args("attention prefill: too many query rows for one launch");
    const size_t bytes = flash_smem_bytes(NG, hs);
    allow_dynamic_smem((const void*)attn_prefill_flash_kernel<NG>, bytes);
    const bool vec = hs % 4 == 0 && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(out);
    const dim3 grid((unsigned)ceil_div(rows, (size_t)FA_ROWS), n_kv_heads, batch);
    attn_prefill_flash_kernel<NG><<<grid, FA_THREADS, bytes, launch_stream()>>>(out, q, k, v, n, p0, context, strict, n_heads, n_kv_heads,
                                                                hs, scale, vec);
    CUDA_CHECK_LAST("attn_prefill_flash_kernel");
}

// ---------------------------------------------------------------------------------------
// Version 2 of decode: split along the positions, then merge.
// part: (batch, n_heads, splits, 2 + hs) = max, sum of exp(score - max), sum of exp * V.
constexpr int DEC_THREADS = 256;

size_t decode_smem_bytes(int group, int hs, int chunk) {
    // queries [group][hs], probabilities [group][chunk], partial sums [DEC_THREADS][4]
    return sizeof(float) * ((size_t)group * hs + (size_t)group * chunk + (size_t)DEC_THREADS * 4);
}

template <int DPL>
__global__ void __launch_bounds__(DEC_THREADS) attn_decode_split_kernel(float* part, const float* q, const float* k,
                                                                        const float* v, int pos, int context,
                                                                        bool strict, int n_heads, int n_kv_heads,
                                                                        int hs, float scale, int chunk, int splits) {
    extern __shared__ float smem[];
    const int G = n_heads / n_kv_heads;
    float* qs = smem;            // [G][hs]
    float* sc = qs + G * hs;     // [G][chunk]
    float* red = sc + G * chunk; // [DEC_THREADS][4]
    const int c = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP, nwarps = blockDim.x / WARP;
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const int vis = pos + (strict ? 0 : 1);
    const int s0 = c * chunk, len = min(chunk, vis - s0);  // >= 1: the host launches ceil(vis / chunk)
    const float* kb = k + ((size_t)b * context + s0) * kv_dim + (size_t)kvh * hs;
    const float* vb = v + ((size_t)b * context + s0) * kv_dim + (size_t)kvh * hs;
    const float* qg = q + (size_t)b * q_dim + (size_t)kvh * G * hs;  // the group's heads are adjacent
    auto part_of = [&](int g) { return part + (((size_t)b * n_heads + (size_t)kvh * G + g) * splits + c) * (hs + 2); };

    for (int e = tid; e < G * hs; e += blockDim.x) qs[e] = qg[e];
    __syncthreads();

    // A: scores. A warp per key, lanes along head_size: each K row is one coalesced read,
    // used for every query head of the group. The next row is loaded before this one's
    // reductions, so two rows per warp are in flight.
    auto load_row = [&](int j, float* row) {
        const float* kr = kb + (size_t)j * kv_dim;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + WARP * i;
            row[i] = d < hs ? kr[d] : 0.0f;
        }
    };
    float kv[DPL] = {}, next[DPL] = {};
    if (warp < len) load_row(warp, kv);
    for (int j = warp; j < len; j += nwarps) {  // warp-uniform
        if (j + nwarps < len) load_row(j + nwarps, next);
        for (int g = 0; g < G; g++) {
            float dot = 0.0f;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + WARP * i;
                if (d < hs) dot += qs[g * hs + d] * kv[i];
            }
            dot = warp_sum(dot);
            if (lane == 0) sc[g * chunk + j] = dot * scale;
        }
#pragma unroll
        for (int i = 0; i < DPL; i++) kv[i] = next[i];
    }
    __syncthreads();

    // B: a warp per query head turns its scores into exp(score - chunk max) and sums them.
    for (int g = warp; g < G; g += nwarps) {
        float* srow = sc + g * chunk;
        float mx = -INFINITY;
        for (int j = lane; j < len; j += WARP) mx = fmaxf(mx, srow[j]);
        mx = warp_max(mx);
        float sum = 0.0f;
        for (int j = lane; j < len; j += WARP) {
            const float e = expf(srow[j] - mx);
            srow[j] = e;
            sum += e;
        }
        sum = warp_sum(sum);
        if (lane == 0) {
            part_of(g)[0] = mx;
            part_of(g)[1] = sum;
        }
    }
    __syncthreads();

    // C: weighted V. A thread owns one dimension d for 4 heads of the group (each V value
    // read once serves 4 heads, and the 4 sums are independent chains). When there are
    // fewer (dimension, head quad) items than threads, the keys are also split into
    // `js` slices whose partial sums meet in shared memory.
    const int quads = (G + 3) / 4, items = quads * hs;
    const int js = max(1, (int)blockDim.x / items);  // block-uniform
    for (int e = tid; e < items * js; e += blockDim.x) {
        const int item = e % items, slice = e / items;
        const int quad = item / hs, d = item - quad * hs, g0 = quad * 4;
        float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const float* vcol = vb + d;
#pragma unroll 8
        for (int j = slice; j < len; j += js) {  // unrolled: several V loads in flight
            const float vv = vcol[(size_t)j * kv_dim];
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (g0 + u < G) a[u] += sc[(g0 + u) * chunk + j] * vv;
        }
        if (js == 1) {
#pragma unroll
            for (int u = 0; u < 4; u++)
                if (g0 + u < G) part_of(g0 + u)[2 + d] = a[u];
        } else {
#pragma unroll
            for (int u = 0; u < 4; u++) red[e * 4 + u] = a[u];  // e < items * js <= blockDim
        }
    }
    if (js > 1) {  // block-uniform
        __syncthreads();
        for (int item = tid; item < items; item += blockDim.x) {
            const int quad = item / hs, d = item - quad * hs, g0 = quad * 4;
#pragma unroll
            for (int u = 0; u < 4; u++) {
                if (g0 + u >= G) break;
                float a = 0.0f;
                for (int slice = 0; slice < js; slice++) a += red[(slice * items + item) * 4 + u];
                part_of(g0 + u)[2 + d] = a;
            }
        }
    }
}

// One block per (sequence, head): rescale every chunk to the global max and add up.
__global__ void attn_decode_merge_kernel(float* out, const float* part, int hs, int splits) {
    const size_t bh = blockIdx.x;  // b * n_heads + h
    const float* ph = part + bh * splits * (hs + 2);
    float mx = -INFINITY;
    for (int c = 0; c < splits; c++) mx = fmaxf(mx, ph[(size_t)c * (hs + 2)]);
    float sum = 0.0f;
    for (int c = 0; c < splits; c++) sum += ph[(size_t)c * (hs + 2) + 1] * expf(ph[(size_t)c * (hs + 2)] - mx);
    for (int d = threadIdx.x; d < hs; d += blockDim.x) {
        float a = 0.0f;
        for (int c = 0; c < splits; c++) a += ph[(size_t)c * (hs + 2) + 2 + d] * expf(ph[(size_t)c * (hs + 2)] - mx);
        out[bh * hs + d] = sum > 0.0f ? a / sum : 0.0f;  // no chunk (nothing visible): zeros
    }
}

// Chunks are never shorter than this many keys, which bounds the workspace: at most
// ceil(context / DEC_MIN_CHUNK) chunks (attention_decode_workspace_floats).
constexpr int DEC_MIN_CHUNK = 32;

// The split of a step that found its chunk (attention_decode_chunk); `part` holds
// workspace_floats floats, checked here against what the chunks will write.
template <int DPL>
void launch_decode_split(float* out, const float* q, const float* k, const float* v, int batch, int pos, int context,
                         bool strict, int n_heads, int n_kv_heads, int hs, float scale, int chunk, float* part,
                         size_t workspace_floats) {
    const int vis = pos + (strict ? 0 : 1);
    const int group = n_heads / n_kv_heads;
    const int splits = vis > 0 ? ceil_div(vis, chunk) : 0;
    const size_t need = (size_t)batch * n_heads * splits * (hs + 2);
    if (need > workspace_floats)  // cannot happen while chunk >= DEC_MIN_CHUNK: a last guard against an overflow
        bad_args("attention decode: " + std::to_string(splits) + " chunks of " + std::to_string(chunk) + " keys need " +
                 std::to_string(need) + " floats of workspace, " + std::to_string(workspace_floats) + " given");
    if (splits > 0) {
        const size_t bytes = decode_smem_bytes(group, hs, chunk);
        allow_dynamic_smem((const void*)attn_decode_split_kernel<DPL>, bytes);
        const dim3 grid(splits, n_kv_heads, batch);
        attn_decode_split_kernel<DPL><<<grid, DEC_THREADS, bytes, launch_stream()>>>(part, q, k, v, pos, context, strict, n_heads,
                                                                    n_kv_heads, hs, scale, chunk, splits);
        CUDA_CHECK_LAST("attn_decode_split_kernel");
    }
    const int threads = ceil_div(hs, WARP) * WARP;
    attn_decode_merge_kernel<<<(unsigned)((size_t)batch * n_heads), threads, 0, launch_stream()>>>(out, part, hs, splits);
    CUDA_CHECK_LAST("attn_decode_merge_kernel");
}

void check_shape(const char* what, int batch, int n_heads, int n_kv_heads, int head_size) {
    const std::string w = what;
    if (batch < 0) bad_args(w + ": negative batch");
    if (batch > 65535) bad_args(w + ": batch above 65535");
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0)
        bad_args(w + ": n_kv_heads must divide n_heads (" + std::to_string(n_heads) + ", " + std::to_string(n_kv_heads) + ")");
    if (n_kv_heads > 65535) bad_args(w + ": too many KV heads");
    if (head_size <= 0 || head_size > MAX_HEAD_SIZE)
        bad_args(w + ": head_size must be 1.." + std::to_string(MAX_HEAD_SIZE) + " (got " + std::to_string(head_size) + ")");
}

const char* const kPrefillNames[] = {"auto", "warp-per-query", "tiled-online", "flash"};
const char* const kDecodeNames[] = {"auto", "warp-per-head", "split-merge"};

}  // namespace

int attention_prefill_versions() { return 3; }
const char* attention_prefill_version_name(int version) {
    return version >= 0 && version <= 3 ? kPrefillNames[version] : "unknown";
}
int attention_decode_versions() { return 2; }
const char* attention_decode_version_name(int version) {
    return version >= 0 && version <= 2 ? kDecodeNames[version] : "unknown";
}

void attention_prefill_gpu(int version, float* out, const float* q, const float* k, const float* v, int batch, int n,
                           int p0, int context, bool strict, int n_heads, int n_kv_heads, int head_size) {
    check_shape("attention prefill", batch, n_heads, n_kv_heads, head_size);
    if (n < 0 || p0 < 0 || (size_t)p0 + n > (size_t)context)
        bad_args("attention prefill: positions " + std::to_string(p0) + ".." + std::to_string(p0 + n) +
                 " do not fit a context of " + std::to_string(context));
    if (version == 0)  // v3 where the GPU's shared memory holds its tiles (head_size 256: 204 KB, not on an A100)
        version = flash_smem_bytes(flash_groups(head_size), head_size) <= max_block_smem() ? 3 : 2;
    if (version < 1 || version > 3) bad_args("attention prefill: no version " + std::to_string(version) + " (1..3, 0 = auto)");
    if (batch == 0 || n == 0) return;
    const float scale = 1.0f / sqrtf((float)head_size);
    const int dpl = dims_per_lane(head_size);
    if (version == 1) {
        switch (dpl) {
            case 1: launch_warp<1>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 2: launch_warp<2>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 4: launch_warp<4>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            default: launch_warp<8>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
        }
    } else if (version == 3) {
        switch (flash_groups(head_size)) {
            case 1: launch_prefill_flash<1>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 2: launch_prefill_flash<2>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            default: launch_prefill_flash<4>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
        }
    } else {
        switch (dpl) {
            case 1: launch_prefill_tiled<1>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 2: launch_prefill_tiled<2>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 4: launch_prefill_tiled<4>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            default: launch_prefill_tiled<8>(out, q, k, v, batch, n, p0, context, strict, n_heads, n_kv_heads, head_size, scale); break;
        }
    }
}

size_t attention_decode_smem_bytes(int group, int head_size, int chunk) { return decode_smem_bytes(group, head_size, chunk); }

int attention_decode_chunk(int visible, int batch, int n_kv_heads, int group, int head_size, int sms, size_t smem_limit) {
    if (visible <= 0) return DEC_MIN_CHUNK;
    // Aim at ~8 blocks per SM: chunks of 64..512 keys, a multiple of 32; then halve while
    // the group's scores would not fit, never below DEC_MIN_CHUNK (halving 96 gives 48, and
    // halving again 24, more chunks than the workspace holds).
    const long long blocks = std::max(1LL, (long long)batch * n_kv_heads);  // up to 65535^2: no int
    const long long want = std::max(1LL, ((long long)sms * 8 + blocks - 1) / blocks);
    const long long keys = (visible + want - 1) / want;
    int chunk = (int)std::min(512LL, std::max(64LL, (keys + 31) / 32 * 32));
    while (chunk > DEC_MIN_CHUNK && decode_smem_bytes(group, head_size, chunk) > smem_limit)
        chunk = std::max(DEC_MIN_CHUNK, chunk / 2);
    return decode_smem_bytes(group, head_size, chunk) <= smem_limit ? chunk : 0;
}

size_t attention_decode_workspace_floats(int batch, int context, int n_heads, int head_size) {
    if (batch < 0 || context < 0 || n_heads < 0 || head_size < 0) bad_args("attention decode workspace: negative size");
    return (size_t)batch * n_heads * ceil_div(context, DEC_MIN_CHUNK) * (head_size + 2);
}

void attention_decode_gpu(int version, float* out, const float* q, const float* k, const float* v, int batch, int pos,
                          int context, bool strict, int n_heads, int n_kv_heads, int head_size, float* workspace,
                          size_t workspace_floats) {
    check_shape("attention decode", batch, n_heads, n_kv_heads, head_size);
    if (pos < 0 || pos >= context)
        bad_args("attention decode: position " + std::to_string(pos) + " outside a context of " + std::to_string(context));
    if (version < 0 || version > 2) bad_args("attention decode: no version " + std::to_string(version) + " (1..2, 0 = auto)");
    // The split's chunk, with the shared memory a block may have once the kernel opts in.
    // Where not even DEC_MIN_CHUNK keys' scores fit (hundreds of query heads per KV head),
    // auto takes version 1, which needs no shared memory, and version 2 is an error.
    const int vis = pos + (strict ? 0 : 1);
    const size_t smem_limit = max_block_smem();
    const int chunk = attention_decode_chunk(vis, batch, n_kv_heads, n_heads / n_kv_heads, head_size, num_sms(), smem_limit);
    if (version == 0) version = chunk > 0 ? 2 : 1;
    if (version == 2 && chunk == 0)
        bad_args("attention decode: split-merge needs " +
                 std::to_string(decode_smem_bytes(n_heads / n_kv_heads, head_size, DEC_MIN_CHUNK)) +
                 " bytes of shared memory for " + std::to_string(n_heads / n_kv_heads) + " query heads of size " +
                 std::to_string(head_size) + " per KV head; the GPU allows " + std::to_string(smem_limit) +
                 " (version 1 needs none)");
    const size_t need = attention_decode_workspace_floats(batch, context, n_heads, head_size);
    if (version == 2 && (workspace_floats < need || (need > 0 && workspace == nullptr)))
        bad_args("attention decode: a workspace of " + std::to_string(workspace_floats) + " floats, " +
                 std::to_string(need) + " needed");
    if (batch == 0) return;
    const float scale = 1.0f / sqrtf((float)head_size);
    const int dpl = dims_per_lane(head_size);
    if (version == 1) {
        // one query per sequence = prefill of n = 1 at p0 = pos
        switch (dpl) {
            case 1: launch_warp<1>(out, q, k, v, batch, 1, pos, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 2: launch_warp<2>(out, q, k, v, batch, 1, pos, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            case 4: launch_warp<4>(out, q, k, v, batch, 1, pos, context, strict, n_heads, n_kv_heads, head_size, scale); break;
            default: launch_warp<8>(out, q, k, v, batch, 1, pos, context, strict, n_heads, n_kv_heads, head_size, scale); break;
        }
    } else {
        switch (dpl) {
            case 1: launch_decode_split<1>(out, q, k, v, batch, pos, context, strict, n_heads, n_kv_heads, head_size, scale, chunk, workspace, workspace_floats); break;
            case 2: launch_decode_split<2>(out, q, k, v, batch, pos, context, strict, n_heads, n_kv_heads, head_size, scale, chunk, workspace, workspace_floats); break;
            case 4: launch_decode_split<4>(out, q, k, v, batch, pos, context, strict, n_heads, n_kv_heads, head_size, scale, chunk, workspace, workspace_floats); break;
            default: launch_decode_split<8>(out, q, k, v, batch, pos, context, strict, n_heads, n_kv_heads, head_size, scale, chunk, workspace, workspace_floats); break;
        }
    }
}
