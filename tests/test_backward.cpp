// The backward of every reference op, and of the whole model, against central finite
// differences.
//
// Ops: the loss is L = sum_j R_j out_j (R random, summed in double) of the float forward
// in reference/ops.cpp. Linear ops are differenced with a large step (exact up to
// rounding), nonlinear ones with eps = 1e-3. Every gradient buffer starts from random
// values, and the test subtracts them: the backward must ADD its gradient.
//
// Whole model: the finite differences are taken of an independent double-precision
// re-implementation of the model (below, written from DESIGN.md sections 1-2), whose loss
// must equal model_loss to 1e-5 relative; in double the step eps = 1e-4 gives differences
// accurate to ~1e-7 relative, and the float analytic gradient is checked against them.
#include <catch2/catch.hpp>
#include "reference/attention_blocked.h"
#include "reference/backward.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "reference/train_model.h"
#include "tests/expect_close.h"
#include "tests/helpers.h"
#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

// d loss / d x[i] by central differences at the indices given (all when empty); x is a
// std::vector<float> or a model's Tensor.
template <class Floats>
std::vector<double> finite_diff(Floats& x, const std::function<double()>& loss, float eps,
                                const std::vector<size_t>& at = {}) {
    std::vector<size_t> idx = at;
    if (idx.empty())
        for (size_t i = 0; i < x.size(); i++) idx.push_back(i);
    std::vector<double> g;
    for (size_t i : idx) {
        const float x0 = x[i];
        const float xp = x0 + eps, xm = x0 - eps;
        x[i] = xp;
        const double lp = loss();
        x[i] = xm;
        const double lm = loss();
        x[i] = x0;
        g.push_back((lp - lm) / ((double)xp - (double)xm));
    }
    return g;
}

double weighted_sum(const std::vector<float>& out, const std::vector<float>& r) {
    double s = 0;
    for (size_t i = 0; i < out.size(); i++) s += (double)out[i] * r[i];
    return s;
}

// analytic - prior (what the backward added) against the finite differences.
// Bounds: relative L2 error, and every element within bound * max |fd|.
void check_grad(const std::string& what, const std::vector<float>& analytic, const std::vector<float>& prior,
                const std::vector<double>& fd, double bound) {
    REQUIRE(analytic.size() == fd.size());
    std::vector<float> added(analytic.size()), ref(fd.size());
    double max_ref = 0;
    for (size_t i = 0; i < fd.size(); i++) {
        added[i] = (float)((double)analytic[i] - prior[i]);
        ref[i] = (float)fd[i];
        max_ref = std::max(max_ref, std::fabs(fd[i]));
    }
    ErrorStats e = compare(added, ref);
    INFO(what << ": rel_l2 " << e.rel_l2 << ", max_abs " << e.max_abs << ", max |fd| " << max_ref);
    REQUIRE(e.finite);
    CHECK(max_ref > 1e-3);  // the gradient is not trivially zero
    CHECK(e.rel_l2 < bound);
    CHECK(e.max_abs < bound * max_ref);
}

}  // namespace

TEST_CASE("matmul backward: dx and dw accumulate dout @ w and dout^T @ x", "[backward]") {
    const int n = 5, k = 7, d = 6;
    const uint64_t seed = 101;
    INFO("seed " << seed);
    std::vector<float> x = random_vector((size_t)n * k, seed), w = random_vector((size_t)d * k, seed + 1);
    const std::vector<float> R = random_vector((size_t)n * d, seed + 2);
    auto loss = [&]() {
        std::vector<float> out((size_t)n * d);
        matmul(out.data(), x.data(), w.data(), n, k, d);
        return weighted_sum(out, R);
    };
    const std::vector<float> px = random_vector(x.size(), seed + 3), pw = random_vector(w.size(), seed + 4);
    const std::vector<double> fdx = finite_diff(x, loss, 0.5f), fdw = finite_diff(w, loss, 0.5f);
    std::vector<float> dx = px, dw = pw;
    matmul_backward_x(dx.data(), R.data(), w.data(), n, k, d);
    matmul_backward_w(dw.data(), R.data(), x.data(), n, k, d);
    check_grad("dx", dx, px, fdx, 1e-5);
    check_grad("dw", dw, pw, fdw, 1e-5);
    // version 2 (reference/matmul_blocked.h), which training uses
    dx = px;
    dw = pw;
    matmul_backward_x_blocked(dx.data(), R.data(), w.data(), n, k, d);
    matmul_backward_w_blocked(dw.data(), R.data(), x.data(), n, k, d);
    check_grad("dx blocked", dx, px, fdx, 1e-5);
    check_grad("dw blocked", dw, pw, fdw, 1e-5);
}

TEST_CASE("rmsnorm backward: dx with the scale's own derivative, and dweight", "[backward]") {
    const int n = 3, dim = 10;
    const float eps = 1e-5f;
    const uint64_t seed = 202;
    INFO("seed " << seed);
    std::vector<float> x = random_vector((size_t)n * dim, seed), w = random_vector(dim, seed + 1, 0.5f, 1.5f);
    const std::vector<float> R = random_vector((size_t)n * dim, seed + 2);
    auto loss = [&]() {
        std::vector<float> out((size_t)n * dim);
        rmsnorm(out.data(), x.data(), w.data(), n, dim, eps);
        return weighted_sum(out, R);
    };
    const std::vector<float> px = random_vector(x.size(), seed + 3), pw = random_vector(w.size(), seed + 4);
    std::vector<float> dx = px, dw = pw;
    rmsnorm_backward(dx.data(), dw.data(), R.data(), x.data(), w.data(), n, dim, eps);
    check_grad("dx", dx, px, finite_diff(x, loss, 1e-3f), 1e-3);
    check_grad("dweight", dw, pw, finite_diff(w, loss, 1e-3f), 1e-3);
}

TEST_CASE("rope backward: the inverse rotation, both pairings", "[backward]") {
    const int n = 4, heads = 3, hs = 8;
    const std::vector<int> positions = {0, 3, 7, 100};
    for (RopeStyle style : {RopeStyle::Adjacent, RopeStyle::HalfSplit}) {
        INFO((style == RopeStyle::Adjacent ? "adjacent" : "half split"));
        const uint64_t seed = 303;
        std::vector<float> x = random_vector((size_t)n * heads * hs, seed);
        const std::vector<float> R = random_vector(x.size(), seed + 1);
        auto loss = [&]() {
            std::vector<float> out = x;
            rope(out.data(), positions.data(), n, heads, hs, 10000.0f, style);
            return weighted_sum(out, R);
        };
        std::vector<float> dx = R;  // rope_backward transforms the gradient in place
        rope_backward(dx.data(), positions.data(), n, heads, hs, 10000.0f, style);
        check_grad("dx", dx, std::vector<float>(dx.size(), 0.0f), finite_diff(x, loss, 0.5f), 1e-5);
    }
}

TEST_CASE("swiglu backward: gate through silu, up through the product", "[backward]") {
    const size_t n = 40;
    const uint64_t seed = 404;
    INFO("seed " << seed);
    std::vector<float> gate = random_vector(n, seed, -4.0f, 4.0f), up = random_vector(n, seed + 1);
    const std::vector<float> R = random_vector(n, seed + 2);
    auto loss = [&]() {
        std::vector<float> out = gate;
        swiglu(out.data(), up.data(), n);
        return weighted_sum(out, R);
    };
    const std::vector<float> pg = random_vector(n, seed + 3), pu = random_vector(n, seed + 4);
    std::vector<float> dg = pg, du = pu;
    swiglu_backward(dg.data(), du.data(), R.data(), gate.data(), up.data(), n);
    check_grad("dgate", dg, pg, finite_diff(gate, loss, 1e-3f), 1e-3);
    check_grad("dup", du, pu, finite_diff(up, loss, 1e-3f), 1e-3);

    // training's pair: swiglu_keep gives swiglu's bits and keeps the denominators, from which
    // the backward gives swiglu_backward's bits and the forward's output again
    std::vector<float> want = gate, act(n, kNaN), denom(n, kNaN);
    swiglu(want.data(), up.data(), n);
    swiglu_keep(act.data(), denom.data(), gate.data(), up.data(), n);
    CHECK(std::memcmp(act.data(), want.data(), n * sizeof(float)) == 0);
    std::vector<float> dg2 = pg, du2 = pu, act2(n, kNaN);
    swiglu_backward_kept(dg2.data(), du2.data(), act2.data(), R.data(), gate.data(), up.data(), denom.data(), n);
    CHECK(std::memcmp(dg2.data(), dg.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(du2.data(), du.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(act2.data(), want.data(), n * sizeof(float)) == 0);
}

TEST_CASE("residual and embedding backward: pass-through and scatter-add", "[backward]") {
    const uint64_t seed = 505;
    INFO("seed " << seed);
    {
        const size_t n = 12;
        std::vector<float> x = random_vector(n, seed), y = random_vector(n, seed + 1);
        const std::vector<float> R = random_vector(n, seed + 2);
        auto loss = [&]() {
            std::vector<float> out = x;
            residual_add(out.data(), y.data(), n);
            return weighted_sum(out, R);
        };
        const std::vector<float> py = random_vector(n, seed + 3);
        std::vector<float> dy = py;
        residual_backward(dy.data(), R.data(), n);
        check_grad("dy", dy, py, finite_diff(y, loss, 0.5f), 1e-6);
    }
    {
        const int vocab = 6, dim = 5;
        const std::vector<int> tokens = {1, 4, 1, 0, 4, 1};  // repeats must add up
        const int n = (int)tokens.size();
        std::vector<float> table = random_vector((size_t)vocab * dim, seed + 4);
        const std::vector<float> R = random_vector((size_t)n * dim, seed + 5);
        auto loss = [&]() {
            std::vector<float> out((size_t)n * dim);
            embedding(out.data(), table.data(), tokens.data(), n, dim);
            return weighted_sum(out, R);
        };
        const std::vector<float> pt = random_vector(table.size(), seed + 6);
        std::vector<float> dt = pt;
        embedding_backward(dt.data(), R.data(), tokens.data(), n, dim);
        check_grad("dtable", dt, pt, finite_diff(table, loss, 0.5f), 1e-6);
        for (int i = 0; i < dim; i++) CHECK(dt[2 * dim + i] == pt[2 * dim + i]);  // token 2 unused: untouched
    }
}

TEST_CASE("attention backward: masks, grouped heads, offset, zero rows, K/V into the source", "[backward]") {
    struct Case { int n, p0; bool strict; int heads, kv_heads; };
    const Case cases[] = {
        {5, 0, false, 4, 2}, {5, 0, true, 4, 2}, {4, 3, false, 4, 1}, {4, 3, true, 2, 2}, {6, 0, true, 3, 1},
    };
    const int hs = 6;
    for (const Case& cs : cases) {
        const uint64_t seed = 606 + cs.n + 10 * cs.p0 + cs.strict;
        INFO("n " << cs.n << " p0 " << cs.p0 << (cs.strict ? " strict" : " causal") << " heads " << cs.heads
                  << "/" << cs.kv_heads << " seed " << seed);
        const int len = cs.p0 + cs.n, qd = cs.heads * hs, kd = cs.kv_heads * hs;
        // scores of order 1-3: far from uniform attention, so the softmax Jacobian matters
        std::vector<float> q = random_vector((size_t)cs.n * qd, seed, -1.5f, 1.5f);
        std::vector<float> k = random_vector((size_t)len * kd, seed + 1, -1.5f, 1.5f);
        std::vector<float> v = random_vector((size_t)len * kd, seed + 2);
        const std::vector<float> R = random_vector((size_t)cs.n * qd, seed + 3);
        auto loss = [&]() {
            std::vector<float> out((size_t)cs.n * qd);
            attention(out.data(), q.data(), k.data(), v.data(), cs.n, cs.p0, cs.strict, cs.heads, cs.kv_heads, hs);
            return weighted_sum(out, R);
        };
        const std::vector<float> pq = random_vector(q.size(), seed + 4), pk = random_vector(k.size(), seed + 5),
                                 pv = random_vector(v.size(), seed + 6);
        const std::vector<double> fd_q = finite_diff(q, loss, 1e-3f), fd_k = finite_diff(k, loss, 1e-3f),
                                  fd_v = finite_diff(v, loss, 0.5f);
        // version 1 (reference/backward.h) and version 2 (reference/attention_blocked.h)
        for (auto backward : {attention_backward, attention_backward_blocked}) {
            INFO((backward == attention_backward ? "attention_backward" : "attention_backward_blocked"));
            std::vector<float> dq = pq, dk = pk, dv = pv;
            backward(dq.data(), dk.data(), dv.data(), R.data(), q.data(), k.data(), v.data(), cs.n, cs.p0, cs.strict,
                     cs.heads, cs.kv_heads, hs);
            check_grad("dq", dq, pq, fd_q, 2e-3);
            check_grad("dk", dk, pk, fd_k, 2e-3);
            check_grad("dv", dv, pv, fd_v, 1e-5);  // linear in v
            if (cs.strict && cs.p0 == 0)  // query 0 sees nothing: its output is a constant zero
                for (int i = 0; i < qd; i++) CHECK(dq[i] == pq[i]);
            if (cs.strict)  // the last source position is seen by no query
                for (int i = 0; i < kd; i++) CHECK(dk[(size_t)(len - 1) * kd + i] == pk[(size_t)(len - 1) * kd + i]);

            // dk = dv = nullptr: the same dq, nothing else written
            std::vector<float> dq2 = pq;
            backward(dq2.data(), nullptr, nullptr, R.data(), q.data(), k.data(), v.data(), cs.n, cs.p0, cs.strict,
                     cs.heads, cs.kv_heads, hs);
            CHECK(compare(dq2, dq).max_abs == 0.0);
        }
    }
}

TEST_CASE("softmax cross-entropy: mean loss and its gradient, with outliers", "[backward]") {
    const int n = 4, vocab = 7;
    const uint64_t seed = 707;
    INFO("seed " << seed);
    std::vector<float> logits = random_vector((size_t)n * vocab, seed, -3.0f, 3.0f);
    logits[1 * vocab + 2] = 60.0f;  // an outlier a naive exp would overflow on
    logits[3 * vocab + 0] = -50.0f;
    const std::vector<int> targets = {3, 2, 6, 0};
    // direct check of the value: row by row -log softmax in double
    double want = 0;
    for (int r = 0; r < n; r++) {
        double mx = -1e30, s = 0;
        for (int j = 0; j < vocab; j++) mx = std::max(mx, (double)logits[r * vocab + j]);
        for (int j = 0; j < vocab; j++) s += std::exp(logits[r * vocab + j] - mx);
        want += mx + std::log(s) - logits[r * vocab + targets[r]];
    }
    CHECK(softmax_cross_entropy(logits.data(), targets.data(), n, vocab) == Approx(want / n).epsilon(1e-12));
    auto loss = [&]() { return softmax_cross_entropy(logits.data(), targets.data(), n, vocab); };
    const std::vector<float> pl = random_vector(logits.size(), seed + 1);
    std::vector<float> dl = pl;
    softmax_cross_entropy_backward(dl.data(), logits.data(), targets.data(), n, vocab);
    const std::vector<double> fd = finite_diff(logits, loss, 1e-3f);
    check_grad("dlogits", dl, pl, fd, 1e-4);

    // both at once: the same loss to the last bit, the same gradient within float rounding
    std::vector<float> dl2 = pl;
    CHECK(softmax_cross_entropy_with_grad(dl2.data(), logits.data(), targets.data(), n, vocab) ==
          softmax_cross_entropy(logits.data(), targets.data(), n, vocab));
    check_grad("dlogits, with the loss", dl2, pl, fd, 1e-4);
    expect_close(dl2, dl, ELEMENTWISE_BOUND);
    // scale weights the gradient (by a power of two: exactly), not the loss
    std::vector<float> dl1(logits.size(), 0.0f), dl3(logits.size(), 0.0f);
    softmax_cross_entropy_with_grad(dl1.data(), logits.data(), targets.data(), n, vocab);
    CHECK(softmax_cross_entropy_with_grad(dl3.data(), logits.data(), targets.data(), n, vocab, 0.25f) ==
          softmax_cross_entropy(logits.data(), targets.data(), n, vocab));
    for (size_t i = 0; i < dl3.size(); i++) CHECK(dl3[i] == 0.25f * dl1[i]);
    const std::vector<int> bad = {3, 2, 7, 0};
    CHECK_THROWS(softmax_cross_entropy(logits.data(), bad.data(), n, vocab));
    CHECK_THROWS(softmax_cross_entropy_with_grad(dl3.data(), logits.data(), bad.data(), n, vocab));
}

// ---------------------------------------------------------------------------
// the whole model

namespace {

// The model in double, from DESIGN.md: embedding; per layer x += Wo Attn(rope(Wq n1),
// source K/V), x += W2 (silu(W1 n2) * W3 n2); final norm; classifier; mean cross-entropy.
// Blocks iterate m + b times from the same input, reading zeros first, then the previous
// iteration's K/V for upper sources. `frozen` (per KV slot, K then V): with capture, it
// receives the block's K/V as they stand after m iterations; with !capture and frozen
// given, the m iterations are skipped and the block starts from those K/V instead, which
// makes the function whose gradient truncated backprop computes.
struct DoubleModel {
    const Model& m;
    int batch, n;
    std::vector<int> tokens;  // (batch, n + 1)

    using Vec = std::vector<double>;
    std::vector<Vec> ck, cv;  // (slot) K/V caches, (rows, kv_dim)

    double w(const Tensor& t, size_t i) const { return t[i]; }

    // out (rows, d) = x (rows, k) W (d, k)^T, W = t at offset
    Vec mm(const Vec& x, const Tensor& t, size_t off, int k, int d) const {
        const size_t rows = x.size() / k;
        Vec out(rows * d, 0.0);
        for (size_t r = 0; r < rows; r++)
            for (int i = 0; i < d; i++) {
                double s = 0;
                for (int j = 0; j < k; j++) s += x[r * k + j] * t[off + (size_t)i * k + j];
                out[r * d + i] = s;
            }
        return out;
    }
    Vec norm(const Vec& x, const Tensor& t, size_t off) const {
        const int D = m.config.dim;
        Vec out(x.size());
        for (size_t r = 0; r < x.size() / D; r++) {
            double ss = 0;
            for (int i = 0; i < D; i++) ss += x[r * D + i] * x[r * D + i];
            const double s = 1.0 / std::sqrt(ss / D + m.config.norm_eps);
            for (int i = 0; i < D; i++) out[r * D + i] = x[r * D + i] * s * t[off + i];
        }
        return out;
    }
    void rotate(Vec& x, int heads) const {  // adjacent pairs, angle = pos * theta^(-2i/hs)
        const int hs = m.config.head_size();
        const size_t width = (size_t)heads * hs;
        for (size_t r = 0; r < x.size() / width; r++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < hs / 2; i++) {
                    const double a = (double)(r % n) * std::pow((double)m.config.rope_theta, -2.0 * i / hs);
                    double& x0 = x[r * width + h * hs + 2 * i];
                    double& x1 = x[r * width + h * hs + 2 * i + 1];
                    const double y0 = x0 * std::cos(a) - x1 * std::sin(a), y1 = x0 * std::sin(a) + x1 * std::cos(a);
                    x0 = y0;
                    x1 = y1;
                }
    }

    void layer(Vec& x, int l) {
        const Config& c = m.config;
        const Weights& W = m.weights;
        const int D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim, hs = c.head_size();
        const int slot = m.plan.kv_slot[l];
        Vec xn = norm(x, W.rms_att, (size_t)l * D);
        Vec q = mm(xn, W.wq, (size_t)l * QD * D, D, QD);
        rotate(q, c.n_heads);
        if (m.plan.owns_kv(l)) {
            ck[slot] = mm(xn, W.wk, (size_t)slot * KD * D, D, KD);
            cv[slot] = mm(xn, W.wv, (size_t)slot * KD * D, D, KD);
            rotate(ck[slot], c.n_kv_heads);
        }
        const Vec &K = ck[slot], &V = cv[slot];
        Vec att(q.size(), 0.0);
        const int group = c.n_heads / c.n_kv_heads;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < n; t++)
                for (int h = 0; h < c.n_heads; h++) {
                    const int visible = t + (m.plan.strict(l) ? 0 : 1);
                    if (visible == 0) continue;
                    const size_t qo = ((size_t)b * n + t) * QD + (size_t)h * hs;
                    std::vector<double> sc(visible);
                    double mx = -1e300;
                    for (int s = 0; s < visible; s++) {
                        const size_t ko = ((size_t)b * n + s) * KD + (size_t)(h / group) * hs;
                        double d = 0;
                        for (int i = 0; i < hs; i++) d += q[qo + i] * K[ko + i];
                        sc[s] = d / std::sqrt((double)hs);
                        mx = std::max(mx, sc[s]);
                    }
                    double sum = 0;
                    for (double& e : sc) sum += (e = std::exp(e - mx));
                    for (int s = 0; s < visible; s++) {
                        const size_t ko = ((size_t)b * n + s) * KD + (size_t)(h / group) * hs;
                        for (int i = 0; i < hs; i++) att[qo + i] += sc[s] / sum * V[ko + i];
                    }
                }
        Vec o = mm(att, W.wo, (size_t)l * D * QD, QD, D);
        for (size_t i = 0; i < x.size(); i++) x[i] += o[i];
        Vec xn2 = norm(x, W.rms_ffn, (size_t)l * D);
        Vec g = mm(xn2, W.w1, (size_t)l * H * D, D, H), u = mm(xn2, W.w3, (size_t)l * H * D, D, H);
        for (size_t i = 0; i < g.size(); i++) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
        Vec f = mm(g, W.w2, (size_t)l * D * H, H, D);
        for (size_t i = 0; i < x.size(); i++) x[i] += f[i];
    }

    double loss(int iters_m, int iters_b, std::vector<Vec>* frozen, bool capture) {
        const Config& c = m.config;
        const Plan& plan = m.plan;
        const int D = c.dim, rows = batch * n, KD = c.kv_dim();
        ck.assign(plan.n_kv_layers(), Vec());
        cv.assign(plan.n_kv_layers(), Vec());
        Vec x((size_t)rows * D);
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < n; t++)
                for (int i = 0; i < D; i++)
                    x[((size_t)b * n + t) * D + i] = m.weights.token_embedding[(size_t)tokens[(size_t)b * (n + 1) + t] * D + i];
        int next = 0;
        for (const Block& blk : plan.blocks) {
            for (int l = next; l < blk.first; l++) layer(x, l);
            const Vec input = x;
            for (int l = blk.first; l <= blk.last; l++)
                if (plan.owns_kv(l)) {
                    ck[plan.kv_slot[l]].assign((size_t)rows * KD, 0.0);
                    cv[plan.kv_slot[l]].assign((size_t)rows * KD, 0.0);
                }
            const bool use_frozen = frozen && !capture;
            for (int it = use_frozen ? iters_m : 0; it < iters_m + iters_b; it++) {
                if (it == iters_m && frozen)
                    for (int l = blk.first; l <= blk.last; l++)
                        if (plan.owns_kv(l)) {
                            const size_t key = 2 * (size_t)plan.kv_slot[l];
                            if (capture) {
                                if (frozen->size() < key + 2) frozen->resize(key + 2);
                                (*frozen)[key] = ck[plan.kv_slot[l]];
                                (*frozen)[key + 1] = cv[plan.kv_slot[l]];
                            } else {
                                ck[plan.kv_slot[l]] = (*frozen)[key];
                                cv[plan.kv_slot[l]] = (*frozen)[key + 1];
                            }
                        }
                x = input;
                for (int l = blk.first; l <= blk.last; l++) layer(x, l);
            }
            next = blk.last + 1;
        }
        for (int l = next; l < c.n_layers; l++) layer(x, l);
        Vec hn = norm(x, m.weights.rms_final, 0);
        Vec logits = mm(hn, c.shared_classifier ? m.weights.token_embedding : m.weights.wcls, 0, D, c.vocab_size);
        double total = 0;
        for (int b = 0; b < batch; b++)
            for (int t = 0; t < n; t++) {
                const double* row = &logits[((size_t)b * n + t) * c.vocab_size];
                double mx = -1e300, s = 0;
                for (int j = 0; j < c.vocab_size; j++) mx = std::max(mx, row[j]);
                for (int j = 0; j < c.vocab_size; j++) s += std::exp(row[j] - mx);
                total += mx + std::log(s) - row[tokens[(size_t)b * (n + 1) + t + 1]];
            }
        return total / rows;
    }
};

Model tiny_model(const std::string& plan, bool tied, uint64_t seed) {
    Config c;
    c.dim = 16; c.hidden_dim = 24; c.n_layers = 4; c.n_heads = 2; c.n_kv_heads = 1;
    c.vocab_size = 11; c.max_seq_len = 16; c.shared_classifier = tied;
    Model m = init_model(c, parse_plan(plan, c.n_layers), seed);
    // larger weights than the N(0, 0.02) init, so attention is far from uniform and every
    // term of the gradient is of a size a finite difference resolves; non-unit norms
    Rng rng(seed + 1);
    Weights& w = m.weights;
    for (auto* t : {&w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3, &w.token_embedding, &w.wcls})
        for (float& x : *t) x *= 20.0f;
    for (auto* t : {&w.rms_att, &w.rms_ffn, &w.rms_final})
        for (float& x : *t) x = rng.uniform(0.6f, 1.4f);
    return m;
}

const char* tensor_name(size_t i) {
    static const char* names[] = {"token_embedding", "rms_att", "wq", "wk", "wv", "wo",
                                  "rms_ffn", "w1", "w2", "w3", "rms_final", "wcls"};
    return names[i];
}

// Gradient of the whole model against finite differences of DoubleModel on a sample of
// every tensor: per tensor, `per_part` random elements of every layer's (or KV slot's)
// part, so each layer's wq, each slot's wk/wv etc. is checked.
void check_model_grad(const std::string& plan, bool tied, TrainIterations it, uint64_t seed) {
    INFO("plan " << plan << (tied ? " tied" : " separate classifier") << " m,b = " << it.m << "," << it.b
                 << " seed " << seed);
    Model m = tiny_model(plan, tied, seed);
    const int batch = 2, n = 6;
    Rng rng(seed + 7);
    std::vector<int> tokens((size_t)batch * (n + 1));
    for (int& t : tokens) t = (int)(rng.next_u32() % m.config.vocab_size);

    Model gm = m;
    allocate_weights(gm);  // zero gradient, shaped like the weights
    const double loss = model_loss_and_grad(m, tokens.data(), batch, n, it, &gm.weights);
    CHECK(model_loss(m, tokens.data(), batch, n, it) == loss);

    DoubleModel dm{m, batch, n, tokens, {}, {}};
    std::vector<std::vector<double>> frozen;
    const double ref = dm.loss(it.m, it.b, &frozen, true);
    CHECK(std::fabs(loss - ref) / ref < 1e-5);  // same function, float vs double
    CHECK(dm.loss(it.m, it.b, &frozen, false) == Approx(ref).epsilon(1e-12));

    auto mt = m.weights.tensors();
    auto gt = gm.weights.tensors();
    const Config& c = m.config;
    for (size_t ti = 0; ti < mt.size(); ti++) {
        Tensor& t = *mt[ti];
        if (t.empty()) continue;
        const int parts = (ti == 3 || ti == 4) ? m.plan.n_kv_layers()
                          : (ti == 0 || ti == 10 || ti == 11) ? 1 : c.n_layers;
        const size_t per = t.size() / parts;
        const int per_part = parts == 1 ? 24 : 8;
        std::vector<size_t> idx;
        for (int p = 0; p < parts; p++)
            for (int s = 0; s < per_part; s++) idx.push_back((size_t)p * per + rng.next_u32() % per);
        std::vector<double> fd = finite_diff(t, [&]() { return dm.loss(it.m, it.b, &frozen, false); }, 1e-4f, idx);
        // compare per part, so a part with small gradients is judged on its own scale
        for (int p = 0; p < parts; p++) {
            INFO("tensor " << tensor_name(ti) << " part " << p << " of " << parts);
            double num = 0, den = 0, max_fd = 0, max_err = 0;
            for (int s = 0; s < per_part; s++) {
                const size_t j = (size_t)p * per_part + s;
                const double a = (*gt[ti])[idx[j]], e = a - fd[j];
                num += e * e;
                den += fd[j] * fd[j];
                max_fd = std::max(max_fd, std::fabs(fd[j]));
                max_err = std::max(max_err, std::fabs(e));
            }
            const double rel = std::sqrt(num / den);
            INFO("rel_l2 " << rel << ", max_err " << max_err << ", max |fd| " << max_fd);
            CHECK(max_fd > 1e-4);  // every part has a gradient worth checking
            CHECK(rel < 5e-4);
            CHECK(max_err < 5e-4 * max_fd);
        }
    }
}

}  // namespace

TEST_CASE("whole model gradient against finite differences: standard", "[backward]") {
    check_model_grad("standard", true, {}, 11);
    check_model_grad("standard,diag=all", false, {}, 12);
}

TEST_CASE("whole model gradient against finite differences: bottom-shared cla:2", "[backward]") {
    check_model_grad("cla:2", true, {}, 21);
    check_model_grad("cla:2", false, {}, 22);
}

TEST_CASE("whole model gradient against finite differences: upward lckv:1 (0,3,3,3)", "[backward]") {
    // m = 0: the plain gradient of the b-iteration function
    check_model_grad("lckv:1", true, TrainIterations{0, 3}, 31);
    // m = 2, b = 2: truncated backprop; the K/V after iteration m are constants
    check_model_grad("lckv:1", true, TrainIterations{2, 2}, 32);
    check_model_grad("lckv:1", false, TrainIterations{1, 1}, 33);
    check_model_grad("lckv:1,diag=all", true, TrainIterations{1, 2}, 34);
}

TEST_CASE("whole model gradient against finite differences: upward and downward readers, two blocks", "[backward]") {
    check_model_grad("0,2,2,2", true, TrainIterations{2, 2}, 41);  // layer 1 reads 2 upward, 3 downward
    check_model_grad("1,1,3,3", true, TrainIterations{1, 2}, 42);  // two cyclic blocks
}

TEST_CASE("model_loss_and_grad accumulates and checks its inputs", "[backward]") {
    Model m = tiny_model("lckv:1", true, 5);
    const int batch = 2, n = 5;
    std::vector<int> tokens((size_t)batch * (n + 1));
    for (size_t i = 0; i < tokens.size(); i++) tokens[i] = (int)(i * 7 % 11);
    Model g1 = m, g2 = m;
    allocate_weights(g1);
    allocate_weights(g2);
    model_loss_and_grad(m, tokens.data(), batch, n, {}, &g1.weights);
    model_loss_and_grad(m, tokens.data(), batch, n, {}, &g2.weights);
    model_loss_and_grad(m, tokens.data(), batch, n, {}, &g2.weights);
    auto t1 = g1.weights.tensors(), t2 = g2.weights.tensors();
    for (size_t i = 0; i < t1.size(); i++)
        for (size_t j = 0; j < t1[i]->size(); j++) REQUIRE((*t2[i])[j] == Approx(2.0 * (*t1[i])[j]).margin(1e-6));

    CHECK_THROWS(model_loss(m, tokens.data(), batch, n, TrainIterations{2, 0}));
    CHECK_THROWS(model_loss(m, tokens.data(), batch, n, TrainIterations{-1, 2}));
    std::vector<int> bad = tokens;
    bad[3] = 11;
    CHECK_THROWS(model_loss(m, bad.data(), batch, n, {}));
    CHECK_THROWS(model_loss(m, tokens.data(), 1, 17, {}));  // longer than max_seq_len
    Model wrong = tiny_model("standard", true, 5);
    allocate_weights(wrong);  // standard has 4 K/V slots, lckv:1 two
    CHECK_THROWS(model_loss_and_grad(m, tokens.data(), batch, n, {}, &wrong.weights));
}

TEST_CASE("a workspace reused across calls gives the bits of a fresh one", "[backward]") {
    // what one call leaves in the buffers (activations, K/V and their gradients, the tape)
    // must not reach the next: the calls in between use other shapes and no gradient
    const int batch = 2, n = 6;
    for (const std::string plan : {"standard", "lckv:1", "1,1,3,3"}) {
        INFO("plan " << plan);
        Model m = tiny_model(plan, true, 8);
        std::vector<int> tokens((size_t)batch * (n + 1));
        for (size_t i = 0; i < tokens.size(); i++) tokens[i] = (int)((i * 5 + 3) % 11);
        const TrainIterations it{2, 2};
        Model fresh = m, reused = m;
        allocate_weights(fresh);
        allocate_weights(reused);
        const double want = model_loss_and_grad(m, tokens.data(), batch, n, it, &fresh.weights);

        TrainWorkspace ws;
        Model first = m;
        allocate_weights(first);
        CHECK(model_loss_and_grad(m, tokens.data(), batch, n, it, &first.weights, &ws) == want);
        std::vector<int> other((size_t)(n + 2) * 1);
        for (size_t i = 0; i < other.size(); i++) other[i] = (int)((i * 3 + 1) % 11);
        CHECK(model_loss(m, other.data(), 1, n + 1, it, &ws) == model_loss(m, other.data(), 1, n + 1, it));
        CHECK(model_loss(m, tokens.data(), batch, n, TrainIterations{1, 3}, &ws) ==
              model_loss(m, tokens.data(), batch, n, TrainIterations{1, 3}));
        CHECK(model_loss_and_grad(m, tokens.data(), batch, n, it, &reused.weights, &ws) == want);
        auto a = fresh.weights.tensors(), b = reused.weights.tensors();
        for (size_t i = 0; i < a.size(); i++) {
            INFO("tensor " << tensor_name(i));
            REQUIRE(a[i]->size() == b[i]->size());
            CHECK(std::memcmp(a[i]->data(), b[i]->data(), a[i]->size() * sizeof(float)) == 0);
        }
    }
}
