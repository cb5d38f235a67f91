// The decode-step kernels of cuda/decode_kernels.h against the reference ops (DESIGN.md
// section 6 bounds: 1e-4 for the fused projections, which are GEMMs with their neighbours,
// and for attention; the unfused kernels are checked against the same reference in
// test_cuda_kernels.cpp), the GPU sampler against the CPU sampler token for token, the
// strided copy, and stream capture / graph replay through the runtime (on the emulator,
// tests/cuda_on_cpu, as on a GPU). Without a GPU every case prints SKIPPED and passes.
#ifdef KVSHARE_CUDA
#include <catch2/catch.hpp>
#include "cuda/decode_check.h"
#include "cuda/decode_kernels.h"
#include "reference/ops.h"
#include "src/model/backend.h"
#include "src/text/sampler.h"
#include "tests/expect_close.h"
#include "tests/helpers.h"
#include "tests/skip_without_gpu.h"
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace {

const float NaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> normed(const std::vector<float>& x, const std::vector<float>& g, int rows, int dim) {
    std::vector<float> out(x.size());
    rmsnorm(out.data(), x.data(), g.data(), rows, dim, 1e-5f);
    return out;
}

std::vector<float> product(const std::vector<float>& x, const std::vector<float>& w, int rows, int k, int d) {
    std::vector<float> out((size_t)rows * d);
    matmul(out.data(), x.data(), w.data(), rows, k, d);
    return out;
}

}  // namespace

TEST_CASE("runtime: a captured stream replays as a graph; a capture refuses synchronous work", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    const GraphCheck g = check_graph_capture();
    CHECK(g.counter_after_capture == 0);  // captured work does not run
    CHECK(g.nodes == 3);
    CHECK(g.counter_after_replays == 6);
    CHECK(g.copied);  // a captured copy from pinned memory reads it at every replay
    CHECK(g.sync_copy_refused);
    CHECK(g.invalidated);
    CHECK(g.legacy_refused);
}

TEST_CASE("cuda fused qkv: RMSNorm, Wq|Wk|Wv, RoPE and the K/V store at the counter", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    struct Shape {
        int batch, dim, n_heads, n_kv_heads, hs, context, pos, split;
        bool owns;
    };
    // dim 70: not a multiple of 4 (the scalar path); split 0 = auto; batches across NB sizes
    const Shape shapes[] = {{1, 72, 4, 2, 18, 9, 0, 0, true},   {3, 72, 4, 2, 18, 9, 8, 2, true},
                            {3, 70, 5, 1, 14, 6, 3, 0, true},    {16, 64, 2, 2, 32, 5, 4, 8, true},
                            {5, 96, 6, 3, 16, 40, 37, 4, false}, {2, 300, 2, 1, 150, 3, 1, 1, true}};
    uint64_t seed = 11000;
    for (const Shape& s : shapes) {
        seed += 7;
        CAPTURE(seed, s.batch, s.dim, s.n_heads, s.n_kv_heads, s.hs, s.context, s.pos, s.split, s.owns);
        const int q_dim = s.n_heads * s.hs, kv_dim = s.n_kv_heads * s.hs;
        const std::vector<float> x = random_vector((size_t)s.batch * s.dim, seed), g = random_vector(s.dim, seed + 1);
        const std::vector<float> wq = random_vector((size_t)q_dim * s.dim, seed + 2);
        const std::vector<float> wk = s.owns ? random_vector((size_t)kv_dim * s.dim, seed + 3) : std::vector<float>();
        const std::vector<float> wv = s.owns ? random_vector((size_t)kv_dim * s.dim, seed + 4) : std::vector<float>();
        const std::vector<float> cache = random_vector((size_t)s.batch * s.context * kv_dim, seed + 5);
        const QkvOut got = check_decode_qkv(x, g, wq, wk, wv, cache, s.batch, s.dim, s.n_heads, s.n_kv_heads, s.hs,
                                            s.context, s.pos, 10000.0f, 1e-5f, s.split);
        // the reference: rmsnorm, matmul, rope at pos
        const std::vector<float> xn = normed(x, g, s.batch, s.dim);
        const std::vector<int> pos(s.batch, s.pos);
        std::vector<float> q = product(xn, wq, s.batch, s.dim, q_dim);
        rope(q.data(), pos.data(), s.batch, s.n_heads, s.hs, 10000.0f, RopeStyle::Adjacent);
        expect_close(got.q, q, GEMM_BOUND);
        std::vector<float> want_k = cache, want_v = cache;
        if (s.owns) {
            std::vector<float> k = product(xn, wk, s.batch, s.dim, kv_dim), v = product(xn, wv, s.batch, s.dim, kv_dim);
            rope(k.data(), pos.data(), s.batch, s.n_kv_heads, s.hs, 10000.0f, RopeStyle::Adjacent);
            for (int b = 0; b < s.batch; b++)
                for (int i = 0; i < kv_dim; i++) {
                    want_k[((size_t)b * s.context + s.pos) * kv_dim + i] = k[(size_t)b * kv_dim + i];
                    want_v[((size_t)b * s.context + s.pos) * kv_dim + i] = v[(size_t)b * kv_dim + i];
                }
        }
        // the new row at pos within the bound, and every other position exactly as it was
        expect_close(got.key_cache, want_k, GEMM_BOUND);
        expect_close(got.value_cache, want_v, GEMM_BOUND);
        for (int b = 0; b < s.batch; b++)
            for (int p = 0; p < s.context; p++)
                if (p != s.pos || !s.owns)
                    for (int i = 0; i < kv_dim; i++) {
                        const size_t at = ((size_t)b * s.context + p) * kv_dim + i;
                        if (got.key_cache[at] != cache[at] || got.value_cache[at] != cache[at]) {
                            FAIL_CHECK("cache changed at sequence " << b << ", position " << p);
                            b = s.batch, p = s.context;
                            break;
                        }
                    }
    }
}

TEST_CASE("cuda fused ffn up, residual projections and matvec", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    struct Shape {
        int batch, k, d, split;
    };
    const Shape shapes[] = {{1, 72, 98, 0}, {3, 98, 72, 0}, {2, 98, 73, 2}, {16, 64, 33, 8}, {9, 300, 5, 4}, {1, 1000, 7, 0}};
    uint64_t seed = 12000;
    for (const Shape& s : shapes) {
        seed += 9;
        CAPTURE(seed, s.batch, s.k, s.d, s.split);
        const std::vector<float> x = random_vector((size_t)s.batch * s.k, seed), g = random_vector(s.k, seed + 1);
        const std::vector<float> w1 = random_vector((size_t)s.d * s.k, seed + 2), w3 = random_vector((size_t)s.d * s.k, seed + 3);
        // ffn up: silu(norm(x) W1^T) * (norm(x) W3^T), hidden = d
        const std::vector<float> xn = normed(x, g, s.batch, s.k);
        std::vector<float> hb = product(xn, w1, s.batch, s.k, s.d);
        const std::vector<float> hb2 = product(xn, w3, s.batch, s.k, s.d);
        swiglu(hb.data(), hb2.data(), hb.size());
        expect_close(check_decode_ffn_up(x, g, w1, w3, s.batch, s.k, s.d, 1e-5f, s.split), hb, GEMM_BOUND);
        // residual: r + x W^T
        const std::vector<float> r = random_vector((size_t)s.batch * s.d, seed + 4);
        std::vector<float> want = r;
        const std::vector<float> xw = product(x, w1, s.batch, s.k, s.d);
        residual_add(want.data(), xw.data(), want.size());
        expect_close(check_decode_residual(r, x, w1, s.batch, s.k, s.d, s.split), want, GEMM_BOUND);
        expect_close(check_decode_matvec(x, w1, s.batch, s.k, s.d, s.split), xw, GEMM_BOUND);
    }
}

TEST_CASE("cuda fused kernels reject a batch above the limit and a bad split", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    const std::vector<float> x(17 * 8, 0.5f), w(4 * 8, 0.5f);
    CHECK_THROWS_WITH(check_decode_matvec(x, w, 17, 8, 4, 0), Catch::Contains("batch"));
    CHECK_THROWS_WITH(check_decode_matvec(std::vector<float>(8, 0.5f), w, 1, 8, 4, 3), Catch::Contains("split"));
}

TEST_CASE("cuda decode attention at the counter: chunks past the position are skipped", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    struct Shape {
        int batch, pos, context, n_heads, n_kv_heads, hs;
    };
    // contexts of several chunks (32 keys at least), positions at the start, middle and end;
    // the shape of the heap overflow chunks below 32 keys once caused in the other split kernel
    // (40 query heads of 256 on one KV head, position 2999 of 3000: 40 KB of queries, so the
    // chunk shrinks to 32 keys), and one whose 32-key chunks need 72 KB, over the 48 KB a block
    // gets without opting in (64 query heads of 256); positions 1 and 33 for the zero row's edges
    const Shape shapes[] = {{1, 0, 4, 4, 2, 16},      {3, 5, 9, 4, 2, 18},         {2, 100, 300, 8, 2, 64},
                            {1, 299, 300, 4, 1, 128}, {2, 40, 1000, 6, 3, 48},     {1, 70, 90, 5, 5, 256},
                            {1, 2999, 3000, 40, 1, 256}, {1, 100, 128, 64, 1, 256}, {2, 1, 40, 4, 2, 32},
                            {1, 33, 40, 4, 2, 32}};
    uint64_t seed = 13000;
    for (const Shape& s : shapes)
        for (int mask : {0, 1, kDecodeZeroRow}) {  // causal, strict, the authors' zero row
            seed += 3;
            CAPTURE(seed, s.batch, s.pos, s.context, s.n_heads, s.n_kv_heads, s.hs, mask);
            const int q_dim = s.n_heads * s.hs, kv_dim = s.n_kv_heads * s.hs;
            const std::vector<float> q = random_vector((size_t)s.batch * q_dim, seed);
            std::vector<float> k = random_vector((size_t)s.batch * s.context * kv_dim, seed + 1);
            std::vector<float> v = random_vector((size_t)s.batch * s.context * kv_dim, seed + 2);
            const int readable = mask == kDecodeZeroRow ? std::max(s.pos - 1, 0) : s.pos + (mask ? 0 : 1);
            for (int b = 0; b < s.batch; b++)  // NaN where no query may look
                for (int p = readable; p < s.context; p++)
                    for (int i = 0; i < kv_dim; i++) {
                        k[((size_t)b * s.context + p) * kv_dim + i] = NaN;
                        v[((size_t)b * s.context + p) * kv_dim + i] = NaN;
                    }
            std::vector<float> want(q.size());
            for (int b = 0; b < s.batch; b++) {
                float* out = want.data() + (size_t)b * q_dim;
                const float* qb = q.data() + (size_t)b * q_dim;
                const float *kb = k.data() + (size_t)b * s.context * kv_dim, *vb = v.data() + (size_t)b * s.context * kv_dim;
                if (mask == kDecodeZeroRow) attention_zero_row(out, qb, kb, vb, s.pos, s.n_heads, s.n_kv_heads, s.hs);
                else attention(out, qb, kb, vb, 1, s.pos, mask == 1, s.n_heads, s.n_kv_heads, s.hs);
            }
            const std::vector<float> got =
                check_attention_decode_counter(q, k, v, s.batch, s.pos, s.context, mask, s.n_heads, s.n_kv_heads, s.hs);
            expect_close(got, want, ATTENTION_BOUND);
            if ((mask == 1 && s.pos == 0) || (mask == kDecodeZeroRow && s.pos <= 1))
                for (float o : got) CHECK(o == 0.0f);
        }
}

TEST_CASE("cuda decode kernels at the counter: a counter at the context writes nothing and reads nothing past it", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    // The host refuses a step past the context, but a host and device that disagree (the
    // counter one ahead) must not write the next sequence's first row or read past the slot.
    const int batch = 2, context = 5, kv_dim = 12;
    const std::vector<float> slot = random_vector((size_t)batch * context * kv_dim, 16000);
    const std::vector<float> rows = random_vector((size_t)batch * kv_dim, 16001);
    CHECK(check_store_kv_at_counter(slot, rows, batch, context, kv_dim, context) == slot);
    std::vector<float> want = slot;  // the last position is still written
    for (int b = 0; b < batch; b++)
        for (int i = 0; i < kv_dim; i++) want[((size_t)b * context + context - 1) * kv_dim + i] = rows[(size_t)b * kv_dim + i];
    CHECK(check_store_kv_at_counter(slot, rows, batch, context, kv_dim, context - 1) == want);

    // the fused qkv: Q as always, no K/V row anywhere
    const int dim = 24, n_heads = 2, n_kv_heads = 1, hs = 12;
    const std::vector<float> x = random_vector((size_t)batch * dim, 16002), g = random_vector(dim, 16003);
    const std::vector<float> wq = random_vector((size_t)n_heads * hs * dim, 16004);
    const std::vector<float> wk = random_vector((size_t)kv_dim * dim, 16005), wv = random_vector((size_t)kv_dim * dim, 16006);
    const QkvOut got = check_decode_qkv(x, g, wq, wk, wv, slot, batch, dim, n_heads, n_kv_heads, hs, context, context,
                                        10000.0f, 1e-5f, 0);
    CHECK(got.key_cache == slot);
    CHECK(got.value_cache == slot);
    std::vector<float> q = product(normed(x, g, batch, dim), wq, batch, dim, n_heads * hs);
    const std::vector<int> pos(batch, context);
    rope(q.data(), pos.data(), batch, n_heads, hs, 10000.0f, RopeStyle::Adjacent);
    expect_close(got.q, q, GEMM_BOUND);

    // attention sees the whole slot and nothing past it (NaN guards lie beyond the last sequence)
    const std::vector<float> qa = random_vector((size_t)n_heads * hs, 16007);
    const std::vector<float> k = random_vector((size_t)context * kv_dim, 16008), v = random_vector(k.size(), 16009);
    std::vector<float> all(qa.size());
    attention(all.data(), qa.data(), k.data(), v.data(), 1, context, true, n_heads, n_kv_heads, hs);  // s < context
    for (bool strict : {false, true}) {
        INFO("strict " << strict);
        expect_close(check_attention_decode_counter(qa, k, v, 1, context, context, strict, n_heads, n_kv_heads, hs), all,
                     ATTENTION_BOUND);
    }
}

TEST_CASE("cuda sampling picks the CPU sampler's token: greedy, temperature and top-p, ties", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    // Logits with ties (equal values, so equal weights; the top-p order breaks them by id),
    // a flat vocabulary, one token far ahead, and plain random rows; row stride above vocab.
    struct Case {
        int vocab;
        float temperature, topp;
    };
    const Case cases[] = {{1, 1.0f, 0.9f},    {97, 0.0f, 1.0f},   {97, 1.0f, 1.0f},  {97, 0.8f, 0.9f},
                          {500, 1.3f, 0.5f},  {500, 0.7f, 0.99f}, {5000, 0.0f, 1.0f}, {5000, 1.0f, 0.2f},
                          {32000, 1.0f, 0.9f}};
    uint64_t seed = 14000;
    for (const Case& c : cases) {
        seed += 5;
        const int batch = 4, stride = c.vocab + 3;
        std::vector<float> logits = random_vector((size_t)batch * stride, seed, -3.0f, 3.0f);
        float* row1 = logits.data() + stride;
        for (int i = 0; i < c.vocab; i++) row1[i] = std::round(row1[i]);  // few distinct values: many ties
        float* row2 = logits.data() + 2 * stride;
        for (int i = 0; i < c.vocab; i++) row2[i] = 0.25f;  // flat
        logits[3 * stride + c.vocab / 2] = 40.0f;           // one certain token
        SamplingSettings set{c.temperature, c.topp};
        std::vector<uint32_t> weights;
        std::vector<int> order;
        Rng rng(seed);
        const int rounds = c.vocab >= 5000 ? 2 : 12;
        for (int round = 0; round < rounds; round++) {
            std::vector<float> draws(batch);
            for (float& d : draws) d = rng.uniform();
            if (round == 0) draws[0] = 0.0f;  // the ends of [0, 1)
            if (round == 1) draws[1] = 1.0f - 1.0f / 16777216.0f;
            const std::vector<int> got = check_sample(logits, stride, batch, c.vocab, c.temperature, c.topp, draws);
            for (int b = 0; b < batch; b++) {
                const int want = sample_token(logits.data() + (size_t)b * stride, c.vocab, set, draws[b], weights, order);
                INFO("vocab " << c.vocab << ", T " << c.temperature << ", top-p " << c.topp << ", row " << b << ", draw "
                              << draws[b] << ", seed " << seed);
                CHECK(got[b] == want);
            }
        }
    }
}

TEST_CASE("cuda sampling marks a row with a NaN or infinite logit -1, and only that row", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    // On the CPU, Backend::sample refuses such logits; on the device the row's id is -1 for
    // the host to refuse. Greedy, temperature alone, and temperature with top-p; rows: clean,
    // one NaN, one +Inf (which a plain argmax would pick), one -Inf, every logit NaN.
    const float inf = std::numeric_limits<float>::infinity();
    const int vocab = 300, batch = 5, stride = vocab + 1;
    for (const SamplingSettings set : {SamplingSettings{0.0f, 1.0f}, SamplingSettings{1.0f, 1.0f}, SamplingSettings{0.8f, 0.9f}}) {
        std::vector<float> logits = random_vector((size_t)batch * stride, 15000, -3.0f, 3.0f);
        logits[1 * stride + 17] = NaN;
        logits[2 * stride + 250] = inf;
        logits[3 * stride + 0] = -inf;
        for (int i = 0; i < vocab; i++) logits[4 * stride + i] = NaN;
        const std::vector<float> draws = {0.3f, 0.5f, 0.7f, 0.1f, 0.9f};
        const std::vector<int> got = check_sample(logits, stride, batch, vocab, set.temperature, set.topp, draws);
        std::vector<uint32_t> weights;
        std::vector<int> order;
        INFO("T " << set.temperature << ", top-p " << set.topp);
        CHECK(got[0] == sample_token(logits.data(), vocab, set, draws[0], weights, order));
        CHECK(got[0] >= 0);
        for (int b = 1; b < batch; b++) {
            INFO("row " << b);
            CHECK(got[b] == -1);
        }
    }
}

TEST_CASE("cuda strided copy: rows between pitched arrays", "[cuda][kernel]") {
    SKIP_WITHOUT_GPU();
    const KVLayout kv{2, 3, 7, 5};
    const std::vector<float> src = random_vector(3 * 4 * 5, 15000);
    const std::vector<float> dst = random_vector(kv.floats(), 15001);
    const StridedRows r = kv_store_rows(kv, 1, 4, 3);  // positions 3..6 of slot 1
    const std::vector<float> got = check_strided_copy(dst, src, r);
    std::vector<float> want = dst;
    for (size_t e = 0; e < r.count(); e++) want[r.dst(e)] = src[r.src(e)];
    CHECK(got == want);
}

#endif  // KVSHARE_CUDA
