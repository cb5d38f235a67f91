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
