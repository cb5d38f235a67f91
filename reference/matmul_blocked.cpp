// GCC's tuning for AMD Zen (what -march=native picks on this project's machines) folds
// each load of a weight vector into the FMAs that use it, so dot_tile below reloads it for
// every row of x: 20 loads per 16 FMAs, and the kernel runs at the speed of the load ports,
// about half of what it does with the loads in registers (measured: 47 against 94 GFLOP/s
// on one core). Generic tuning keeps them in registers; it changes nothing else here.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC target("tune=generic")
#endif
#include "reference/matmul_blocked.h"
#include "reference/dot.h"
#include "reference/parallel.h"
#include <algorithm>
#include <cstring>
#include <omp.h>

// ---------------------------------------------------------------------------------------
// The forward kernel: a tile of dot products.
//
// Version 1 computes out[r][c] = dot(x_r, w_c) one at a time: each step loads one vector
// of x_r and one of w_c for one FMA. Here R rows of x meet C weight rows at once: each step
// loads R + C vectors and does R * C FMAs into R * C accumulators of 8 lanes each, which
// stay in registers for the whole of k (4 x 4: 16 of the 32 vector registers, 8 loads per
// 16 FMAs). Each accumulator is exactly dot()'s 8 lanes, added in dot()'s order, so every
// output equals version 1's to the last bit, whatever the tile or block it falls in.

constexpr int kTileRows = 4;  // rows of x per tile
constexpr int kTileCols = 4;  // weight rows per tile

// out[c] = lane_total(lane[c]) for c < 4, the same additions of the same values, made four
// at a time. Added one accumulator at a time, the 8 lanes leave the vector registers one
// by one, and at k = 128 (the demo shape's products) that took as long as the loop over k.
// GCC's vector extensions spell the shuffles out; other compilers add one at a time.
static inline void lane_totals_of_four(float* out, const float (&lane)[4][kDotLanes]) {
#if defined(__GNUC__)
    typedef float Lanes __attribute__((vector_size(32)));
    typedef int Picks __attribute__((vector_size(32)));
    Lanes l[4];
    std::memcpy(l, lane, sizeof l);
    // half[j] = lane[j] + lane[j + 4]:    h01 = (half of 0, half of 1), h23 likewise
    const Picks lo = {0, 1, 2, 3, 8, 9, 10, 11}, hi = {4, 5, 6, 7, 12, 13, 14, 15};
    const Lanes h01 = __builtin_shuffle(l[0], l[1], lo) + __builtin_shuffle(l[0], l[1], hi);
    const Lanes h23 = __builtin_shuffle(l[2], l[3], lo) + __builtin_shuffle(l[2], l[3], hi);
    // quarter[j] = half[j] + half[j + 2]: q = (q0[0], q0[1], q2[0], q2[1], q1[0], q1[1], q3[0], q3[1])
    const Picks q_lo = {0, 1, 8, 9, 4, 5, 12, 13}, q_hi = {2, 3, 10, 11, 6, 7, 14, 15};
    const Lanes q = __builtin_shuffle(h01, h23, q_lo) + __builtin_shuffle(h01, h23, q_hi);
    // total = quarter[0] + quarter[1], for accumulators 0, 1, 2, 3 in the first four lanes
    const Picks t_lo = {0, 4, 2, 6, 0, 4, 2, 6}, t_hi = {1, 5, 3, 7, 1, 5, 3, 7};
    const Lanes t = __builtin_shuffle(q, t_lo) + __builtin_shuffle(q, t_hi);
    for (int c = 0; c < 4; c++) out[c] = t[c];
#else
    for (int c = 0; c < 4; c++) out[c] = lane_total(lane[c]);
#endif
}

// One step of a tile: lane[r][c][j] += x[r * ldx + j] * w[c * ldw + j], j < 8.
template <int R, int C>
static inline void dot_tile_step(float (&lane)[R][C][kDotLanes], const float* x, size_t ldx, const float* w, size_t ldw) {
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int c = 0; c < C; c++)
#pragma omp simd
            for (int j = 0; j < kDotLanes; j++) lane[r][c][j] = mul_add(x[r * ldx + j], w[c * ldw + j], lane[r][c][j]);
}

// out (R, C), row stride ldo = x (R rows, stride ldx) . w (C rows, stride ldw), over k
template <int R, int C>
static void dot_tile(float* out, size_t ldo, const float* x, size_t ldx, const float* w, size_t ldw, int k) {
    float lane[R][C][kDotLanes];
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++)
            for (int j = 0; j < kDotLanes; j++) lane[r][c][j] = 0.0f;
    int i = 0;
    for (; i + kDotLanes <= k; i += kDotLanes) dot_tile_step<R, C>(lane, x + i, ldx, w + i, ldw);
    if (i < k) {
        // The last k % 8, as dot() adds them: one more step over copies padded with +0 in x
        // and -0 in w, whose product -0 leaves every lane as it is (c + -0 = c, even for c = +0
        // or -0), so the lanes past the end keep their sums, as in dot().
        float xt[R][kDotLanes], wt[C][kDotLanes];
        for (int r = 0; r < R; r++)
            for (int j = 0; j < kDotLanes; j++) xt[r][j] = i + j < k ? x[r * ldx + i + j] : 0.0f;
        for (int c = 0; c < C; c++)
            for (int j = 0; j < kDotLanes; j++) wt[c][j] = i + j < k ? w[c * ldw + i + j] : -0.0f;
        dot_tile_step<R, C>(lane, xt[0], kDotLanes, wt[0], kDotLanes);
    }
    for (int r = 0; r < R; r++) {
        if constexpr (C == 4) {
            lane_totals_of_four(out + r * ldo, lane[r]);
            continue;
        }
        for (int c = 0; c < C; c++) out[r * ldo + c] = lane_total(lane[r][c]);
    }
}

// One compiled tile per shape up to kTileRows x kTileCols, for the edges of a product.
using DotTile = void (*)(float*, size_t, const float*, size_t, const float*, size_t, int);
template <int R>
static constexpr DotTile dot_tiles_of_rows[kTileCols] = {dot_tile<R, 1>, dot_tile<R, 2>, dot_tile<R, 3>, dot_tile<R, 4>};
static constexpr const DotTile* dot_tiles[kTileRows] = {dot_tiles_of_rows<1>, dot_tiles_of_rows<2>,
                                                        dot_tiles_of_rows<3>, dot_tiles_of_rows<4>};

void dot_products(float* out, size_t ldo, const float* x, size_t ldx, const float* w, size_t ldw, int n, int k, int d) {
    if (n < kTileRows) {
        // A few rows of x (decode) leave the product bound by memory, not by FMAs: then one
        // weight row at a time against all of them, so the weights stream from memory in
        // order. Four rows at once are four short streams of k floats each, which the
        // hardware prefetcher follows worse: half the speed at one row of the SmolLM2 shape.
        if (n == 1)
            for (int c = 0; c < d; c++) out[c] = dot(x, w + c * ldw, k);
        else
            for (int c = 0; c < d; c++) dot_tiles[n - 1][0](out + c, ldo, x, ldx, w + c * ldw, ldw, k);
        return;
    }
    for (int r = 0; r < n; r += kTileRows) {
        const int R = std::min(kTileRows, n - r);
        for (int c = 0; c < d; c += kTileCols) {
            const int C = std::min(kTileCols, d - c);
            dot_tiles[R - 1][C - 1](out + r * ldo + c, ldo, x + r * ldx, ldx, w + c * ldw, ldw, k);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The backward kernel: a tile of multiply-adds, c (R, 16) += a (R, depth) @ b (depth, 16).
//
// The backward products contract over the weight's rows (dx = dout @ w) or over the rows of
// x (dw = dout^T @ x), so the 16 outputs of a tile lie along a row of b: each step loads 16
// values of one row of b (two vectors), broadcasts R values of a, and does 2R FMAs into
// accumulators that stay in registers for the whole depth block (6 x 16: 12 registers).

constexpr int kAxpyRows = 6;
constexpr int kAxpyCols = 16;

template <int R, int W = kAxpyCols>
static void axpy_tile(float* c, size_t ldc, const float* a, size_t a_row, size_t a_col, const float* b, size_t ldb,
                      int depth) {
    float acc[R][W];
    for (int m = 0; m < R; m++)
#pragma omp simd
        for (int j = 0; j < W; j++) acc[m][j] = c[m * ldc + j];
    for (int p = 0; p < depth; p++) {
        const float* bp = b + p * ldb;
#pragma GCC unroll 6
        for (int m = 0; m < R; m++) {
            const float am = a[m * a_row + p * a_col];
#pragma omp simd
            for (int j = 0; j < W; j++) acc[m][j] = mul_add(am, bp[j], acc[m][j]);
        }
    }
    for (int m = 0; m < R; m++)
#pragma omp simd
        for (int j = 0; j < W; j++) c[m * ldc + j] = acc[m][j];
}

// The same for a tile at an edge: fewer rows or columns, plain loops.
static void axpy_edge(float* c, size_t ldc, const float* a, size_t a_row, size_t a_col, const float* b, size_t ldb,
                      int rows, int depth, int cols) {
    for (int m = 0; m < rows; m++)
        for (int p = 0; p < depth; p++) {
            const float am = a[m * a_row + p * a_col];
            for (int j = 0; j < cols; j++) c[m * ldc + j] = mul_add(am, b[p * ldb + j], c[m * ldc + j]);
        }
}

using AxpyTile = void (*)(float*, size_t, const float*, size_t, size_t, const float*, size_t, int);
static constexpr AxpyTile axpy_tiles[kAxpyRows] = {axpy_tile<1>, axpy_tile<2>, axpy_tile<3>,
                                                   axpy_tile<4>, axpy_tile<5>, axpy_tile<6>};
// half as wide, for an edge of 8 to 15 columns (the demo's hidden size, 344, is 21 x 16 + 8)
static constexpr AxpyTile axpy_tiles_8[kAxpyRows] = {axpy_tile<1, 8>, axpy_tile<2, 8>, axpy_tile<3, 8>,
                                                     axpy_tile<4, 8>, axpy_tile<5, 8>, axpy_tile<6, 8>};

void multiply_add(float* c, size_t ldc, const float* a, size_t a_row, size_t a_col, const float* b, size_t ldb,
                  int rows, int depth, int cols) {
    for (int m = 0; m < rows; m += kAxpyRows) {
        const int R = std::min(kAxpyRows, rows - m);
        int j = 0;
        for (; j + kAxpyCols <= cols; j += kAxpyCols)
            axpy_tiles[R - 1](c + m * ldc + j, ldc, a + m * a_row, a_row, a_col, b + j, ldb, depth);
        if (j + kAxpyCols / 2 <= cols) {
            axpy_tiles_8[R - 1](c + m * ldc + j, ldc, a + m * a_row, a_row, a_col, b + j, ldb, depth);
            j += kAxpyCols / 2;
        }
        if (j < cols) axpy_edge(c + m * ldc + j, ldc, a + m * a_row, a_row, a_col, b + j, ldb, R, depth, cols - j);
    }
}

// ---------------------------------------------------------------------------------------
// Blocks and threads.
//
// A block is a rectangle of the output that one thread computes alone: no two threads
// write one value, and each value is added in the same order whoever computes it. A
// forward block takes up to 64 rows of x against as many weight rows as fit in half of a
// 1 MiB L2 cache, so the weights are read from memory once per 64 rows of x, and each tile's
// 4 rows of x stay in L1 while they meet every weight row of the block. The blocks are split
// finer when there are too few of them for the threads.

constexpr size_t kL2Bytes = 512 * 1024;  // what a block may keep in L2
constexpr int kBlockRows = 64;

// Splits `count` into `parts` blocks of a multiple of `unit` (the last may be smaller).
static int block_size(int count, int parts, int unit) {
    const int size = (count + parts - 1) / parts;
    return std::max(unit, (size + unit - 1) / unit * unit);
}

// Runs block(rb, cb) for every block of a product, on `threads` threads; each block writes
// its own outputs. With one thread, not even a team of one: small products are many, and
// each parallel region costs.
template <class Block>
static void for_each_block(int row_blocks, int col_blocks, int threads, const Block& block) {
    if (threads == 1) {
        for (int rb = 0; rb < row_blocks; rb++)
            for (int cb = 0; cb < col_blocks; cb++) block(rb, cb);
        return;
    }
#pragma omp parallel for collapse(2) schedule(dynamic) num_threads(threads)
    for (int rb = 0; rb < row_blocks; rb++)
        for (int cb = 0; cb < col_blocks; cb++) block(rb, cb);
}

void matmul_blocked(float* out, const float* x, const float* w, int n, int k, int d) {
    const double work = (double)n * k * d;
    const int threads = worth_threads(work) ? omp_get_max_threads() : 1;
    const int row_size = std::min(n, kBlockRows);
    const int row_blocks = (n + row_size - 1) / row_size;
    // weight rows per block: as many as fit in L2, but at least 4 blocks per thread in all
    const int fit = std::max(kTileCols, (int)(kL2Bytes / ((size_t)k * sizeof(float))) / kTileCols * kTileCols);
    const int parts = std::max((d + fit - 1) / fit, (4 * threads + row_blocks - 1) / row_blocks);
    const int col_size = std::min(fit, block_size(d, parts, kTileCols));
    const int col_blocks = (d + col_size - 1) / col_size;

    auto block = [&](int rb, int cb) {
        const int r = rb * row_size, c = cb * col_size;
        dot_products(out + (size_t)r * d + c, d, x + (size_t)r * k, k, w + (size_t)c * k, k, std::min(row_size, n - r), k,
                     std::min(col_size, d - c));
    };
    for_each_block(row_blocks, col_blocks, threads, block);
}

// c (rows, cols) += a (rows, depth) @ b (depth, cols) over blocks: depth in steps of 256
// (a block's b, 256 x 256, stays in L2), and threads over rectangles of c.
constexpr int kDepthBlock = 256;
constexpr int kColBlock = 256;
constexpr int kRowBlock = 8 * kAxpyRows;

// Copies a (rows, depth), a(m, p) = a[m * a_row + p * a_col], into tiles of kAxpyRows rows:
// tile t holds a(6t + r, p) at panel[6t * depth + p * 6 + r], so the 6 values a step of
// axpy_tile broadcasts lie side by side. Read in place, a step of dw's product (a = dout^T)
// takes its 6 values from a row of dout a whole row (the vocabulary, for the classifier)
// away from the last step's: a cache line and a page per step, and 23 GFLOP/s at SmolLM2's
// classifier instead of 80.
static void pack_tiles(float* panel, const float* a, size_t a_row, size_t a_col, int rows, int depth) {
    for (int m0 = 0; m0 < rows; m0 += kAxpyRows) {
        const int R = std::min(kAxpyRows, rows - m0);
        float* tile = panel + (size_t)m0 * depth;
        for (int p = 0; p < depth; p++)
            for (int r = 0; r < R; r++) tile[p * kAxpyRows + r] = a[(m0 + r) * a_row + p * a_col];
    }
}

static void multiply_add_blocked(float* c, size_t ldc, const float* a, size_t a_row, size_t a_col, const float* b,
                                 size_t ldb, int rows, int depth, int cols) {
    const double work = (double)rows * depth * cols;
    const int threads = worth_threads(work) ? omp_get_max_threads() : 1;
    const int row_blocks = (rows + kRowBlock - 1) / kRowBlock, col_blocks = (cols + kColBlock - 1) / kColBlock;
    auto block = [&](int rb, int cb) {
        thread_local float panel[kRowBlock * kDepthBlock];  // this block's a, packed (48 KB)
        const int m = rb * kRowBlock, j = cb * kColBlock;
        const int R = std::min(kRowBlock, rows - m), C = std::min(kColBlock, cols - j);
        for (int p = 0; p < depth; p += kDepthBlock) {  // in increasing p, as multiply_add promises
            const int D = std::min(kDepthBlock, depth - p);
            // a's rows are read in place when they run along p (dx), else packed (dw)
            const bool packed = a_col != 1;
            if (packed) pack_tiles(panel, a + m * a_row + p * a_col, a_row, a_col, R, D);
            // a strip of 16 columns of b (D x 16) stays in L1 while every tile of rows meets it
            for (int s = 0; s < C; s += kAxpyCols)
                for (int t = 0; t < R; t += kAxpyRows) {
                    const float* at = packed ? panel + (size_t)t * D : a + (m + t) * a_row + p * a_col;
                    multiply_add(c + (m + t) * ldc + j + s, ldc, at, packed ? 1 : a_row, packed ? kAxpyRows : a_col,
                                 b + p * ldb + j + s, ldb, std::min(kAxpyRows, R - t), D, std::min(kAxpyCols, C - s));
                }
        }
    };
    for_each_block(row_blocks, col_blocks, threads, block);
}

void matmul_backward_x_blocked(float* dx, const float* dout, const float* w, int n, int k, int d) {
    // dx[r][j] += sum_i dout[r][i] w[i][j]: a = dout (n, d), b = w (d, k)
    multiply_add_blocked(dx, k, dout, d, 1, w, k, n, d, k);
}

void matmul_backward_w_blocked(float* dw, const float* dout, const float* x, int n, int k, int d) {
    // dw[i][j] += sum_r dout[r][i] x[r][j]: a = dout^T (d, n), b = x (n, k)
    multiply_add_blocked(dw, k, dout, 1, d, x, k, d, n, k);
}
