#include "reference/ops.h"
#include "reference/dot.h"
#include "reference/parallel.h"
#include <algorithm>
#include <cmath>
#include <vector>

void embedding(float* out, const float* token_embedding, const int* tokens, int n, int dim) {
    for (int r = 0; r < n; r++)
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = token_embedding[(size_t)tokens[r] * dim + i];
}

void rmsnorm(float* out, const float* x, const float* weight, int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float* xr = x + (size_t)r * dim;
        double ss = 0.0;
        for (int i = 0; i < dim; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / std::sqrt(ss / dim + eps));
        for (int i = 0; i < dim; i++) out[(size_t)r * dim + i] = weight[i] * (scale * xr[i]);
    }
}

void matmul(float* out, const float* x, const float* w, int n, int k, int d) {
#pragma omp parallel for schedule(static) if (worth_threads((double)n * k * d))
    for (int i = 0; i < d; i++) {
        const float* wi = w + (size_t)i * k;
        for (int r = 0; r < n; r++) out[(size_t)r * d + i] = dot(wi, x + (size_t)r * k, k);
    }
}

void rope_angles(float* cos_t, float* sin_t, int first, int count, int head_size, float theta) {
    const int half = head_size / 2;
    for (int i = 0; i < half; i++) {
        // the same float arithmetic as llama2.c, so greedy outputs match it
        const float freq = 1.0f / powf(theta, (float)(2 * i) / (float)head_size);
        for (int p = 0; p < count; p++) {
            const float angle = (first + p) * freq;
            cos_t[(size_t)p * half + i] = cosf(angle);
            sin_t[(size_t)p * half + i] = sinf(angle);
        }
    }
}

RopeTable::RopeTable(const int* positions, int n, int head_size, float theta) : half(head_size / 2) {
    if (n <= 0) return;
    first = *std::min_element(positions, positions + n);
    const int last = *std::max_element(positions, positions + n);
    // a training batch or a prefill repeats a short range of positions: one row of angles
    // per position of the range; other positions (far apart) get a row each
    sparse = (size_t)last - first + 1 > (size_t)n;
    const int rows = sparse ? n : last - first + 1;
    cos_t.resize((size_t)rows * half);
    sin_t.resize((size_t)rows * half);
    if (!sparse) {
        rope_angles(cos_t.data(), sin_t.data(), first, rows, head_size, theta);
        return;
    }
    for (int r = 0; r < n; r++)
        rope_angles(&cos_t[(size_t)r * half], &sin_t[(size_t)r * half], positions[r], 1, head_size, theta);
}

void rope(float* x, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style) {
    const RopeTable angles(positions, n, head_size, theta);
    const int half = head_size / 2;
    for (int r = 0; r < n; r++) {
        const float* cos_i = angles.cos_of(r, positions[r]);
        const float* sin_i = angles.sin_of(r, positions[r]);
        for (int h = 0; h < n_heads; h++) {
            float* head = x + ((size_t)r * n_heads + h) * head_size;
            for (int i = 0; i < half; i++) {
                const float c = cos_i[i], s = sin_i[i];
                int a = style == RopeStyle::Adjacent ? 2 * i : i;
                int b = style == RopeStyle::Adjacent ? 2 * i + 1 : i + half;
                float x0 = head[a], x1 = head[b];
                head[a] = x0 * c - x1 * s;
                head[b] = x0 * s + x1 * c;
            }
        }
    }
}

void softmax(float* x, int n) {
    if (n <= 0) return;
    float max = x[0];  // a max is exact in any order, so it may be vectorized
#pragma omp simd reduction(max : max)
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void swiglu(float* hb, const float* hb2, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = hb[i];
        hb[i] = g / (1.0f + expf(-g)) * hb2[i];
    }
}

void swiglu_keep(float* act, float* denom, const float* gate, const float* up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        denom[i] = 1.0f + expf(-g);
        act[i] = g / denom[i] * up[i];  // swiglu's g / (1 + exp(-g)) * up
    }
}

void residual_add(float* x, const float* y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void attention(float* out, const float* q, const float* k, const float* v, int n, int p0, bool strict,
               int n_heads, int n_kv_heads, int head_size) {
    const int q_dim = n_heads * head_size, kv_dim = n_kv_heads * head_size;
    const int group = n_heads / n_kv_heads;
    const float scale = 1.0f / std::sqrt((float)head_size);
    const double work = 2.0 * n * n_heads * ((double)p0 + n) * head_size;  // q.k and p v, at most
#pragma omp parallel if (worth_threads(work))
    {
        thread_local std::vector<float> scores;  // grows with the context, reused every token
        if (scores.size() < (size_t)p0 + n + 1) scores.resize(std::max<size_t>(2 * scores.size(), (size_t)p0 + n + 1));
#pragma omp for collapse(2) schedule(static)
        for (int t = 0; t < n; t++)
            for (int h = 0; h < n_heads; h++) {
                const int visible = p0 + t + (strict ? 0 : 1);  // source positions 0 .. visible-1
                const float* qh = q + (size_t)t * q_dim + (size_t)h * head_size;
                const size_t kv_off = (size_t)(h / group) * head_size;
                float* oh = out + (size_t)t * q_dim + (size_t)h * head_size;
                for (int i = 0; i < head_size; i++) oh[i] = 0.0f;
                if (visible == 0) continue;
                for (int s = 0; s < visible; s++) scores[s] = dot(qh, k + (size_t)s * kv_dim + kv_off, head_size) * scale;
                softmax(scores.data(), visible);
                for (int s = 0; s < visible; s++) {
                    const float* vs = v + (size_t)s * kv_dim + kv_off;
                    const float a = scores[s];
#pragma omp simd
                    for (int i = 0; i < head_size; i++) oh[i] = mul_add(a, vs[i], oh[i]);
                }
            }
    }
}

void attention_zero_row(float* out, const float* q, const float* k, const float* v, int p, int n_heads,
                        int n_kv_heads, int head_size) {
    const int kv_dim = n_kv_heads * head_size, group = n_heads / n_kv_heads;
    const int rows = std::max(p - 1, 0);  // source positions 0 .. p-2
    const float scale = 1.0f / std::sqrt((float)head_size);
    std::vector<float> scores(rows + 1);  // [0] is the zero row's score, q . 0 = 0
    for (int h = 0; h < n_heads; h++) {
        const float* qh = q + (size_t)h * head_size;
        const size_t kv_off = (size_t)(h / group) * head_size;
        float* oh = out + (size_t)h * head_size;
        scores[0] = 0.0f;
        for (int s = 0; s < rows; s++) scores[1 + s] = dot(qh, k + (size_t)s * kv_dim + kv_off, head_size) * scale;
        softmax(scores.data(), rows + 1);
        for (int i = 0; i < head_size; i++) oh[i] = 0.0f;  // the zero row adds nothing to the sum
        for (int s = 0; s < rows; s++)
            for (int i = 0; i < head_size; i++) oh[i] += scores[1 + s] * v[(size_t)s * kv_dim + kv_off + i];
    }
}
