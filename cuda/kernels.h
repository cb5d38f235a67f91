// The hand-written CUDA kernels behind plain C++ launch functions: no CUDA types here, so
// code built by g++ (the GPU forward, tests, benchmarks) can call them.
//
// - Every pointer is a DEVICE pointer; tokens and positions too.
// - Launches go to the thread's launch stream (cuda/launch.h; the legacy default stream
//   unless the caller set one) and return at once (no synchronization); a bad launch or
//   bad arguments throw std::runtime_error.
// - Where a kernel has several versions, `version` 1..N picks one (each stays runnable,
//   from naive to fast), and 0 picks the best for the shape. The same semantics as the
//   reference op of the same name in reference/ops.h, fp32 throughout.
#pragma once
#include "cuda/gemm_plan.h"
#include "cuda/launch.h"
#include "reference/ops.h"  // RopeStyle
#include <cstddef>

// ---- the debug switch of cuda/check.h ----
// Whether every launch is followed by a wait for the GPU, so that a kernel's fault is
// reported at its own launch: KVSHARE_CUDA_SYNC=1 in the environment (read once), or set here.
bool cuda_sync_after_launch();
void set_cuda_sync_after_launch(bool on);

// ---- GEMM: out (n, d) = x (n, k) @ w (d, k)^T, row-major (reference matmul) ----
// 1 naive, 2 shared-memory tiles, 3 register blocking (8x8 per thread),
// 4 float4 loads + double buffering, 5 matrix-vector (warp per output row, for small n),
// 6 warp-tiled 128x128 with a cp.async pipeline, 7 version 6's kernel with tiles sized to n
// and split K (small grids, skinny n). 0 follows gemm_plan (cuda/gemm_plan.h) for the shape.
// Split K keeps its partial sums in the launch stream's scratch (cuda/launch.h): a stream
// other than the legacy default one must bring its own to run a split GEMM.
int gemm_versions();
const char* gemm_version_name(int version);
void gemm(int version, float* out, const float* x, const float* w, int n, int k, int d);
// Runs one explicit plan (any tile configuration and split count): tests and benchmarks.
void gemm_run(const GemmPlan& plan, float* out, const float* x, const float* w, int n, int k, int d);

// ---- softmax: in place, row-wise over `rows` rows of n values, numerically safe ----
// 1 thread per row, 2 block per row with a shared-memory tree, 3 block per row, one-pass
// online max/sum with warp shuffles and float4 loads.
int softmax_versions();
const char* softmax_version_name(int version);
void softmax_gpu(int version, float* x, int rows, int n);

// ---- RMSNorm: out (n, dim) = x / rms(x) * weight ----
// 1 thread per row, 2 block per row with warp shuffles and float4 loads.
int rmsnorm_versions();
const char* rmsnorm_version_name(int version);
void rmsnorm_gpu(int version, float* out, const float* x, const float* weight, int n, int dim, float eps);

// ---- element-wise ops (one version each) ----
// In place on x (n, n_heads * head_size); row r sits at positions[r]. head_size <= 512, even.
void rope_gpu(float* x, const int* positions, int n, int n_heads, int head_size, float theta, RopeStyle style);
// hb (n) = silu(hb) * hb2
void swiglu_gpu(float* hb, const float* hb2, size_t n);
// x (n) += y (n)
void residual_add_gpu(float* x, const float* y, size_t n);
// out (n, dim) = token_embedding[tokens[r]]; every token must lie in [0, vocab).
void embedding_gpu(float* out, const float* token_embedding, const int* tokens, int n, int dim);

// ---- attention over one layer's source KV slot ----
// q, out: (batch, n, n_heads * head_size); query t of every sequence sits at position p0 + t.
// k, v:   the source slot's base (src/model/kv_cache.h): position s of sequence b at
//         k + ((size_t)b * context + s) * n_kv_heads * head_size; p0 + n <= context.
// Query at p sees s <= p, or s < p when strict; query head h reads kv head
// h / (n_heads / n_kv_heads); scale 1/sqrt(head_size); zeros when nothing is visible.
// head_size <= 256.
// Prefill: 1 warp per (query, head), 2 tiles of 16 queries x 32 keys with online softmax,
// 3 FlashAttention-2 style: 64 (position, head) rows of a KV group x 64- or 32-key tiles.
int attention_prefill_versions();
const char* attention_prefill_version_name(int version);
void attention_prefill_gpu(int version, float* out, const float* q, const float* k, const float* v, int batch, int n,
                           int p0, int context, bool strict, int n_heads, int n_kv_heads, int head_size);
// Decode: one query per sequence at position pos; q, out: (batch, n_heads * head_size).
// 1 warp per (sequence, head) over all positions, 2 positions split into chunks (one
// block per chunk and KV head, all heads of its group) and merged.
int attention_decode_versions();
const char* attention_decode_version_name(int version);
// Version 2 keeps each chunk's partial softmax (max, sum, head_size weighted values) in
// `workspace`, owned by the caller; this many floats cover any pos < context.
size_t attention_decode_workspace_floats(int batch, int context, int n_heads, int head_size);
// How version 2 splits a step, for the tests: keys per chunk for `visible` positions on a
// GPU with `sms` multiprocessors, given a block's shared memory limit in bytes (the opt-in
// limit); at least 32, so the chunks fit the workspace above, or 0 when even 32 keys'
// scores of `group` query heads per KV head do not fit (auto then takes version 1).
int attention_decode_chunk(int visible, int batch, int n_kv_heads, int group, int head_size, int sms, size_t smem_limit);
// Version 2's shared memory per block for that split.
size_t attention_decode_smem_bytes(int group, int head_size, int chunk);
void attention_decode_gpu(int version, float* out, const float* q, const float* k, const float* v, int batch, int pos,
                          int context, bool strict, int n_heads, int n_kv_heads, int head_size, float* workspace,
                          size_t workspace_floats);
