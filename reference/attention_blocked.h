// Attention of a block of queries as two blocked products: version 2 of reference/ops.h's
// attention (the one the walkthrough teaches), for prefill, where queries meet the same keys.
#pragma once

// The same arguments and result as attention() in reference/ops.h, to the last bit: the
// scores of a block of queries against the keys they see are one dot_products call (tiles
// of 4 queries by 4 keys), the softmax is attention()'s own, and P V is one multiply_add
// call, adding the values in increasing position as attention() does.
void attention_blocked(float* out, const float* q, const float* k, const float* v, int n, int p0, bool strict,
                       int n_heads, int n_kv_heads, int head_size);
