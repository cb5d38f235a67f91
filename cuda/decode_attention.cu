// Decode attention at the position counter (cuda/decode_kernels.h): the query of every
// sequence sits at position counter[0], which a kernel reads from device memory, so the
// same launches serve every decode step and a CUDA graph can replay them.
//
// The split-merge scheme of attention_decode_gpu (cuda/attention.cu), with what a graph
// needs: the positions are cut into chunks whose length and count depend on the context
// only, so the grid is the same at every step; a block whose chunk starts past the
// position returns at once, and the merge reads only the chunks before the position.
//   split  block = (chunk, KV head, sequence), every query head of the KV head's group:
//          scores of its keys (a warp per key), their partial softmax (max, sum), and the
//          weighted sum of V (a thread per head and dimension) into the workspace
//   merge  block = (sequence, head): rescales every chunk's partial to the global max
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"

using namespace kvk;

namespace {

constexpr int THREADS = 128;
constexpr int MIN_CHUNK = 32, MAX_CHUNK = 512;
constexpr int MAX_HEAD_SIZE = 256;

struct Chunks {
    int chunk = MIN_CHUNK, splits = 0;
    size_t smem = 0;  // bytes of shared memory per split block
};

size_t split_smem_bytes(int group, int hs, int chunk) {
    return sizeof(float) * ((size_t)group * hs + (size_t)group * chunk);  // queries, then scores
}

// Chunks of 32..512 keys (a multiple of 32), aiming at four blocks per multiprocessor when
// the whole context is visible; shorter when the group's scores would not fit 48 KB, but
// never below 32, so the workspace formula below holds.
Chunks chunks_for(int batch, int context, int n_heads, int n_kv_heads, int hs) {
    Chunks c;
    const int group = n_heads / n_kv_heads;
    const int want_splits = std::max(1, ceil_div(4 * num_sms(), std::max(1, batch * n_kv_heads)));
    c.chunk = ceil_div(ceil_div(context, want_splits), 32) * 32;
    c.chunk = std::min(MAX_CHUNK, std::max(MIN_CHUNK, c.chunk));
    while (c.chunk > MIN_CHUNK && split_smem_bytes(group, hs, c.chunk) > 48 * 1024) c.chunk -= 32;
    c.splits = ceil_div(context, c.chunk);
    c.smem = split_smem_bytes(group, hs, c.chunk);
    return c;
}

// Positions 0 .. vis-1 that the query at pos sees, by mask (decode_kernels.h).
__device__ inline int visible_positions(int pos, int mask) {
    return mask == kDecodeZeroRow ? max(pos - 1, 0) : mask ? pos : pos + 1;
}

// Values per lane when a warp spans head_size.
int dims_per_lane(int head_size) { return head_size <= 32 ? 1 : head_size <= 64 ? 2 : head_size <= 128 ? 4 : 8; }

// part: (batch, n_heads, splits, 2 + hs) = max, sum of exp(score - max), sum of exp * V.
template <int DPL>
__global__ void __launch_bounds__(THREADS) split_kernel(float* part, const float* q, const float* k, const float* v,
                                                        const int* counter, int context, int mask, int n_heads,
                                                        int n_kv_heads, int hs, float scale, int chunk, int splits) {
    extern __shared__ float smem[];
    const int G = n_heads / n_kv_heads;
    float* qs = smem;         // [G][hs]
    float* sc = qs + G * hs;  // [G][chunk]
    const int c = blockIdx.x, kvh = blockIdx.y, b = blockIdx.z;
    const int tid = threadIdx.x, lane = tid % WARP, warp = tid / WARP, nwarps = blockDim.x / WARP;
    // positions 0 .. vis-1 are visible, never past the context (a counter past it reads nothing beyond)
    const int vis = min(visible_positions(*counter, mask), context);
    const int s0 = c * chunk;
    if (s0 >= vis) return;  // block-uniform, before any barrier: this chunk is in the future
    const int len = min(chunk, vis - s0);
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const float* kb = k + ((size_t)b * context + s0) * kv_dim + (size_t)kvh * hs;
    const float* vb = v + ((size_t)b * context + s0) * kv_dim + (size_t)kvh * hs;
    const float* qg = q + (size_t)b * q_dim + (size_t)kvh * G * hs;  // the group's heads are adjacent
    // head g of the group, this chunk
    auto part_of = [&](int g) { return part + (((size_t)b * n_heads + (size_t)kvh * G + g) * splits + c) * (hs + 2); };

    for (int e = tid; e < G * hs; e += blockDim.x) qs[e] = qg[e];
    __syncthreads();

    // scores: a warp per key, lanes along head_size; each K row read once for the whole group
    for (int j = warp; j < len; j += nwarps) {  // warp-uniform
        const float* kr = kb + (size_t)j * kv_dim;
        float kv[DPL];
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + WARP * i;
            kv[i] = d < hs ? kr[d] : 0.0f;
        }
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
    }
    __syncthreads();

    // partial softmax: a warp per head, exp(score - chunk max) in place, and their sum
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

    // weighted V: a thread per (head, dimension); consecutive threads read consecutive V
    for (int e = tid; e < G * hs; e += blockDim.x) {
        const int g = e / hs, d = e - g * hs;
        const float* srow = sc + g * chunk;
        float a = 0.0f;
        for (int j = 0; j < len; j++) a += srow[j] * vb[(size_t)j * kv_dim + d];
        part_of(g)[2 + d] = a;
    }
}

// One block per (sequence, head): the chunks before the position, rescaled to their
// common max and added up; zeros when nothing is visible. The authors' zero row is one more
// score, 0, with a value of zeros: it counts in the max and the sum, and adds nothing to V.
__global__ void merge_kernel(float* out, const float* part, const int* counter, int mask, int hs, int chunk,
                             int splits) {
    const size_t bh = blockIdx.x;  // b * n_heads + h
    const int vis = visible_positions(*counter, mask);  // past the context, `used` stops at the last chunk
    const int used = vis > 0 ? min(splits, (vis + chunk - 1) / chunk) : 0;
    const float* ph = part + bh * splits * (hs + 2);
    const bool zero_row = mask == kDecodeZeroRow;
    float mx = zero_row ? 0.0f : -INFINITY;
    for (int c = 0; c < used; c++) mx = fmaxf(mx, ph[(size_t)c * (hs + 2)]);
    float sum = zero_row ? expf(-mx) : 0.0f;
    for (int c = 0; c < used; c++) sum += ph[(size_t)c * (hs + 2) + 1] * expf(ph[(size_t)c * (hs + 2)] - mx);
    for (int d = threadIdx.x; d < hs; d += blockDim.x) {
        float a = 0.0f;
        for (int c = 0; c < used; c++) a += ph[(size_t)c * (hs + 2) + 2 + d] * expf(ph[(size_t)c * (hs + 2)] - mx);
        out[bh * hs + d] = sum > 0.0f ? a / sum : 0.0f;
    }
}

template <int DPL>
void launch_split(const Chunks& ch, float* part, const float* q, const float* k, const float* v, const int* counter,
                  int batch, int context, int mask, int n_heads, int n_kv_heads, int hs, float scale) {
    allow_dynamic_smem((const void*)split_kernel<DPL>, ch.smem);
    const dim3 grid(ch.splits, n_kv_heads, batch);
    split_kernel<DPL><<<grid, THREADS, ch.smem, launch_stream()>>>(part, q, k, v, counter, context, mask, n_heads,
                                                                   n_kv_heads, hs, scale, ch.chunk, ch.splits);
    CUDA_CHECK_LAST();
}

void check_shape(int batch, int context, int n_heads, int n_kv_heads, int head_size) {
    if (batch < 0 || batch > 65535) bad_args("attention decode (counter): batch must be 0..65535");
    if (context < 1) bad_args("attention decode (counter): context must be positive");
    if (n_heads <= 0 || n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || n_kv_heads > 65535)
        bad_args("attention decode (counter): n_kv_heads must divide n_heads (" + std::to_string(n_heads) + ", " +
                 std::to_string(n_kv_heads) + ")");
    if (head_size <= 0 || head_size > MAX_HEAD_SIZE)
        bad_args("attention decode (counter): head_size must be 1.." + std::to_string(MAX_HEAD_SIZE));
}

void check_mask(int mask) {
    if (mask < 0 || mask > kDecodeZeroRow) bad_args("attention decode (counter): mask must be 0, 1 or 2");
}

}  // namespace

size_t attention_decode_counter_workspace_floats(int batch, int context, int n_heads, int n_kv_heads, int head_size) {
    check_shape(batch, context, n_heads, n_kv_heads, head_size);
    const Chunks ch = chunks_for(batch, context, n_heads, n_kv_heads, head_size);
    return (size_t)batch * n_heads * ch.splits * (head_size + 2);
}

void attention_decode_counter_gpu(float* out, const float* q, const float* k, const float* v, const int* counter,
                                  int batch, int context, int mask, int n_heads, int n_kv_heads, int head_size,
                                  float* workspace, size_t workspace_floats) {
    const size_t need = attention_decode_counter_workspace_floats(batch, context, n_heads, n_kv_heads, head_size);
    if (workspace_floats < need || (need > 0 && !workspace))
        bad_args("attention decode (counter): a workspace of " + std::to_string(workspace_floats) + " floats, " +
                 std::to_string(need) + " needed");
    check_mask(mask);
    if (batch == 0) return;
    const Chunks ch = chunks_for(batch, context, n_heads, n_kv_heads, head_size);
    const float scale = 1.0f / sqrtf((float)head_size);
    switch (dims_per_lane(head_size)) {
        case 1: launch_split<1>(ch, workspace, q, k, v, counter, batch, context, mask, n_heads, n_kv_heads, head_size, scale); break;
        case 2: launch_split<2>(ch, workspace, q, k, v, counter, batch, context, mask, n_heads, n_kv_heads, head_size, scale); break;
        case 4: launch_split<4>(ch, workspace, q, k, v, counter, batch, context, mask, n_heads, n_kv_heads, head_size, scale); break;
        default: launch_split<8>(ch, workspace, q, k, v, counter, batch, context, mask, n_heads, n_kv_heads, head_size, scale); break;
    }
    const int threads = ceil_div(head_size, WARP) * WARP;
    merge_kernel<<<(unsigned)((size_t)batch * n_heads), threads, 0, launch_stream()>>>(out, workspace, counter, mask,
                                                                                       head_size, ch.chunk, ch.splits);
    CUDA_CHECK_LAST();
}
