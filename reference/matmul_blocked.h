// The blocked CPU products: version 2 of matmul and of its two backward products.
//
// reference/ops.h's matmul (version 1) reads a whole weight row for every row of x it
// meets, and keeps one running sum in registers: two loads per multiply-add, so it runs at
// the speed of the caches, not of the FMA units. These compute the same products a register
// tile at a time (several rows of x against several weight rows: every value loaded is used
// several times), over cache-sized blocks, with OpenMP over blocks. Walkthrough chapter 1.10
// shows the two side by side; `kvshare bench gemm` times them against OpenBLAS.
//
// matmul_blocked equals matmul bit for bit: both add in the order reference/dot.h spells
// out. The backward products add in another order than version 1 (the tolerance of
// DESIGN.md section 6), and the same order on every run and thread count.
#pragma once
#include <cstddef>

// out (n, d) = x (n, k) @ w (d, k)^T, equal to matmul(out, x, w, n, k, d) to the last bit.
void matmul_blocked(float* out, const float* x, const float* w, int n, int k, int d);

// dx (n, k) += dout (n, d) @ w (d, k)        (as matmul_backward_x)
void matmul_backward_x_blocked(float* dx, const float* dout, const float* w, int n, int k, int d);
// dw (d, k) += dout (n, d)^T @ x (n, k)      (as matmul_backward_w)
void matmul_backward_w_blocked(float* dw, const float* dout, const float* x, int n, int k, int d);

// The two kernels the products are made of, on strided rows (attention's heads use them
// too). Both run in the calling thread; ld* are row strides in floats.
//
//   out[r * ldo + c] = dot(x + r * ldx, w + c * ldw, k)     for r < n, c < d (reference/dot.h)
void dot_products(float* out, size_t ldo, const float* x, size_t ldx, const float* w, size_t ldw, int n, int k, int d);
//   c[m * ldc + j] = mul_add(a[m * a_row + p * a_col], b[p * ldb + j], c[m * ldc + j])
//   for p = 0, 1, ..., depth - 1 in turn, for every m < rows, j < cols
void multiply_add(float* c, size_t ldc, const float* a, size_t a_row, size_t a_col, const float* b, size_t ldb,
                  int rows, int depth, int cols);
