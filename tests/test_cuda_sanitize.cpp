// The kernels at small shapes, for compute-sanitizer: `make gpu-report` runs memcheck,
// racecheck, synccheck and initcheck over the "[sanitize]" cases. Every kernel and every
// version (the loops follow *_versions(), so new versions join by themselves), each at one
// or two shapes just past a tile or a warp, and where a kernel opts into more than 48 KiB
// of shared memory; and every kernel a decode step of the forward launches, which a test
// (on the emulator, which records the names of the kernels it runs) holds them to. A
// sanitizer slows a kernel 10 to 1000 times, so the shapes are small; tests/test_cuda_kernels.cpp
// and tests/test_cuda_decode.cpp cover the shapes, with the same bounds (DESIGN.md section 6).
#ifdef KVSHARE_CUDA
#include <catch2/catch.hpp>
#include "cuda/decode_check.h"
#include "cuda/decode_kernels.h"
#include "cuda/forward.h"
#include "cuda/kernel_check.h"
#include "cuda/kernels.h"
#include "src/text/sampler.h"
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

static void sanitize_gemm() {
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

static void sanitize_elementwise() {
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
    const int vocab = 50;
    for (int dim : {70, 72}) {  // the scalar and the float4 path
        const std::vector<float> table = random_vector((size_t)vocab * dim, 12005);
        const std::vector<int> ids = {49, 0, 7, 7, 23};
        std::vector<float> rows_out(ids.size() * dim);
        embedding(rows_out.data(), table.data(), ids.data(), (int)ids.size(), dim);
        expect_close(check_embedding(table, ids, dim), rows_out, ELEMENTWISE_BOUND);
    }
}

static void sanitize_attention() {
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

static void sanitize_decode_step() {
    // What a default decode step launches besides the kernels above (cuda/decode_kernels.h),
    // at shapes past a warp: the fused projections (a KV layer and one that shares, float4 and
    // scalar rows, each split), the counter's attention (the second shape opts into 72 KB of
    // shared memory), greedy and top-p sampling, the strided copies and fill, the K/V store at
    // the counter, the position kernels, and a captured graph's replay.
    uint64_t seed = 14000;
    const int batch = 3, dim = 72, n_heads = 4, n_kv_heads = 2, hs = 18, context = 9, pos = 5;
    const int q_dim = n_heads * hs, kv_dim = n_kv_heads * hs;
    const std::vector<float> x = random_vector((size_t)batch * dim, seed++), g = random_vector(dim, seed++);
    const std::vector<float> wq = random_vector((size_t)q_dim * dim, seed++);
    const std::vector<float> wk = random_vector((size_t)kv_dim * dim, seed++), wv = random_vector(wk.size(), seed++);
    const std::vector<float> cache = random_vector((size_t)batch * context * kv_dim, seed++);
    std::vector<float> xn(x.size()), q((size_t)batch * q_dim);
    rmsnorm(xn.data(), x.data(), g.data(), batch, dim, 1e-5f);
    matmul(q.data(), xn.data(), wq.data(), batch, dim, q_dim);
    const std::vector<int> positions(batch, pos);
    rope(q.data(), positions.data(), batch, n_heads, hs, 10000.0f, RopeStyle::Adjacent);
    for (int split : {0, 2}) {
        CAPTURE(split);
        const QkvOut owns = check_decode_qkv(x, g, wq, wk, wv, cache, batch, dim, n_heads, n_kv_heads, hs, context, pos,
                                             10000.0f, 1e-5f, split);
        expect_close(owns.q, q, GEMM_BOUND);
        const QkvOut shares = check_decode_qkv(x, g, wq, {}, {}, cache, batch, dim, n_heads, n_kv_heads, hs, context, pos,
                                               10000.0f, 1e-5f, split);
        expect_close(shares.q, q, GEMM_BOUND);
        CHECK(shares.key_cache == cache);
    }
    for (int k : {72, 70}) {  // float4 rows, and the scalar path
        const int d = 37;
        CAPTURE(k);
        const std::vector<float> in = random_vector((size_t)batch * k, seed++), gk = random_vector(k, seed++);
        const std::vector<float> w1 = random_vector((size_t)d * k, seed++), w3 = random_vector(w1.size(), seed++);
        const std::vector<float> r = random_vector((size_t)batch * d, seed++);
        std::vector<float> inn(in.size()), h1((size_t)batch * d), h3(h1.size()), xw(h1.size());
        rmsnorm(inn.data(), in.data(), gk.data(), batch, k, 1e-5f);
        matmul(h1.data(), inn.data(), w1.data(), batch, k, d);
        matmul(h3.data(), inn.data(), w3.data(), batch, k, d);
        swiglu(h1.data(), h3.data(), h1.size());
        matmul(xw.data(), in.data(), w1.data(), batch, k, d);
        std::vector<float> res = r;
        residual_add(res.data(), xw.data(), res.size());
        expect_close(check_decode_ffn_up(in, gk, w1, w3, batch, k, d, 1e-5f, 2), h1, GEMM_BOUND);
        expect_close(check_decode_residual(r, in, w1, batch, k, d, 2), res, GEMM_BOUND);
        expect_close(check_decode_matvec(in, w1, batch, k, d, 0), xw, GEMM_BOUND);
    }
    const AttentionShape counter_shapes[] = {{2, 1, 70, 80, 8, 2, 64}, {1, 1, 100, 128, 64, 1, 256}};
    for (const AttentionShape& s : counter_shapes)
        for (bool strict : {false, true}) {
            CAPTURE(s.n_heads, s.hs, strict);
            const std::vector<float> qs = random_vector((size_t)s.batch * s.n_heads * s.hs, seed++);
            const std::vector<float> k = random_vector((size_t)s.batch * s.context * s.n_kv_heads * s.hs, seed++);
            const std::vector<float> v = random_vector(k.size(), seed++);
            expect_close(check_attention_decode_counter(qs, k, v, s.batch, s.p0, s.context, strict, s.n_heads, s.n_kv_heads,
                                                        s.hs),
                         reference_attention(qs, k, v, s, strict), ATTENTION_BOUND);
        }
    const int vocab = 300, stride = vocab + 1;
    const std::vector<float> logits = random_vector((size_t)batch * stride, seed++, -3.0f, 3.0f);
    const std::vector<float> draws = {0.1f, 0.5f, 0.9f};
    std::vector<uint32_t> weights;
    std::vector<int> order;
    for (const SamplingSettings set : {SamplingSettings{0.0f, 1.0f}, SamplingSettings{0.8f, 0.9f}}) {
        const std::vector<int> got = check_sample(logits, stride, batch, vocab, set.temperature, set.topp, draws);
        for (int b = 0; b < batch; b++)
            CHECK(got[b] == sample_token(logits.data() + (size_t)b * stride, vocab, set, draws[b], weights, order));
    }
    const KVLayout kv{2, batch, context, kv_dim};
    const std::vector<float> slots = random_vector(kv.floats(), seed++), rows = random_vector((size_t)batch * 4 * kv_dim, seed++);
    const StridedRows r = kv_store_rows(kv, 1, 4, 3);
    std::vector<float> copied = slots, filled = slots;
    for (size_t e = 0; e < r.count(); e++) {
        copied[r.dst(e)] = rows[r.src(e)];
        filled[r.dst(e)] = 0.0f;
    }
    CHECK(check_strided_copy(slots, rows, r) == copied);
    CHECK(check_strided_fill(slots, 0.0f, r) == filled);
    const std::vector<float> one_row(rows.begin(), rows.begin() + (size_t)batch * kv_dim);
    std::vector<float> stored = cache;
    for (int b = 0; b < batch; b++)
        std::copy(one_row.begin() + (size_t)b * kv_dim, one_row.begin() + (size_t)(b + 1) * kv_dim,
                  stored.begin() + ((size_t)b * context + pos) * kv_dim);
    CHECK(check_store_kv_at_counter(cache, one_row, batch, context, kv_dim, pos) == stored);
    const PositionsCheck p = check_positions(41, 37, batch, 7, 5);
    CHECK(p.counter == 42);
    CHECK(p.from_counter == std::vector<int>(37, 42));
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < 7; t++) CHECK(p.prefill[(size_t)b * 7 + t] == 5 + t);
    const GraphCheck graph = check_graph_capture();
    CHECK(graph.counter_after_replays == 6);
    CHECK(graph.copied);
}

TEST_CASE("sanitize: gemm, every version, aligned and not", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    sanitize_gemm();
}

TEST_CASE("sanitize: softmax, rmsnorm, rope, swiglu, residual add, embedding", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    sanitize_elementwise();
}

TEST_CASE("sanitize: attention prefill and decode, every version, both masks", "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    sanitize_attention();
}

TEST_CASE("sanitize: the decode step's own kernels: fused projections, attention at the counter, sampling, copies, "
          "positions, a graph",
          "[cuda][sanitize]") {
    SKIP_WITHOUT_GPU();
    sanitize_decode_step();
}

TEST_CASE("sanitize: the [sanitize] cases launch every kernel a default decode step launches", "[cuda]") {
    SKIP_WITHOUT_GPU();
    // So that compute-sanitizer sees what the forward runs: the kernels of decode steps of the
    // default forward (fused, graphs; greedy and top-p sampling on the device, and tokens from
    // the host), each name (as at its launch: the float4 and scalar variants are two) against
    // what the [sanitize] cases launch. The emulator records the names.
    if (device_kernels_finished() < 0) {
        WARN("SKIPPED (the emulator only): the names of the kernels run are recorded there");
        return;
    }
    Config c;
    c.dim = 72;
    c.hidden_dim = 98;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.vocab_size = 97;
    c.max_seq_len = 16;
    const Model m = init_model(c, parse_plan("cla:2", c.n_layers), 7);  // a KV layer and one that shares
    CudaBackend gpu(m, 3, 16);
    const std::vector<int> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    gpu.prefill(prompt.data(), 4, PrefillOptions{});
    std::vector<int> out(3);
    gpu.sample(SamplingSettings{}, nullptr, out.data());
    device_kernel_names_since();  // from here: decode steps only
    const std::vector<float> draws = {0.2f, 0.5f, 0.8f};
    gpu.decode_sample(SamplingSettings{}, nullptr, out.data());
    gpu.decode_sample(SamplingSettings{0.9f, 0.9f}, draws.data(), out.data());
    gpu.decode(out.data());
    gpu.logits();
    const std::vector<std::string> step = device_kernel_names_since();
    sanitize_gemm();
    sanitize_elementwise();
    sanitize_attention();
    sanitize_decode_step();
    const std::vector<std::string> covered = device_kernel_names_since();
    CHECK(step.size() >= 8);  // embedding, qkv, attention (2), W_O, W1|W3, W2, norm, ...
    for (const std::string& name : step) {
        INFO("a decode step launches " << name);
        CHECK(std::find(covered.begin(), covered.end(), name) != covered.end());
    }
}

#endif  // KVSHARE_CUDA
