#include "reference/backward.h"
#include "reference/dot.h"
#include "reference/parallel.h"
#include "src/util.h"
#include <cmath>
#include <string>
#include <vector>

// y (n) += a * x (n)
static inline void axpy(float* y, float a, const float* x, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

void embedding_backward(float* dtable, const float* dout, const int* tokens, int n, int dim) {
    // serial: two rows with the same token add into the same table row
    for (int r = 0; r < n; r++) axpy(dtable + (size_t)tokens[r] * dim, 1.0f, dout + (size_t)r * dim, dim);
}

void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      int n, int dim, float eps) {
    for (int r = 0; r < n; r++) {
        const float* xr = x + (size_t)r * dim;
        const float* gr = dout + (size_t)r * dim;
        float* dxr = dx + (size_t)r * dim;
        double ss = 0.0, gwx = 0.0;  // sum x^2, sum dout * w * x
        for (int i = 0; i < dim; i++) {
            ss += (double)xr[i] * xr[i];
            gwx += (double)gr[i] * weight[i] * xr[i];
        }
        const double s = 1.0 / std::sqrt(ss / dim + eps);
        const double c = s * s * s / dim * gwx;
        for (int i = 0; i < dim; i++) dxr[i] += (float)(s * weight[i] * gr[i] - c * xr[i]);
        if (dweight)
            for (int i = 0; i < dim; i++) dweight[i] += (float)(gr[i] * (s * xr[i]));
    }
}

void matmul_backward_x(float* dx, const float* dout, const float* w, int n, int k, int d) {
#pragma omp parallel for schedule(static) if (worth_threads((double)n * k * d))
    for (int r = 0; r < n; r++) {
        float* dxr = dx + (size_t)r * k;
        const float* gr = dout + (size_t)r * d;
        for (int i = 0; i < d; i++) axpy(dxr, gr[i], w + (size_t)i * k, k);
    }
}

void matmul_backward_w(float* dw, const float* dout, const float* x, int n, int k, int d) {
#pragma omp parallel for schedule(static) if (worth_threads((double)n * k * d))
    for (int i = 0; i < d; i++) {
        float* dwi = dw + (size_t)i * k;
        for (int r = 0; r < n; r++) axpy(dwi, dout[(size_t)r * d + i], x + (size_t)r * k, k);
    }
}

void rope_backward(float* dx, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style) {
    const RopeTable angles(positions, n, head_size, theta);  // as the forward computes them
    const int half = head_size / 2;
    for (int r = 0; r < n; r++) {
        const float* cos_i = angles.cos_of(r, positions[r]);
        const float* sin_i = angles.sin_of(r, positions[r]);
        for (int h = 0; h < n_heads; h++) {
            float* head = dx + ((size_t)r * n_heads + h) * head_size;
            for (int i = 0; i < half; i++) {
                const float c = cos_i[i], s = sin_i[i];
                int a = style == RopeStyle::Adjacent ? 2 * i : i;
                int b = style == RopeStyle::Adjacent ? 2 * i + 1 : i + half;
                float g0 = head[a], g1 = head[b];
                // transpose of [[c, -s], [s, c]]
                head[a] = g0 * c + g1 * s;
                head[b] = -g0 * s + g1 * c;
            }
        }
    }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float sig = 1.0f / (1.0f + expf(-g));
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dout[i] * g * sig;
    }
}

void swiglu_backward_kept(float* dgate, float* dup, float* act, const float* dout, const float* gate, const float* up,
                          const float* denom, size_t n) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float sig = 1.0f / denom[i];
        act[i] = g / denom[i] * up[i];
        dgate[i] += dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
        dup[i] += dout[i] * g * sig;
    }
}

void residual_backward(float* dy, const float* dout, size_t n) {
    for (size_t i = 0; i < n; i++) dy[i] += dout[i];
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int n, int p0, bool strict, int n_heads, int n_kv_heads, int head_size) {
    const int q_dim = n_heads * head_size, kv_dim = n_kv_heads * head_size;
    const int group = n_heads / n_kv_heads;
    const int len = p0 + n;  // source positions any query may see
    const float scale = 1.0f / std::sqrt((float)head_size);
    // probabilities P and score gradients dS per (head, query, source), zero where masked
    std::vector<float> P((size_t)n_heads * n * len, 0.0f), dS((size_t)n_heads * n * len, 0.0f);
    const bool threads = worth_threads(4.0 * n * n_heads * len * head_size);  // q.k, dout.v, dq, dk and dv

    // pass 1, per (query, head): P = softmax(q.k * scale); dP_s = dout.v_s;
    // dS_s = P_s (dP_s - sum_u P_u dP_u); dq += scale * sum_s dS_s k_s
#pragma omp parallel for collapse(2) schedule(static) if (threads)
    for (int t = 0; t < n; t++)
        for (int h = 0; h < n_heads; h++) {
            const int visible = p0 + t + (strict ? 0 : 1);
            if (visible == 0) continue;
            const size_t kv_off = (size_t)(h / group) * head_size;
            const float* qh = q + (size_t)t * q_dim + (size_t)h * head_size;
            const float* gh = dout + (size_t)t * q_dim + (size_t)h * head_size;
            float* p = &P[((size_t)h * n + t) * len];
            float* ds = &dS[((size_t)h * n + t) * len];
            for (int s = 0; s < visible; s++) p[s] = dot(qh, k + (size_t)s * kv_dim + kv_off, head_size) * scale;
            softmax(p, visible);
            double pdp = 0.0;
            for (int s = 0; s < visible; s++) {
                ds[s] = dot(gh, v + (size_t)s * kv_dim + kv_off, head_size);
                pdp += (double)p[s] * ds[s];
            }
            for (int s = 0; s < visible; s++) ds[s] = (float)(p[s] * (ds[s] - pdp));
            if (dq) {
                float* dqh = dq + (size_t)t * q_dim + (size_t)h * head_size;
                for (int s = 0; s < visible; s++) axpy(dqh, scale * ds[s], k + (size_t)s * kv_dim + kv_off, head_size);
            }
        }
    if (!dk && !dv) return;

    // pass 2, per source position s (no two threads write one row):
    // dv_s += sum_t P_ts dout_t; dk_s += scale * sum_t dS_ts q_t, over every head of the group
#pragma omp parallel for schedule(static) if (threads)
    for (int s = 0; s < len; s++) {
        // queries t that see s: p0 + t + (strict ? 0 : 1) > s
        int t0 = s - p0 + (strict ? 1 : 0);
        if (t0 < 0) t0 = 0;
        for (int h = 0; h < n_heads; h++) {
            const size_t kv_off = (size_t)s * kv_dim + (size_t)(h / group) * head_size;
            for (int t = t0; t < n; t++) {
                const size_t pi = ((size_t)h * n + t) * len + s;
                const size_t qi = (size_t)t * q_dim + (size_t)h * head_size;
                if (dv) axpy(dv + kv_off, P[pi], dout + qi, head_size);
                if (dk) axpy(dk + kv_off, scale * dS[pi], q + qi, head_size);
            }
        }
    }
}

static void check_targets(const int* targets, int n, int vocab) {
    for (int r = 0; r < n; r++)
        if (targets[r] < 0 || targets[r] >= vocab)
            fail("target token " + std::to_string(targets[r]) + " is outside the vocabulary (0.." +
                 std::to_string(vocab - 1) + ")");
}

// max of a row of logits (a max is exact in any order, so it may be vectorized)
static float row_max(const float* row, int vocab) {
    float max = row[0];
#pragma omp simd reduction(max : max)
    for (int j = 1; j < vocab; j++) max = row[j] > max ? row[j] : max;
    return max;
}

// A row of logits is worth a thread's time from a few dozen rows of a small vocabulary.
static bool rows_worth_threads(int n, int vocab) { return worth_threads(16.0 * n * vocab); }  // an exp is ~16 multiply-adds

// Every row's loss goes to its own slot, and the slots are added in row order: the same
// total on any number of threads.
double softmax_cross_entropy(const float* logits, const int* targets, int n, int vocab) {
    check_targets(targets, n, vocab);
    std::vector<double> loss(n);
#pragma omp parallel for schedule(static) if (rows_worth_threads(n, vocab))
    for (int r = 0; r < n; r++) {
        const float* row = logits + (size_t)r * vocab;
        const float max = row_max(row, vocab);
        double sum = 0.0;
        for (int j = 0; j < vocab; j++) sum += std::exp((double)row[j] - max);
        loss[r] = max + std::log(sum) - row[targets[r]];  // log sum_j exp(row[j]) - row[target]
    }
    double total = 0.0;
    for (int r = 0; r < n; r++) total += loss[r];
    return n > 0 ? total / n : 0.0;
}

void softmax_cross_entropy_backward(float* dlogits, const float* logits, const int* targets, int n, int vocab,
                                    float scale) {
    check_targets(targets, n, vocab);
    const double w = (double)scale / n;
    for (int r = 0; r < n; r++) {
        const float* row = logits + (size_t)r * vocab;
        float* drow = dlogits + (size_t)r * vocab;
        const float max = row_max(row, vocab);
        double sum = 0.0;
        for (int j = 0; j < vocab; j++) sum += std::exp((double)row[j] - max);
        const double lse = max + std::log(sum);
        for (int j = 0; j < vocab; j++) {
            const double p = std::exp((double)row[j] - lse);
            drow[j] += (float)(w * (p - (j == targets[r] ? 1.0 : 0.0)));
        }
    }
}

double softmax_cross_entropy_with_grad(float* dlogits, const float* logits, const int* targets, int n, int vocab,
                                       float scale) {
    check_targets(targets, n, vocab);
    const double w = (double)scale / n;
    std::vector<double> loss(n);
#pragma omp parallel if (rows_worth_threads(n, vocab))
    {
        std::vector<double> e(vocab);  // exp(row[j] - max), kept for the gradient
#pragma omp for schedule(static)
        for (int r = 0; r < n; r++) {
            const float* row = logits + (size_t)r * vocab;
            float* drow = dlogits + (size_t)r * vocab;
            const float max = row_max(row, vocab);
            double sum = 0.0;
            for (int j = 0; j < vocab; j++) sum += (e[j] = std::exp((double)row[j] - max));
            loss[r] = max + std::log(sum) - row[targets[r]];
            e[targets[r]] -= sum;  // the one-hot term: p - 1 = (e - sum) / sum
            const double inv = 1.0 / sum;
            for (int j = 0; j < vocab; j++) drow[j] += (float)(w * (e[j] * inv));
        }
    }
    double total = 0.0;
    for (int r = 0; r < n; r++) total += loss[r];
    return n > 0 ? total / n : 0.0;
}
