// The kernels of the GPU forward's decode step beyond cuda/kernels.h: the position counter
// that lets one CUDA graph replay for every token, strided copies without cudaMemcpy2D's
// pitch limit, the fused decode projections, decode attention at the counter's position,
// and sampling on the device. Plain C++ launch functions as in cuda/kernels.h: every
// pointer is a device pointer, work goes to the thread's launch stream (cuda/launch.h),
// bad arguments throw std::runtime_error.
#pragma once
#include "cuda/launch.h"
#include "cuda/strided.h"
#include <cstddef>
#include <cstdint>

// ---- positions and the decode position counter (cuda/positions.cu) ----------------------
// The counter is one int in device memory: the position of the token the next decode step
// appends (the same in every sequence). A step reads it and its last kernel advances it, so
// the launches of a step never change and a captured graph replays for every token.
void set_counter_gpu(int* counter, int value);
void advance_counter_gpu(int* counter);  // += 1
// positions (rows) = counter[0]
void positions_from_counter_gpu(int* positions, const int* counter, int rows);
// positions (batch * n) of a prefill: row r at p0 + r % n
void prefill_positions_gpu(int* positions, int batch, int n, int p0);

// ---- strided copies (cuda/strided.cu) ---------------------------------------------------
// dst[r.dst(e)] = src[r.src(e)] for every element e of r.
void strided_copy_gpu(float* dst, const float* src, const StridedRows& r);
// dst[r.dst(e)] = value: the destination side of r only.
void strided_fill_gpu(float* dst, float value, const StridedRows& r);
// A KV layer's new rows (batch, kv_dim) into its slot (batch, context, kv_dim) at position
// counter[0] of every sequence: the K/V store of the unfused decode step.
void store_kv_at_counter_gpu(float* slot, const float* rows, const int* counter, int batch, int context, int kv_dim);

// ---- fused decode projections (cuda/decode_fused.cu) ------------------------------------
// Matrix-vector products for decode (batch <= kMaxFusedBatch rows): each reads its weight
// matrix once, with the neighbouring element-wise ops done in the same pass:
//   qkv        RMSNorm prologue, then Wq|Wk|Wv in one pass (Wq alone for a layer that shares
//              a cache slot: no K/V), RoPE and the K/V store at the counter as epilogue
//   ffn_up     RMSNorm prologue, W1 and W3 side by side, SwiGLU epilogue
//   residual   out += in @ W^T: W_O and W2 with the residual add as epilogue
//   matvec     out = in @ W^T: the classifier
// A warp streams two weight rows with 4 float4 loads each in flight per lane; `split`
// warps (1, 2, 4 or 8) share one pair of rows along k when the grid would be small (0: pick
// by the grid size). The unfused path (cuda/kernels.h) is their reference.
constexpr int kMaxFusedBatch = 16;
// Inputs x (batch, dim); norm_weight (dim); wq (q_dim, dim); wk, wv (kv_dim, dim) or null for
// a sharing layer; rope_freqs (head_size / 2), the frequencies of rope_gpu. Writes q (batch,
// q_dim) after RoPE, and for a KV layer K (after RoPE) and V at position counter[0] of
// key_slot and value_slot (batch, context, kv_dim).
void decode_qkv_gpu(float* q, float* key_slot, float* value_slot, const float* x, const float* norm_weight,
                    const float* wq, const float* wk, const float* wv, const float* rope_freqs, const int* counter,
                    int batch, int dim, int n_heads, int n_kv_heads, int head_size, int context, float eps, int split = 0);
// hb (batch, hidden) = silu(xn @ w1^T) * (xn @ w3^T), xn = rmsnorm(x (batch, dim), norm_weight).
void decode_ffn_up_gpu(float* hb, const float* x, const float* norm_weight, const float* w1, const float* w3, int batch,
                       int dim, int hidden, float eps, int split = 0);
// x (batch, d) += in (batch, k) @ w (d, k)^T
void decode_residual_gpu(float* x, const float* in, const float* w, int batch, int k, int d, int split = 0);
// out (batch, d) = in (batch, k) @ w (d, k)^T
void decode_matvec_gpu(float* out, const float* in, const float* w, int batch, int k, int d, int split = 0);
// The split the launch functions pick for `units` pairs of rows of length k (for tests).
int decode_auto_split(int units, int k);

// ---- decode attention at the counter (cuda/decode_attention.cu) -------------------------
// attention_decode_gpu (cuda/kernels.h) for the query at position counter[0]: the chunks
// along the positions and the grid are fixed by the context, not by the position, so one
// captured launch serves every step; chunks past the position return at once.
// `mask` says which positions the query at p sees: 0 (false) 0..p, causal; 1 (true) 0..p-1,
// strict; kDecodeZeroRow the LCKV authors' one-token step for a layer reading an upper layer:
// a row of zeros (score 0, value 0), then 0..p-2 (reference/ops.h attention_zero_row).
constexpr int kDecodeZeroRow = 2;
size_t attention_decode_counter_workspace_floats(int batch, int context, int n_heads, int n_kv_heads, int head_size);
void attention_decode_counter_gpu(float* out, const float* q, const float* k, const float* v, const int* counter,
                                  int batch, int context, int mask, int n_heads, int n_kv_heads, int head_size,
                                  float* workspace, size_t workspace_floats);

// ---- sampling on the device (cuda/sampling.cu) ------------------------------------------
// One token per sequence from logits row b at logits + b * row_stride (vocab values), as
// src/text/sampler.h's sample_token does on the CPU, bit for bit (src/text/sampling_math.h).
// Greedy: the lowest id among the largest logits. A row with a NaN or infinite logit gets
// id -1 (on the CPU, Backend::sample refuses such logits; CudaBackend reports the -1).
void argmax_gpu(int* out, const float* logits, size_t row_stride, int batch, int vocab);
// temperature > 0; draws (batch) in [0, 1); scratch (batch, vocab) holds the weights.
void sample_gpu(int* out, const float* logits, size_t row_stride, const float* draws, int batch, int vocab,
                float temperature, float topp, uint32_t* scratch);
