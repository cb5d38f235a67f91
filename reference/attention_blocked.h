// Attention of a block of queries as two blocked products: version 2 of reference/ops.h's
// attention (the one the walkthrough teaches), for prefill, where queries meet the same keys.
#pragma once

// The same arguments and result as attention() in reference/ops.h, to the last bit: the
// scores of a block of queries against the keys they see are one dot_products call (tiles
// of 4 queries by 4 keys), the softmax is attention()'s own, and P V is one multiply_add
// call, adding the values in increasing position as attention() does.
void attention_blocked(float* out, const float* q, const float* k, const float* v, int n, int p0, bool strict,
                       int n_heads, int n_kv_heads, int head_size);

// The backward of attention() for one sequence, as blocked products: version 2 of
// attention_backward in reference/backward.h, with its arguments and its result within
// float rounding (the sums run in another order). Two passes, each over blocks that no two
// threads share:
//   1. per block of 32 queries and query head: P = softmax(q k^T * scale) as the forward
//      computes it, dP = dout v^T, dS = P (dP - sum_s P dP) * scale (dot_products, tiles of
//      4 x 4), and dq += dS k (multiply_add);
//   2. per key block of 32 positions and KV head: dk += dS^T q and dv += P^T dout over every
//      query head of the group and every query that sees the block (multiply_add).
// P and dS, (n_heads, n, p0 + n) floats each, are kept between the passes in a buffer of
// the calling thread that grows with the longest call and is reused.
void attention_backward_blocked(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, int n, int p0, bool strict, int n_heads, int n_kv_heads, int head_size);
