// The kernels at small shapes, for compute-sanitizer: `make gpu-report` runs memcheck,
// racecheck, synccheck and initcheck over the "[sanitize]" cases. Every kernel and every
// version (the loops follow *_versions(), so new versions join by themselves), each at one
// or two shapes just past a tile or a warp, and where a kernel opts into more than 48 KiB
// of shared memory. A sanitizer slows a kernel 10 to 1000 times, so the shapes are small;
// tests/test_cuda_kernels.cpp covers the shapes, with the same bounds (DESIGN.md section 6).
#ifdef KVSHARE_CUDA
#include <catch2/catch.hpp>
#include "cuda/kernel_check.h"
#include "cuda/kernels.h"
#include "reference/ops.h"
#include "tests/expect_close.h"
#include "tests/helpers.h"
#include "tests/skip_without_gpu.h"
#include <algorithm>
#include <cmath>
#include <vector>

namespace {

struct AttentionShape {
    int batch, n, p0, context, n_heads, n_kv_heads, hs;
};

// The reference attention over (batch, context, kv_dim) caches, and random K/V for it.
std::vector<float> reference_attention(const std::vector<float>& q, const std::vector<float>& k,
                                       const std::vector<float>& v, const AttentionShape& s, bool strict) {
    const size_t q_seq = (size_t)s.n * s.n_heads * s.hs, kv_seq = (size_t)s.context * s.n_kv_heads * s.hs;
    std::vector<float> out(q.size());
    for (int b = 0; b < s.batch; b++)
        attention(out.data() + b * q_seq, q.data() + b * q_seq, k.data() + b * kv_seq, v.data() + b * kv_seq, s.n, s.p0,
                  strict, s.n_heads, s.n_kv_heads, s.hs);
    return out;
}

}  // namespace

TEST_CASE("sanitize: gemm, every version, aligned and not", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    struct Shape {
        int n, k, d;
    };
    uint64_t seed = 11000;
    for (const Shape& s : {Shape{3, 70, 37}, Shape{37, 129, 67}}) {  // a decode shape, one past the tiles
        seed += 2;
        const std::vector<float> x = random_vector((size_t)s.n * s.k, seed), w = random_vector((size_t)s.d * s.k, seed + 1);
        std::vector<float> want((size_t)s.n * s.d);
        matmul(want.data(), x.data(), w.data(), s.n, s.k, s.d);
        for (int version = 0; version <= gemm_versions(); version++)
            for (int offset : {0, 1}) {
                CAPTURE(seed, s.n, s.k, s.d, version, offset);
                expect_close(check_gemm(version, x, w, s.n, s.k, s.d, offset), want, GEMM_BOUND);
            }
    }
}

TEST_CASE("sanitize: softmax, rmsnorm, rope, swiglu, residual add, embedding", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    const int rows = 3, n = 300;
    std::vector<float> x = random_vector((size_t)rows * n, 12000);
    x[n / 2] = 1e4f;  // an outlier
    std::vector<float> want = x;
    for (int r = 0; r < rows; r++) softmax(want.data() + (size_t)r * n, n);
    for (int version = 0; version <= softmax_versions(); version++) {
        CAPTURE(version);
        expect_close(check_softmax(version, x, rows, n), want, ELEMENTWISE_BOUND);
    }
    const std::vector<float> w = random_vector(n, 12001);
    rmsnorm(want.data(), x.data(), w.data(), rows, n, 1e-5f);
    for (int version = 0; version <= rmsnorm_versions(); version++) {
        CAPTURE(version);
        expect_close(check_rmsnorm(version, x, w, rows, n, 1e-5f), want, ELEMENTWISE_BOUND);
    }
    const int tokens = 5, heads = 3, hs = 24;
    const std::vector<float> q = random_vector((size_t)tokens * heads * hs, 12002);
    const std::vector<int> positions = {0, 1, 7, 300, 4095};
    for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::HalfSplit}) {
        std::vector<float> rotated = q;
        rope(rotated.data(), positions.data(), tokens, heads, hs, 10000.0f, style);
        expect_close(check_rope(q, positions, tokens, heads, hs, 10000.0f, style), rotated, ELEMENTWISE_BOUND);
    }
    for (int offset : {0, 1}) {
        const std::vector<float> a = random_vector(1003, 12003, -10.0f, 10.0f), b = random_vector(1003, 12004);
        std::vector<float> out = a;
        swiglu(out.data(), b.data(), a.size());
        expect_close(check_swiglu(a, b, offset), out, ELEMENTWISE_BOUND);
        out = a;
        residual_add(out.data(), b.data(), a.size());
        expect_close(check_residual_add(a, b, offset), out, ELEMENTWISE_BOUND);
    }
    const int vocab = 50, dim = 70;
    const std::vector<float> table = random_vector((size_t)vocab * dim, 12005);
    const std::vector<int> ids = {49, 0, 7, 7, 23};
    std::vector<float> rows_out(ids.size() * dim);
    embedding(rows_out.data(), table.data(), ids.data(), (int)ids.size(), dim);
    expect_close(check_embedding(table, ids, dim), rows_out, ELEMENTWISE_BOUND);
}

TEST_CASE("sanitize: attention prefill and decode, every version, both masks", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    // the second shape of each needs more than 48 KiB of shared memory (the opt-in path)
    const AttentionShape prefill[] = {{2, 20, 3, 32, 4, 2, 24}, {1, 17, 0, 20, 2, 1, 256}};
    const AttentionShape decode[] = {{2, 1, 70, 80, 8, 2, 64}, {1, 1, 100, 128, 40, 1, 256}};
    uint64_t seed = 13000;
    for (bool strict : {false, true}) {
        for (const AttentionShape& s : prefill) {
            seed += 3;
            const std::vector<float> q = random_vector((size_t)s.batch * s.n * s.n_heads * s.hs, seed);
            const std::vector<float> k = random_vector((size_t)s.batch * s.context * s.n_kv_heads * s.hs, seed + 1);
            const std::vector<float> v = random_vector(k.size(), seed + 2);
            const std::vector<float> want = reference_attention(q, k, v, s, strict);
            for (int version = 0; version <= attention_prefill_versions(); version++) {
                CAPTURE(seed, s.hs, strict, version);
                expect_close(check_attention_prefill(version, q, k, v, s.batch, s.n, s.p0, s.context, strict, s.n_heads,
                                                     s.n_kv_heads, s.hs),
                             want, ATTENTION_BOUND);
            }
        }
        for (const AttentionShape& s : decode) {  // n = 1 query per sequence at p0
            seed += 3;
            const std::vector<float> q = random_vector((size_t)s.batch * s.n_heads * s.hs, seed);
            const std::vector<float> k = random_vector((size_t)s.batch * s.context * s.n_kv_heads * s.hs, seed + 1);
            const std::vector<float> v = random_vector(k.size(), seed + 2);
            const std::vector<float> want = reference_attention(q, k, v, s, strict);
            for (int version = 0; version <= attention_decode_versions(); version++) {
                CAPTURE(seed, s.n_heads, s.hs, strict, version);
                expect_close(check_attention_decode(version, q, k, v, s.batch, s.p0, s.context, strict, s.n_heads,
                                                    s.n_kv_heads, s.hs),
                             want, ATTENTION_BOUND);
            }
        }
    }
}

#endif  // KVSHARE_CUDA
