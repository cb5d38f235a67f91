#include "reference/train_model.h"
#include "reference/attention_blocked.h"
#include "reference/backward.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "src/util.h"
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

// The forward is reference/forward.cpp's parallel prefill over all n positions, with the
// KV cache replaced by K/V objects: every execution of a KV layer makes a new one, and a
// slot holds the newest. A layer reads whatever its source's slot holds when it runs, so
// within an iteration a source at or below the reader is this iteration's K/V, and an
// upper source is the previous iteration's (zeros in the first), as in forward.cpp.
//
// Backward walks the recorded layer executions in reverse. A K/V object made by a
// recorded execution carries a gradient that every reader adds to (attention_backward
// accumulates into the source's dK/dV); all its readers run after its maker, so by the
// time the backward reaches the maker, that gradient is complete and flows into W_K, W_V
// and the maker's input.

namespace {

struct KV {
    std::vector<float> k, v;    // (rows, kv_dim), K after RoPE
    std::vector<float> dk, dv;  // its gradient; empty for a constant (unrecorded or zero) K/V
    bool has_grad() const { return !dk.empty(); }
};
using KVPtr = std::shared_ptr<KV>;

// What one execution of one layer keeps for its backward.
struct Acts {
    int layer = 0;
    std::vector<float> x_in;   // (rows, dim) residual stream entering the layer
    std::vector<float> xn1;    // rmsnorm(x_in) * rms_att
    std::vector<float> q;      // (rows, q_dim) after RoPE
    std::vector<float> att;    // (rows, q_dim) attention output
    std::vector<float> x_mid;  // (rows, dim) after the attention residual
    std::vector<float> xn2;    // rmsnorm(x_mid) * rms_ffn
    std::vector<float> gate, up, act;  // (rows, hidden) w1 xn2, w3 xn2, silu(gate) * up
    KVPtr read;                // the K/V the attention read
    KVPtr made;                // the K/V this layer made, when it is a recorded KV layer
};

// A stretch of recorded executions: layers first..last once, or a block's b iterations.
struct Segment {
    bool block;
    int first, last;
    size_t step0;  // index of its first execution in the tape
};

struct Pass {
    const Model& m;
    int batch, n, rows;
    std::vector<int> positions;  // (rows) row r of a sequence sits at r % n
    std::vector<KVPtr> cache;    // (kv slot) the K/V the slot holds now
    std::vector<float> tmp;      // (rows, dim)
    // backward scratch
    std::vector<float> dact, dgate, dup, dxn, datt, dq;

    Pass(const Model& model, int b, int len) : m(model), batch(b), n(len), rows(b * len) {
        positions.resize(rows);
        for (int r = 0; r < rows; r++) positions[r] = r % n;
        cache.resize(m.plan.n_kv_layers());
        tmp.resize((size_t)rows * m.config.dim);
    }
};

// x (rows, dim) += layer l of x; fills a; a recorded KV layer's K/V gets a gradient buffer.
void layer_forward(Pass& P, int l, std::vector<float>& x, Acts& a, bool recorded) {
    const Config& c = P.m.config;
    const Weights& w = P.m.weights;
    const Plan& plan = P.m.plan;
    const int rows = P.rows, n = P.n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim;
    const size_t R = rows;

    a.layer = l;
    a.x_in.assign(x.begin(), x.end());
    a.xn1.resize(R * D); a.q.resize(R * QD); a.att.resize(R * QD);
    a.xn2.resize(R * D); a.gate.resize(R * H); a.up.resize(R * H); a.act.resize(R * H);

    rmsnorm(a.xn1.data(), x.data(), w.rms_att.data() + (size_t)l * D, rows, D, c.norm_eps);
    matmul_blocked(a.q.data(), a.xn1.data(), w.wq.data() + (size_t)l * QD * D, rows, D, QD);
    rope(a.q.data(), P.positions.data(), rows, c.n_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);

    const int slot = plan.kv_slot[l];
    a.made = nullptr;
    if (plan.owns_kv(l)) {
        auto kv = std::make_shared<KV>();
        kv->k.resize(R * KD);
        kv->v.resize(R * KD);
        matmul_blocked(kv->k.data(), a.xn1.data(), w.wk.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_blocked(kv->v.data(), a.xn1.data(), w.wv.data() + (size_t)slot * KD * D, rows, D, KD);
        rope(kv->k.data(), P.positions.data(), rows, c.n_kv_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
        if (recorded) {
            kv->dk.assign(R * KD, 0.0f);
            kv->dv.assign(R * KD, 0.0f);
            a.made = kv;
        }
        P.cache[slot] = kv;
    }
    a.read = P.cache[slot];
    if (!a.read) fail("internal: layer " + std::to_string(l) + " reads a K/V slot nothing has written");
    for (int b = 0; b < P.batch; b++) {
        const size_t qo = (size_t)b * n * QD, ko = (size_t)b * n * KD;
        attention_blocked(a.att.data() + qo, a.q.data() + qo, a.read->k.data() + ko, a.read->v.data() + ko, n, 0,
                  plan.strict(l), c.n_heads, c.n_kv_heads, c.head_size());
    }
    matmul_blocked(P.tmp.data(), a.att.data(), w.wo.data() + (size_t)l * D * QD, rows, QD, D);
    residual_add(x.data(), P.tmp.data(), R * D);
    a.x_mid.assign(x.begin(), x.end());

    rmsnorm(a.xn2.data(), x.data(), w.rms_ffn.data() + (size_t)l * D, rows, D, c.norm_eps);
    matmul_blocked(a.gate.data(), a.xn2.data(), w.w1.data() + (size_t)l * H * D, rows, D, H);
    matmul_blocked(a.up.data(), a.xn2.data(), w.w3.data() + (size_t)l * H * D, rows, D, H);
    std::copy(a.gate.begin(), a.gate.end(), a.act.begin());
    swiglu(a.act.data(), a.up.data(), R * H);
    matmul_blocked(P.tmp.data(), a.act.data(), w.w2.data() + (size_t)l * D * H, rows, H, D);
    residual_add(x.data(), P.tmp.data(), R * D);
}

static void zero(std::vector<float>& v, size_t n) { v.assign(n, 0.0f); }

// dx (rows, dim): in, the gradient of the layer's output; out, of its input x_in.
// The residual connections pass dx through unchanged, and the gradient of each branch's
// output is dx itself.
void layer_backward(Pass& P, Acts& a, std::vector<float>& dx, Weights& g) {
    const Config& c = P.m.config;
    const Weights& w = P.m.weights;
    const Plan& plan = P.m.plan;
    const int l = a.layer, rows = P.rows, n = P.n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim;
    const size_t R = rows;
    const int slot = plan.kv_slot[l];

    // x_out = x_mid + w2 act,  act = swiglu(w1 xn2, w3 xn2),  xn2 = rmsnorm(x_mid)
    zero(P.dact, R * H);
    matmul_backward_x_blocked(P.dact.data(), dx.data(), w.w2.data() + (size_t)l * D * H, rows, H, D);
    matmul_backward_w_blocked(g.w2.data() + (size_t)l * D * H, dx.data(), a.act.data(), rows, H, D);
    zero(P.dgate, R * H);
    zero(P.dup, R * H);
    swiglu_backward(P.dgate.data(), P.dup.data(), P.dact.data(), a.gate.data(), a.up.data(), R * H);
    zero(P.dxn, R * D);
    matmul_backward_x_blocked(P.dxn.data(), P.dgate.data(), w.w1.data() + (size_t)l * H * D, rows, D, H);
    matmul_backward_w_blocked(g.w1.data() + (size_t)l * H * D, P.dgate.data(), a.xn2.data(), rows, D, H);
    matmul_backward_x_blocked(P.dxn.data(), P.dup.data(), w.w3.data() + (size_t)l * H * D, rows, D, H);
    matmul_backward_w_blocked(g.w3.data() + (size_t)l * H * D, P.dup.data(), a.xn2.data(), rows, D, H);
    rmsnorm_backward(dx.data(), g.rms_ffn.data() + (size_t)l * D, P.dxn.data(), a.x_mid.data(),
                     w.rms_ffn.data() + (size_t)l * D, rows, D, c.norm_eps);  // dx is now d x_mid

    // x_mid = x_in + wo att,  att = attention(q, source K/V),  q = rope(wq xn1)
    zero(P.datt, R * QD);
    matmul_backward_x_blocked(P.datt.data(), dx.data(), w.wo.data() + (size_t)l * D * QD, rows, QD, D);
    matmul_backward_w_blocked(g.wo.data() + (size_t)l * D * QD, dx.data(), a.att.data(), rows, QD, D);
    zero(P.dq, R * QD);
    KV& src = *a.read;
    for (int b = 0; b < P.batch; b++) {
        const size_t qo = (size_t)b * n * QD, ko = (size_t)b * n * KD;
        attention_backward(P.dq.data() + qo, src.has_grad() ? src.dk.data() + ko : nullptr,
                           src.has_grad() ? src.dv.data() + ko : nullptr, P.datt.data() + qo, a.q.data() + qo,
                           src.k.data() + ko, src.v.data() + ko, n, 0, plan.strict(l), c.n_heads, c.n_kv_heads,
                           c.head_size());
    }
    rope_backward(P.dq.data(), P.positions.data(), rows, c.n_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
    zero(P.dxn, R * D);
    matmul_backward_x_blocked(P.dxn.data(), P.dq.data(), w.wq.data() + (size_t)l * QD * D, rows, D, QD);
    matmul_backward_w_blocked(g.wq.data() + (size_t)l * QD * D, P.dq.data(), a.xn1.data(), rows, D, QD);
    if (a.made) {  // every reader of this K/V has run its backward: its gradient is complete
        KV& kv = *a.made;
        rope_backward(kv.dk.data(), P.positions.data(), rows, c.n_kv_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
        matmul_backward_x_blocked(P.dxn.data(), kv.dk.data(), w.wk.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_backward_w_blocked(g.wk.data() + (size_t)slot * KD * D, kv.dk.data(), a.xn1.data(), rows, D, KD);
        matmul_backward_x_blocked(P.dxn.data(), kv.dv.data(), w.wv.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_backward_w_blocked(g.wv.data() + (size_t)slot * KD * D, kv.dv.data(), a.xn1.data(), rows, D, KD);
    }
    rmsnorm_backward(dx.data(), g.rms_att.data() + (size_t)l * D, P.dxn.data(), a.x_in.data(),
                     w.rms_att.data() + (size_t)l * D, rows, D, c.norm_eps);  // dx is now d x_in
}

double run(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it, Weights* grad) {
    const Config& c = m.config;
    const Plan& plan = m.plan;
    const int L = c.n_layers, D = c.dim, V = c.vocab_size;
    if (batch < 1) fail("training batch must be at least 1, not " + std::to_string(batch));
    if (n < 1) fail("training sequence length must be at least 1, not " + std::to_string(n));
    if (n > c.max_seq_len)
        fail("sequence length " + std::to_string(n) + " exceeds the model's max_seq_len " + std::to_string(c.max_seq_len));
    if (plan.n_layers() != L) fail("the plan has " + std::to_string(plan.n_layers()) + " layers, the model " + std::to_string(L));
    if (plan.iterates() && (it.m < 0 || it.b < 1 || it.m > kMaxTrainIterations || it.b > kMaxTrainIterations))
        fail("iterations m,b = " + std::to_string(it.m) + "," + std::to_string(it.b) + ": need m in 0.." +
             std::to_string(kMaxTrainIterations) + " and b in 1.." + std::to_string(kMaxTrainIterations));
    if (grad) {
        auto mine = const_cast<Weights&>(m.weights).tensors(), theirs = grad->tensors();
        for (size_t i = 0; i < mine.size(); i++)
            if (mine[i]->size() != theirs[i]->size()) fail("gradient buffers are not shaped like the model's weights");
    }

    const int rows = batch * n;
    std::vector<int> inputs(rows), targets(rows);
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < n; t++) {
            inputs[(size_t)b * n + t] = tokens[(size_t)b * (n + 1) + t];
            targets[(size_t)b * n + t] = tokens[(size_t)b * (n + 1) + t + 1];
        }
    for (int r = 0; r < rows; r++)
        if (inputs[r] < 0 || inputs[r] >= V)
            fail("token id " + std::to_string(inputs[r]) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");

    Pass P(m, batch, n);
    const size_t RD = (size_t)rows * D;
    std::vector<float> x(RD);
    embedding(x.data(), m.weights.token_embedding.data(), inputs.data(), rows, D);

    const bool record = grad != nullptr;
    std::vector<Acts> tape;  // recorded executions, in forward order
    std::vector<Segment> segments;
    Acts scratch;            // for unrecorded executions
    auto run_once = [&](int first, int last) {
        if (first > last) return;
        segments.push_back({false, first, last, tape.size()});
        for (int l = first; l <= last; l++) {
            if (record) tape.emplace_back();
            layer_forward(P, l, x, record ? tape.back() : scratch, record);
        }
    };

    int next = 0;  // first layer not yet run
    for (const Block& blk : plan.blocks) {
        run_once(next, blk.first - 1);
        const std::vector<float> block_input = x;
        // iteration 1 reads zeros for the K/V of the block's layers (constants)
        for (int l = blk.first; l <= blk.last; l++)
            if (plan.owns_kv(l)) {
                auto zeros = std::make_shared<KV>();
                zeros->k.assign(RD / D * c.kv_dim(), 0.0f);
                zeros->v.assign(RD / D * c.kv_dim(), 0.0f);
                P.cache[plan.kv_slot[l]] = zeros;
            }
        segments.push_back({true, blk.first, blk.last, tape.size()});
        for (int i = 0; i < it.m + it.b; i++) {
            const bool rec = record && i >= it.m;
            x = block_input;
            for (int l = blk.first; l <= blk.last; l++) {
                if (rec) tape.emplace_back();
                layer_forward(P, l, x, rec ? tape.back() : scratch, rec);
            }
        }
        next = blk.last + 1;
    }
    run_once(next, L - 1);

    // final norm, classifier, loss
    std::vector<float> hn(RD), logits((size_t)rows * V);
    rmsnorm(hn.data(), x.data(), m.weights.rms_final.data(), rows, D, c.norm_eps);
    matmul_blocked(logits.data(), hn.data(), m.classifier(), rows, D, V);
    const double loss = softmax_cross_entropy(logits.data(), targets.data(), rows, V);
    if (!grad) return loss;

    Weights& g = *grad;
    std::vector<float> dlogits((size_t)rows * V, 0.0f), dhn(RD, 0.0f), dx(RD, 0.0f);
    softmax_cross_entropy_backward(dlogits.data(), logits.data(), targets.data(), rows, V);
    float* dcls = c.shared_classifier ? g.token_embedding.data() : g.wcls.data();
    matmul_backward_x_blocked(dhn.data(), dlogits.data(), m.classifier(), rows, D, V);
    matmul_backward_w_blocked(dcls, dlogits.data(), hn.data(), rows, D, V);
    rmsnorm_backward(dx.data(), g.rms_final.data(), dhn.data(), x.data(), m.weights.rms_final.data(), rows, D, c.norm_eps);

    for (size_t si = segments.size(); si-- > 0;) {
        const Segment& seg = segments[si];
        const int width = seg.last - seg.first + 1;
        if (!seg.block) {
            for (int j = width - 1; j >= 0; j--) layer_backward(P, tape[seg.step0 + j], dx, g);
            continue;
        }
        // Every recorded iteration starts from block_input, so its gradient is the sum of
        // what each iteration sends back. Only the last iteration's output is used; an
        // earlier one affects the loss only through the K/V it makes.
        std::vector<float> dinput(RD, 0.0f);
        for (int r = it.b - 1; r >= 0; r--) {
            if (r < it.b - 1) std::fill(dx.begin(), dx.end(), 0.0f);
            for (int j = width - 1; j >= 0; j--) layer_backward(P, tape[seg.step0 + (size_t)r * width + j], dx, g);
            residual_backward(dinput.data(), dx.data(), RD);  // dinput += dx
        }
        dx.swap(dinput);
    }
    embedding_backward(g.token_embedding.data(), dx.data(), inputs.data(), rows, D);
    return loss;
}

}  // namespace

double model_loss_and_grad(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                           Weights* grad) {
    return run(m, tokens, batch, n, it, grad);
}

double model_loss(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it) {
    return run(m, tokens, batch, n, it, nullptr);
}
