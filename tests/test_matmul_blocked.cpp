// The blocked products (reference/matmul_blocked.h, reference/attention_blocked.h) against
// version 1 (reference/ops.h, reference/backward.h): the forward and attention to the last
// bit, the backward within DESIGN.md section 6's GEMM bound, at sizes that are not multiples
// of the tiles (4 x 4 dot tiles over 8 lanes, 6 x 16 and 6 x 8 multiply-add tiles, blocks of 64 rows,
// 256 depth and 32 queries), with one thread and two. Outputs start as NaN (forward) or hold guard values around them (strided, backward),
// so a value never written, or written outside the output, shows.
#include <catch2/catch.hpp>
#include "reference/attention_blocked.h"
#include "reference/backward.h"
#include "reference/dot.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "tests/expect_close.h"
#include "tests/helpers.h"
#include <cmath>
#include <cstring>
#include <limits>
#include <omp.h>
#include <vector>

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// Runs f with OpenMP limited to `threads`, then puts the old limit back.
template <class F>
void with_threads(int threads, F f) {
    const int old = omp_get_max_threads();
    omp_set_num_threads(threads);
    f();
    omp_set_num_threads(old);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// out (n, d) = x @ w^T in double, to check that the two float versions are not both wrong.
std::vector<float> matmul_double(const std::vector<float>& x, const std::vector<float>& w, int n, int k, int d) {
    std::vector<float> out((size_t)n * d);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < d; c++) {
            double s = 0;
            for (int i = 0; i < k; i++) s += (double)x[(size_t)r * k + i] * w[(size_t)c * k + i];
            out[(size_t)r * d + c] = (float)s;
        }
    return out;
}

}  // namespace

TEST_CASE("dot adds 8 lanes in its written order, whatever the length", "[blocked]") {
    // the lanes by hand: lane j holds the products at i = j, j + 8, ...; then the tree
    for (int n : {1, 3, 8, 17, 100}) {
        const std::vector<float> a = random_vector(n, 7 + n), b = random_vector(n, 8 + n);
        float lane[8] = {};
        for (int i = 0; i < n; i++) lane[i % 8] = mul_add(a[i], b[i], lane[i % 8]);
        const float want = ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
        INFO("n " << n);
        CHECK(dot(a.data(), b.data(), n) == want);
    }
    const float one = 1.0f;
    CHECK(dot(&one, &one, 0) == 0.0f);
}

TEST_CASE("matmul_blocked equals matmul to the last bit, at every edge of its tiles", "[blocked]") {
    const uint64_t seed = 2201;
    INFO("seed " << seed);
    for (int n : {1, 3, 17, 100})
        for (int k : {1, 3, 17, 100, 577})
            for (int d : {1, 3, 17, 100, 577}) {
                INFO("n " << n << ", k " << k << ", d " << d);
                const std::vector<float> x = random_vector((size_t)n * k, seed + n), w = random_vector((size_t)d * k, seed + k + d);
                std::vector<float> naive((size_t)n * d, kNaN);
                matmul(naive.data(), x.data(), w.data(), n, k, d);
                expect_close(naive, matmul_double(x, w, n, k, d), GEMM_BOUND);
                for (int threads : {1, 2}) {
                    INFO(threads << " threads");
                    std::vector<float> blocked((size_t)n * d, kNaN);
                    with_threads(threads, [&] { matmul_blocked(blocked.data(), x.data(), w.data(), n, k, d); });
                    CHECK(same_bits(blocked, naive));
                }
            }
}

TEST_CASE("matmul_blocked keeps dot's signed zeros where k is not a multiple of 8", "[blocked]") {
    // 1e-30 * -1e-30 rounds to -0, so every lane dot() fills holds -0 and the sum is -0; the
    // tile's last step pads its copies with products that must leave a -0 lane as it is
    for (int k : {8, 9, 12, 15, 17}) {
        INFO("k " << k);
        const int n = 4, d = 4;
        const std::vector<float> x((size_t)n * k, 1e-30f), w((size_t)d * k, -1e-30f);
        std::vector<float> naive((size_t)n * d, kNaN), blocked((size_t)n * d, kNaN);
        matmul(naive.data(), x.data(), w.data(), n, k, d);
        matmul_blocked(blocked.data(), x.data(), w.data(), n, k, d);
        for (size_t i = 0; i < naive.size(); i++) {
            CHECK(naive[i] == 0.0f);
            CHECK(std::signbit(blocked[i]) == std::signbit(naive[i]));
        }
        if (k >= 16) CHECK(std::signbit(naive[0]));  // every lane has a product: -0
    }
}

TEST_CASE("matmul_blocked at model shapes: 64-row blocks and L2-sized weight blocks", "[blocked]") {
    // more rows than one block (64) and more weight rows than fit the L2 budget at this k
    const int n = 130, k = 1000, d = 301;
    const std::vector<float> x = random_vector((size_t)n * k, 31), w = random_vector((size_t)d * k, 32);
    std::vector<float> naive((size_t)n * d, kNaN), blocked((size_t)n * d, kNaN);
    matmul(naive.data(), x.data(), w.data(), n, k, d);
    with_threads(2, [&] { matmul_blocked(blocked.data(), x.data(), w.data(), n, k, d); });
    CHECK(same_bits(blocked, naive));
}

TEST_CASE("dot_products and multiply_add read and write only their strided rows", "[blocked]") {
    // a (rows, depth) inside rows of stride 23, b (depth, cols) inside rows of stride 41, c
    // (rows, cols) inside rows of stride 37: the gaps hold a guard value that must survive
    const int rows = 9, depth = 19, cols = 35;
    const size_t lda = 23, ldb = 41, ldc = 37;
    const float guard = -12345.0f;
    const std::vector<float> a = random_vector(rows * lda, 51), b = random_vector(depth * ldb, 52);

    SECTION("dot_products: out[r][c] = dot(x_r, w_c) over strided rows") {
        // x = a's rows (depth values each), w = b's first `depth` rows read as (cols <= depth)
        const int k = 17, n = rows, d = 13;
        std::vector<float> out(n * ldc, guard);
        dot_products(out.data(), ldc, a.data(), lda, b.data(), ldb, n, k, d);
        for (int r = 0; r < n; r++)
            for (size_t c = 0; c < ldc; c++) {
                INFO("r " << r << ", c " << c);
                if ((int)c < d) CHECK(out[r * ldc + c] == dot(a.data() + r * lda, b.data() + c * ldb, k));
                else CHECK(out[r * ldc + c] == guard);
            }
    }
    SECTION("multiply_add: c += a @ b, in increasing depth, over strided rows and a transposed a") {
        std::vector<float> c(rows * ldc, guard), start = random_vector(rows * ldc, 53);
        for (int m = 0; m < rows; m++)
            for (int j = 0; j < cols; j++) c[m * ldc + j] = start[m * ldc + j];
        std::vector<float> want = c;
        for (int m = 0; m < rows; m++)
            for (int p = 0; p < depth; p++)
                for (int j = 0; j < cols; j++)
                    want[m * ldc + j] = mul_add(a[m * lda + p], b[p * ldb + j], want[m * ldc + j]);
        multiply_add(c.data(), ldc, a.data(), lda, 1, b.data(), ldb, rows, depth, cols);
        CHECK(same_bits(c, want));

        // a read down its columns: a(m, p) = a[p * lda + m]
        std::vector<float> ct(rows * ldc, guard), want_t(rows * ldc, guard);
        for (int m = 0; m < rows; m++)
            for (int j = 0; j < cols; j++) ct[m * ldc + j] = want_t[m * ldc + j] = start[m * ldc + j];
        for (int m = 0; m < rows; m++)
            for (int p = 0; p < depth; p++)
                for (int j = 0; j < cols; j++)
                    want_t[m * ldc + j] = mul_add(a[p * lda + m], b[p * ldb + j], want_t[m * ldc + j]);
        multiply_add(ct.data(), ldc, a.data(), 1, lda, b.data(), ldb, rows, depth, cols);
        CHECK(same_bits(ct, want_t));
    }
}

TEST_CASE("the blocked backward products equal version 1 within the GEMM bound", "[blocked]") {
    // They accumulate: every output starts from its own random value, so a value left
    // unwritten keeps it and differs from version 1's sum. A guard tail after each output
    // must stay as it is.
    const uint64_t seed = 2202;
    INFO("seed " << seed);
    const float guard = 777.0f;
    const int G = 19;  // guard floats after each output
    for (int n : {1, 3, 17, 100, 300})
        for (int k : {1, 3, 17, 29, 100, 577})  // 29 = 16 + 8 + 5 columns: the wide, half and edge tiles
            for (int d : {1, 3, 17, 100, 577}) {
                if ((double)n * k * d > 6e6) continue;  // version 1 is slow; 300 rows cross the depth block of 256 anyway
                INFO("n " << n << ", k " << k << ", d " << d);
                const std::vector<float> x = random_vector((size_t)n * k, seed + n), w = random_vector((size_t)d * k, seed + d);
                const std::vector<float> dout = random_vector((size_t)n * d, seed + k);
                std::vector<float> dx0 = random_vector((size_t)n * k + G, seed + 1), dw0 = random_vector((size_t)d * k + G, seed + 2);
                for (int i = 0; i < G; i++) dx0[(size_t)n * k + i] = dw0[(size_t)d * k + i] = guard;
                std::vector<float> dx_naive = dx0, dw_naive = dw0;
                matmul_backward_x(dx_naive.data(), dout.data(), w.data(), n, k, d);
                matmul_backward_w(dw_naive.data(), dout.data(), x.data(), n, k, d);
                for (int threads : {1, 2}) {
                    INFO(threads << " threads");
                    std::vector<float> dx = dx0, dw = dw0;
                    with_threads(threads, [&] {
                        matmul_backward_x_blocked(dx.data(), dout.data(), w.data(), n, k, d);
                        matmul_backward_w_blocked(dw.data(), dout.data(), x.data(), n, k, d);
                    });
                    expect_close(dx, dx_naive, GEMM_BOUND);
                    expect_close(dw, dw_naive, GEMM_BOUND);
                    for (int i = 0; i < G; i++) {
                        CHECK(dx[(size_t)n * k + i] == guard);
                        CHECK(dw[(size_t)d * k + i] == guard);
                    }
                }
            }
}

TEST_CASE("the blocked backward products give the same bits on one thread and two", "[blocked]") {
    const int n = 150, k = 300, d = 70;
    const std::vector<float> x = random_vector((size_t)n * k, 61), w = random_vector((size_t)d * k, 62);
    const std::vector<float> dout = random_vector((size_t)n * d, 63);
    std::vector<float> dx[2], dw[2];
    for (int t = 0; t < 2; t++) {
        dx[t].assign((size_t)n * k, 0.5f);
        dw[t].assign((size_t)d * k, -0.5f);
        with_threads(t + 1, [&] {
            matmul_backward_x_blocked(dx[t].data(), dout.data(), w.data(), n, k, d);
            matmul_backward_w_blocked(dw[t].data(), dout.data(), x.data(), n, k, d);
        });
    }
    CHECK(same_bits(dx[0], dx[1]));
    CHECK(same_bits(dw[0], dw[1]));
}

// The attention cases both blocked-attention tests run: head shapes with and without groups
// (head size 6 leaves a tail after the 8-lane dot and the 16-wide tiles), 1 to 70 queries
// (blocks are 32), two offsets, causal and strict masks; q, k and v random from the seed.
struct AttentionCase {
    int n_heads, n_kv_heads, head_size, n, p0;
    bool strict;
    int q_dim, kv_dim;
    std::vector<float> q, k, v;
};

template <class Check>
static void for_each_attention_case(uint64_t seed, const Check& check) {
    struct Heads { int n_heads, n_kv_heads, head_size; };
    for (Heads hd : {Heads{4, 2, 6}, Heads{3, 3, 16}, Heads{9, 3, 24}})
        for (int n : {1, 3, 33, 70})
            for (int p0 : {0, 5})
                for (bool strict : {false, true}) {
                    INFO("heads " << hd.n_heads << "/" << hd.n_kv_heads << " x " << hd.head_size << ", n " << n << ", p0 " << p0
                                  << (strict ? ", strict" : ", causal"));
                    const int q_dim = hd.n_heads * hd.head_size, kv_dim = hd.n_kv_heads * hd.head_size, len = p0 + n;
                    check(AttentionCase{hd.n_heads, hd.n_kv_heads, hd.head_size, n, p0, strict, q_dim, kv_dim,
                                        random_vector((size_t)n * q_dim, seed + n, -2, 2),
                                        random_vector((size_t)len * kv_dim, seed + p0 + 1, -2, 2),
                                        random_vector((size_t)len * kv_dim, seed + p0 + 2)});
                }
}

TEST_CASE("attention_blocked equals attention to the last bit: blocks, masks, groups, offsets", "[blocked]") {
    // query blocks are 32 queries: 1, 33 and 70 queries leave partial blocks; head size 6
    // leaves a tail after the 8-lane dot and the 16-wide multiply-add tiles
    const uint64_t seed = 2203;
    INFO("seed " << seed);
    for_each_attention_case(seed, [&](const AttentionCase& c) {
        const int n = c.n, p0 = c.p0, q_dim = c.q_dim;
        const bool strict = c.strict;
        const std::vector<float>& q = c.q;
        const std::vector<float>& k = c.k;
        const std::vector<float>& v = c.v;
        std::vector<float> want((size_t)n * q_dim, kNaN);
        attention(want.data(), q.data(), k.data(), v.data(), n, p0, strict, c.n_heads, c.n_kv_heads, c.head_size);
        for (float x : want) REQUIRE(std::isfinite(x));
        for (int threads : {1, 2}) {
            INFO(threads << " threads");
            std::vector<float> got((size_t)n * q_dim, kNaN);
            with_threads(threads, [&] {
                attention_blocked(got.data(), q.data(), k.data(), v.data(), n, p0, strict, c.n_heads, c.n_kv_heads,
                                  c.head_size);
            });
            CHECK(same_bits(got, want));
        }
    });
}

TEST_CASE("attention_backward_blocked equals attention_backward within float rounding", "[blocked]") {
    // dq, dk and dv accumulate: each starts from its own random values and has a guard tail.
    // The kept P and dS are first filled with NaN by a call on NaN inputs, so a stale value
    // read where a query sees nothing would show. Query and key blocks are 32: 33 and 70
    // queries leave partial blocks, p0 shifts the key blocks against the query blocks.
    const uint64_t seed = 2204;
    INFO("seed " << seed);
    const float guard = 777.0f;
    const int G = 11;
    for_each_attention_case(seed, [&](const AttentionCase& c) {
        const int n = c.n, p0 = c.p0, q_dim = c.q_dim, kv_dim = c.kv_dim, len = p0 + n;
        const bool strict = c.strict;
        const std::vector<float>& q = c.q;
        const std::vector<float>& k = c.k;
        const std::vector<float>& v = c.v;
        const std::vector<float> dout = random_vector((size_t)n * q_dim, seed + p0 + 3);
        auto start = [&](size_t size, uint64_t s) {
            std::vector<float> x = random_vector(size + G, s);
            for (int i = 0; i < G; i++) x[size + i] = guard;
            return x;
        };
        const std::vector<float> dq0 = start(q.size(), seed + 4), dk0 = start(k.size(), seed + 5),
                                 dv0 = start(v.size(), seed + 6);
        std::vector<float> dq_naive = dq0, dk_naive = dk0, dv_naive = dv0;
        attention_backward(dq_naive.data(), dk_naive.data(), dv_naive.data(), dout.data(), q.data(), k.data(),
                           v.data(), n, p0, strict, c.n_heads, c.n_kv_heads, c.head_size);
        std::vector<float> got[2][3];
        for (int threads : {1, 2}) {
            INFO(threads << " threads");
            with_threads(threads, [&] {
                // poison the kept P and dS: a NaN query fills every row it computes
                const std::vector<float> nan_q((size_t)70 * q_dim, kNaN), nan_kv((size_t)75 * kv_dim, kNaN);
                std::vector<float> sink_q(nan_q.size()), sink_kv(nan_kv.size());
                attention_backward_blocked(sink_q.data(), sink_kv.data(), sink_kv.data(), nan_q.data(), nan_q.data(),
                                           nan_kv.data(), nan_kv.data(), 70, 5, false, c.n_heads, c.n_kv_heads,
                                           c.head_size);
                std::vector<float>* out = got[threads - 1];
                out[0] = dq0, out[1] = dk0, out[2] = dv0;
                attention_backward_blocked(out[0].data(), out[1].data(), out[2].data(), dout.data(), q.data(), k.data(),
                                           v.data(), n, p0, strict, c.n_heads, c.n_kv_heads, c.head_size);
            });
            const std::vector<float>* out = got[threads - 1];
            expect_close(out[0], dq_naive, ATTENTION_BOUND);
            expect_close(out[1], dk_naive, ATTENTION_BOUND);
            expect_close(out[2], dv_naive, ATTENTION_BOUND);
            for (int i = 0; i < G; i++) {
                CHECK(out[0][q.size() + i] == guard);
                CHECK(out[1][k.size() + i] == guard);
                CHECK(out[2][v.size() + i] == guard);
            }
            if (strict)  // the last position is seen by no query: its dk and dv stay as they were
                for (int i = 0; i < kv_dim; i++) {
                    CHECK(out[1][(size_t)(len - 1) * kv_dim + i] == dk0[(size_t)(len - 1) * kv_dim + i]);
                    CHECK(out[2][(size_t)(len - 1) * kv_dim + i] == dv0[(size_t)(len - 1) * kv_dim + i]);
                }
        }
        for (int i = 0; i < 3; i++) CHECK(same_bits(got[0][i], got[1][i]));  // one thread and two
    });
}
