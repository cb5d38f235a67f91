#include "reference/attention_blocked.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "reference/parallel.h"
#include <algorithm>
#include <cmath>
#include <vector>

// Queries per block: their scores against every position, (32, p0 + n) floats, stay in L2.
constexpr int kQueryBlock = 32;

// One query head h over queries t0 .. t0 + T - 1; `scores` holds (T, len) floats.
// Query t sees positions 0 .. visible(t) - 1, visible(t) = p0 + t + (strict ? 0 : 1).
static void attend_block(float* out, const float* q, const float* k, const float* v, float* scores, int t0, int T,
                         int p0, bool strict, int h, int n_heads, int n_kv_heads, int head_size, int len) {
    const size_t q_dim = (size_t)n_heads * head_size, kv_dim = (size_t)n_kv_heads * head_size;
    const size_t kv_off = (size_t)(h / (n_heads / n_kv_heads)) * head_size;
    const float scale = 1.0f / std::sqrt((float)head_size);
    auto visible = [&](int t) { return p0 + t + (strict ? 0 : 1); };
    const float* qb = q + t0 * q_dim + (size_t)h * head_size;
    float* ob = out + t0 * q_dim + (size_t)h * head_size;

    // scores (T, visible of the last query): the block's top right corner is masked, and
    // computed anyway (a tile is cheaper whole); each row's softmax reads only what it sees
    const int widest = visible(t0 + T - 1);
    dot_products(scores, len, qb, q_dim, k + kv_off, kv_dim, T, head_size, widest);
    for (int t = 0; t < T; t++) {
        float* row = scores + (size_t)t * len;
        const int seen = visible(t0 + t);
        for (int s = 0; s < seen; s++) row[s] *= scale;
        softmax(row, seen);
        for (int i = 0; i < head_size; i++) ob[t * q_dim + i] = 0.0f;  // a query that sees nothing outputs zeros
    }

    // out = P V in increasing position: the positions every query of the block sees, for
    // all of them at once, then the few more each later query sees
    const int common = visible(t0);
    multiply_add(ob, q_dim, scores, len, 1, v + kv_off, kv_dim, T, common, head_size);
    for (int t = 1; t < T; t++)
        multiply_add(ob + t * q_dim, q_dim, scores + (size_t)t * len + common, len, 1, v + common * kv_dim + kv_off,
                     kv_dim, 1, visible(t0 + t) - common, head_size);
}

void attention_blocked(float* out, const float* q, const float* k, const float* v, int n, int p0, bool strict,
                       int n_heads, int n_kv_heads, int head_size) {
    const int len = p0 + n;  // positions any query may see
    const int blocks = (n + kQueryBlock - 1) / kQueryBlock;
    const double work = 2.0 * n * n_heads * (double)len * head_size;  // q.k and p v, at most
#pragma omp parallel if (worth_threads(work))
    {
        thread_local std::vector<float> scores;  // grows with the context, reused every call
        const size_t need = (size_t)std::min(n, kQueryBlock) * len;
        if (scores.size() < need) scores.resize(std::max(2 * scores.size(), need));
#pragma omp for collapse(2) schedule(dynamic) nowait  // the region's end is the one barrier
        for (int b = 0; b < blocks; b++)
            for (int h = 0; h < n_heads; h++) {
                const int t0 = b * kQueryBlock;
                attend_block(out, q, k, v, scores.data(), t0, std::min(kQueryBlock, n - t0), p0, strict, h, n_heads,
                             n_kv_heads, head_size, len);
            }
    }
}

// ---------------------------------------------------------------------------------------
// The backward.
//
// P and dS are (n_heads, n, len) with rows of stride len. Row t of a head is computed up to
// the widest query of its block, and is zero from the first position it does not see for
// kKeyBlock positions: far enough that pass 2, which reads a key block's columns from every
// query that sees its first position, reads zeros where a query sees less than the block.

constexpr int kKeyBlock = 32;

// Pass 1 for query head h over queries t0 .. t0 + T - 1.
static void backward_query_block(float* dq, float* P, float* dS, const float* dout, const float* q, const float* k,
                                 const float* v, int t0, int T, int n, int p0, bool strict, int h, int n_heads,
                                 int n_kv_heads, int head_size) {
    const int len = p0 + n;
    const size_t q_dim = (size_t)n_heads * head_size, kv_dim = (size_t)n_kv_heads * head_size;
    const size_t kv_off = (size_t)(h / (n_heads / n_kv_heads)) * head_size;
    const float scale = 1.0f / std::sqrt((float)head_size);
    auto visible = [&](int t) { return p0 + t + (strict ? 0 : 1); };
    const size_t at = (size_t)t0 * q_dim + (size_t)h * head_size;
    float* Pb = P + ((size_t)h * n + t0) * len;
    float* dSb = dS + ((size_t)h * n + t0) * len;

    // scores and dP = dout v^T up to the widest query of the block, as the forward computes them
    const int widest = visible(t0 + T - 1);
    dot_products(Pb, len, q + at, q_dim, k + kv_off, kv_dim, T, head_size, widest);
    dot_products(dSb, len, dout + at, q_dim, v + kv_off, kv_dim, T, head_size, widest);
    for (int t = 0; t < T; t++) {
        float* p = Pb + (size_t)t * len;
        float* ds = dSb + (size_t)t * len;
        const int seen = visible(t0 + t);
        for (int s = 0; s < seen; s++) p[s] *= scale;
        softmax(p, seen);
        double pdp = 0.0;  // sum_s P_s dP_s
        for (int s = 0; s < seen; s++) pdp += (double)p[s] * ds[s];
        for (int s = 0; s < seen; s++) ds[s] = (float)(p[s] * (ds[s] - pdp)) * scale;
        const int end = std::min(len, seen + kKeyBlock);
        std::fill(p + seen, p + end, 0.0f);
        std::fill(ds + seen, ds + end, 0.0f);
    }
    if (dq) multiply_add(dq + at, q_dim, dSb, len, 1, k + kv_off, kv_dim, T, widest, head_size);
}

// Pass 2 for KV head g over source positions s0 .. s0 + S - 1: every query head of its
// group, every query that sees s0 (later queries see the whole block).
static void backward_key_block(float* dk, float* dv, const float* P, const float* dS, const float* dout,
                               const float* q, int s0, int S, int n, int p0, bool strict, int g, int n_heads,
                               int n_kv_heads, int head_size) {
    const int len = p0 + n, group = n_heads / n_kv_heads;
    const size_t q_dim = (size_t)n_heads * head_size, kv_dim = (size_t)n_kv_heads * head_size;
    const int t_first = std::max(0, s0 - p0 + (strict ? 1 : 0));  // p0 + t + (strict ? 0 : 1) > s0
    if (t_first >= n) return;
    const size_t out = (size_t)s0 * kv_dim + (size_t)g * head_size;
    for (int h = g * group; h < (g + 1) * group; h++) {
        const size_t rows = ((size_t)h * n + t_first) * len + s0;  // P(h)[t_first][s0]
        const size_t at = (size_t)t_first * q_dim + (size_t)h * head_size;
        // dv (S, head_size) += P^T dout; dk += dS^T q: a read down the columns of P and dS
        if (dv) multiply_add(dv + out, kv_dim, P + rows, 1, len, dout + at, q_dim, S, n - t_first, head_size);
        if (dk) multiply_add(dk + out, kv_dim, dS + rows, 1, len, q + at, q_dim, S, n - t_first, head_size);
    }
}

void attention_backward_blocked(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, int n, int p0, bool strict, int n_heads, int n_kv_heads, int head_size) {
    const int len = p0 + n;
    const size_t per = (size_t)n_heads * n * len;
    thread_local std::vector<float> kept;  // P, then dS; grows with the longest call, reused
    if (kept.size() < 2 * per) kept.resize(2 * per);
    float* P = kept.data();
    float* dS = P + per;
    const int q_blocks = (n + kQueryBlock - 1) / kQueryBlock, k_blocks = (len + kKeyBlock - 1) / kKeyBlock;
    const double work = 4.0 * n * n_heads * (double)len * head_size;  // q.k, dout.v, dq, dk and dv, at most
#pragma omp parallel if (worth_threads(work))
    {
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < q_blocks; b++)
            for (int h = 0; h < n_heads; h++) {
                const int t0 = b * kQueryBlock;
                backward_query_block(dq, P, dS, dout, q, k, v, t0, std::min(kQueryBlock, n - t0), n, p0, strict, h,
                                     n_heads, n_kv_heads, head_size);
            }
        if (dk || dv) {
#pragma omp for collapse(2) schedule(dynamic) nowait  // the region's end is the last barrier
            for (int g = 0; g < n_kv_heads; g++)
                for (int b = 0; b < k_blocks; b++) {
                    const int s0 = b * kKeyBlock;
                    backward_key_block(dk, dv, P, dS, dout, q, s0, std::min(kKeyBlock, len - s0), n, p0, strict, g,
                                       n_heads, n_kv_heads, head_size);
                }
        }
    }
}
