// The backward pass of every reference op in reference/ops.h, plus the softmax
// cross-entropy loss. Plain loops, one op per function, like the forward.
//
// Convention: every gradient output ACCUMULATES (+=); the caller zeroes it first. This
// lets a residual stream, a shared weight, or a K/V read by several layers gather the
// gradients of all its uses. A gradient pointer may be nullptr where the caller does
// not want that gradient (documented per function).
#pragma once
#include "reference/ops.h"
#include <cstddef>

// embedding: out[r] = table[tokens[r]]  =>  dtable[tokens[r]] += dout[r] (scatter-add;
// a token that occurs twice gets both rows).
void embedding_backward(float* dtable, const float* dout, const int* tokens, int n, int dim);

// rmsnorm: out = x * s * w, s = 1/sqrt(mean(x^2) + eps), per row of dim values.
//   dx[j] += s * w[j] * dout[j] - s^3 / dim * x[j] * sum_i dout[i] w[i] x[i]
//   dweight[j] += sum over rows of dout[j] * x[j] * s          (dweight may be nullptr)
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      int n, int dim, float eps);

// matmul: out (n, d) = x (n, k) @ w (d, k)^T.
//   dx (n, k) += dout (n, d) @ w (d, k)
void matmul_backward_x(float* dx, const float* dout, const float* w, int n, int k, int d);
//   dw (d, k) += dout (n, d)^T @ x (n, k)
void matmul_backward_w(float* dw, const float* dout, const float* x, int n, int k, int d);

// rope is a rotation by +angle of each pair; its backward rotates the gradient by -angle,
// in place, with the same angles (same float arithmetic) as the forward.
void rope_backward(float* dx, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style);

// swiglu: out = silu(gate) * up, silu(g) = g * sigmoid(g).
//   dgate += dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g)));  dup += dout * silu(g)
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, size_t n);
// The same from the denominators swiglu_keep kept (sigmoid(g) = 1 / denom): the same bits,
// and no exp; act (n) receives the forward's output again (swiglu's bits), for W2's gradient.
void swiglu_backward_kept(float* dgate, float* dup, float* act, const float* dout, const float* gate, const float* up,
                          const float* denom, size_t n);

// residual_add: x += y  =>  dy += dout (dx passes through unchanged).
void residual_backward(float* dy, const float* dout, size_t n);

// attention (reference/ops.h) for one sequence: same shapes, masks and grouping.
//   dq (n, n_heads * head_size) += dL/dq
//   dk, dv (>= p0 + n, n_kv_heads * head_size) += dL/dk, dL/dv: the SOURCE layer's K/V
//   gradient, gathering what every query head of every reading layer contributes.
//   dk and dv may both be nullptr (the K/V is a constant, e.g. an unrecorded iteration's).
// A query that sees nothing has a constant zero output, so it contributes nothing.
// Softmax probabilities are recomputed from q and k exactly as the forward does.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int n, int p0, bool strict, int n_heads, int n_kv_heads, int head_size);

// Mean over n rows of -log softmax(logits[r])[targets[r]], computed in double.
double softmax_cross_entropy(const float* logits, const int* targets, int n, int vocab);
// Its gradient: dlogits[r] += (softmax(logits[r]) - onehot(targets[r])) * scale / n.
// scale lets a caller weight this loss (1 for the plain mean).
void softmax_cross_entropy_backward(float* dlogits, const float* logits, const int* targets, int n, int vocab,
                                    float scale = 1.0f);
// Both at once, as training needs them, with one exp per logit instead of three: returns
// softmax_cross_entropy's value (the same bits) and adds the gradient above (within float
// rounding). Rows run in parallel when they pay for it.
double softmax_cross_entropy_with_grad(float* dlogits, const float* logits, const int* targets, int n, int vocab,
                                       float scale = 1.0f);
