// The reference ops: plain loops a reader can check by eye, the ground truth the CUDA
// kernels are tested against. Matrices are row-major; a "row" is one token.
#pragma once
#include <cstddef>
#include <vector>

enum class RopeStyle {
    Adjacent,   // llama2.c / Meta: rotate pairs (2i, 2i+1) within each head
    HalfSplit,  // Hugging Face: rotate pairs (i, i + head_size/2)
};

// out (n, dim) = token_embedding[tokens[r]]
void embedding(float* out, const float* token_embedding, const int* tokens, int n, int dim);

// out (n, dim) = x / rms(x) * weight, per row; the sum of squares accumulates in double.
void rmsnorm(float* out, const float* x, const float* weight, int n, int dim, float eps);

// out (n, d) = x (n, k) @ w (d, k)^T: every output row i is a dot with weight row i.
void matmul(float* out, const float* x, const float* w, int n, int k, int d);

// Rotates every head of every row in place; row r sits at positions[r].
void rope(float* x, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style);

// cos and sin of p * theta^(-2i / head_size), i < head_size / 2, for positions p = first ..
// first + count - 1: (count, head_size / 2) each, in llama2.c's float arithmetic.
void rope_angles(float* cos_t, float* sin_t, int first, int count, int head_size, float theta);

// The angles rope() and rope_backward() rotate n rows by, computed once per position: a
// training batch or a prefill of several sequences repeats its positions (powf and sincosf
// per row were 2.5% of a demo training step).
struct RopeTable {
    int half = 0, first = 0;
    bool sparse = false;  // positions spread wider than n: one row of angles per row instead
    std::vector<float> cos_t, sin_t;
    RopeTable(const int* positions, int n, int head_size, float theta);
    const float* cos_of(int row, int pos) const { return &cos_t[(size_t)(sparse ? row : pos - first) * half]; }
    const float* sin_of(int row, int pos) const { return &sin_t[(size_t)(sparse ? row : pos - first) * half]; }
};

// In-place numerically safe softmax of one row of n values.
void softmax(float* x, int n);

// hb (n) = silu(hb) * hb2  (the SwiGLU gate, element-wise)
void swiglu(float* hb, const float* hb2, size_t n);
// act (n) = swiglu of gate and up, with swiglu's bits, keeping each element's denominator
// denom = 1 + exp(-gate) for the backward (training), which then needs no exp.
void swiglu_keep(float* act, float* denom, const float* gate, const float* up, size_t n);

// x (n) += y (n)
void residual_add(float* x, const float* y, size_t n);

// Attention of one sequence's queries over a source layer's cached K/V.
//   q, out: (n, n_heads * head_size), query t sits at position p0 + t
//   k, v:   (>= p0 + n, n_kv_heads * head_size), the source's cache for this sequence
// Query at p sees source positions s <= p (causal) or s < p (strict); query head h reads
// KV head h / (n_heads / n_kv_heads). A query that sees nothing outputs zeros.
void attention(float* out, const float* q, const float* k, const float* v, int n, int p0, bool strict,
               int n_heads, int n_kv_heads, int head_size);

// attention() for one query per sequence at position p (a one-token step) of a layer that
// reads an upper layer, as the LCKV authors' code computes it (walkthrough 9.9): their decode
// prepends a row of zeros to the upper layer's cached K/V (0 .. p-1) and masks the last
// column, so the query sees the zero row (score 0, value 0) and source positions 0 .. p-2.
// Zeros at p <= 1, where the zero row is all it sees.
void attention_zero_row(float* out, const float* q, const float* k, const float* v, int p, int n_heads,
                        int n_kv_heads, int head_size);
