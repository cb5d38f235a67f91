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
// Decode (attention_decode_gpu), one query per sequence:
//   1 warp per (sequence, head), version 1 of prefill with n = 1
//   2 split                   the positions are cut into chunks; a block takes one chunk of
//                             one KV head for all query heads of its group (K/V read once)
//                             and writes a partial (max, sum, weighted V) to the caller's
//                             workspace; a second kernel merges the chunks. Fills the GPU
//                             even for batch 1, long context.
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

const char* const kPrefillNames[] = {"auto", "warp-per-query", "tiled-online"};
const char* const kDecodeNames[] = {"auto", "warp-per-head", "split-merge"};

}  // namespace

int attention_prefill_versions() { return 2; }
const char* attention_prefill_version_name(int version) {
    return version >= 0 && version <= 2 ? kPrefillNames[version] : "unknown";
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
    if (version == 0) version = 2;
    if (version < 1 || version > 2) bad_args("attention prefill: no version " + std::to_string(version) + " (1..2, 0 = auto)");
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
