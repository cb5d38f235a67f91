// RoPE pairing: Hugging Face's Llama rotates element i of each q/k head with element
// i + head_size/2 ("half split"); Meta's original code, llama2.c and kvshare rotate element 2i
// with 2i + 1 ("adjacent"), pair i by the same angle in both. An attention score is a dot
// product over a head, which does not care in what order the head's elements sit, so putting
// the rows of W_q and W_k in the other order turns one model into the other exactly:
//   adjacent row 2i     = half-split row i
//   adjacent row 2i + 1 = half-split row i + head_size/2          (within each head)
// V, W_o and everything else are untouched. kvshare converts at load and back at export, so
// every path (CPU reference, CUDA kernels) runs adjacent pairs only.
#pragma once
#include <cstddef>

// w: (n_heads * head_size, cols), rows of each head reordered in place.
void half_split_to_adjacent(float* w, int n_heads, int head_size, size_t cols);
void adjacent_to_half_split(float* w, int n_heads, int head_size, size_t cols);
