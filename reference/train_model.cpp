#include "reference/train_model.h"
#include "reference/attention_blocked.h"
#include "reference/backward.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "reference/parallel.h"
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

// What one execution of one layer keeps for its backward.
struct Acts {
    int layer = 0;
    std::vector<float> x_in;   // (rows, dim) residual stream entering the layer
    std::vector<float> xn1;    // rmsnorm(x_in) * rms_att
    std::vector<float> q;      // (rows, q_dim) after RoPE
    std::vector<float> att;    // (rows, q_dim) attention output
    std::vector<float> x_mid;  // (rows, dim) after the attention residual
    std::vector<float> xn2;    // rmsnorm(x_mid) * rms_ffn
    std::vector<float> gate, up;  // (rows, hidden) w1 xn2, w3 xn2
    std::vector<float> denom;     // (rows, hidden) 1 + exp(-gate): swiglu's denominators (swiglu_keep)
    KV* read = nullptr;        // the K/V the attention read
    KV* made = nullptr;        // the K/V this layer made, when it is a recorded KV layer
};

// A stretch of recorded executions: layers first..last once, or a block's b iterations.
struct Segment {
    bool block;
    int first, last;
    size_t step0;  // index of its first execution in the tape
};

}  // namespace

// Every buffer of a pass. Vectors are resized to each call's shapes: a call like the last
// one finds them the right size, and one with fewer rows uses the front of them.
struct TrainWorkspace::Buffers {
    std::vector<Acts> tape;     // recorded executions, in forward order; the first `taped` are this call's
    size_t taped = 0;
    Acts scratch;               // for unrecorded executions
    // K/V objects: one per recorded KV-layer execution (with gradient), two per slot for
    // unrecorded ones (the slot's newest and the one before, which readers below the
    // source may still read in this iteration), and one of zeros for a block's first iteration
    std::vector<std::unique_ptr<KV>> recorded_kv;
    size_t recorded_used = 0;
    std::vector<KV> unrecorded_kv;   // (slot, 2)
    std::vector<int> unrecorded_made;  // (slot) how many this call has made
    KV zeros;
    std::vector<KV*> cache;          // (slot) the K/V the slot holds now
    std::vector<int> positions, inputs, targets;  // (rows)
    std::vector<float> x, tmp, block_input;       // (rows, dim)
    std::vector<float> hn, dhn, dx, dinput;       // (rows, dim)
    std::vector<float> logits, dlogits;           // (rows, vocab)
    std::vector<float> act;                       // (rows, hidden) swiglu's output, made again where needed
    std::vector<float> dact, dgate, dup, dxn, datt, dq;  // backward scratch
    std::vector<Segment> segments;
};

TrainWorkspace::TrainWorkspace() : buffers(std::make_unique<Buffers>()) {}
TrainWorkspace::~TrainWorkspace() = default;

namespace {

using Buffers = TrainWorkspace::Buffers;

struct Pass {
    const Model& m;
    int batch, n, rows;
    Buffers& ws;

    Pass(const Model& model, int b, int len, Buffers& buffers) : m(model), batch(b), n(len), rows(b * len), ws(buffers) {
        ws.positions.resize(rows);
        for (int r = 0; r < rows; r++) ws.positions[r] = r % n;
        ws.cache.assign(m.plan.n_kv_layers(), nullptr);
        ws.unrecorded_kv.resize(2 * (size_t)m.plan.n_kv_layers());
        ws.unrecorded_made.assign(m.plan.n_kv_layers(), 0);
        ws.tmp.resize((size_t)rows * m.config.dim);
        ws.taped = 0;
        ws.recorded_used = 0;
        ws.segments.clear();
    }

    // The K/V object a KV layer's execution fills: a fresh one with a zero gradient when it
    // is recorded, else the older of its slot's two.
    KV& new_kv(int slot, bool recorded) {
        const size_t floats = (size_t)rows * m.config.kv_dim();
        KV* kv;
        if (recorded) {
            if (ws.recorded_used == ws.recorded_kv.size()) ws.recorded_kv.push_back(std::make_unique<KV>());
            kv = ws.recorded_kv[ws.recorded_used++].get();
            kv->dk.assign(floats, 0.0f);
            kv->dv.assign(floats, 0.0f);
        } else {
            kv = &ws.unrecorded_kv[2 * (size_t)slot + ws.unrecorded_made[slot]++ % 2];
        }
        kv->k.resize(floats);
        kv->v.resize(floats);
        return *kv;
    }

    // The next entry of the tape, reused from an earlier call when there is one.
    Acts& record() {
        if (ws.taped == ws.tape.size()) ws.tape.emplace_back();
        return ws.tape[ws.taped++];
    }
};

// x (rows, dim) += layer l of x; fills a; a recorded KV layer's K/V gets a gradient buffer.
// kv_only (an unrecorded execution of a block's top layer before the last iteration): only
// its K/V, the one thing of it that a later layer reads.
void layer_forward(Pass& P, int l, std::vector<float>& x, Acts& a, bool recorded, bool kv_only = false) {
    const Config& c = P.m.config;
    const Weights& w = P.m.weights;
    const Plan& plan = P.m.plan;
    const int rows = P.rows, n = P.n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim;
    const size_t R = rows;

    a.layer = l;
    if (recorded) a.x_in.assign(x.begin(), x.end());  // only the backward reads it
    a.xn1.resize(R * D); a.q.resize(R * QD); a.att.resize(R * QD);
    a.xn2.resize(R * D); a.gate.resize(R * H); a.up.resize(R * H); a.denom.resize(R * H);

    rmsnorm(a.xn1.data(), x.data(), w.rms_att.data() + (size_t)l * D, rows, D, c.norm_eps);
    const int slot = plan.kv_slot[l];
    a.made = nullptr;
    if (plan.owns_kv(l)) {
        KV& kv = P.new_kv(slot, recorded);
        matmul_blocked(kv.k.data(), a.xn1.data(), w.wk.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_blocked(kv.v.data(), a.xn1.data(), w.wv.data() + (size_t)slot * KD * D, rows, D, KD);
        rope(kv.k.data(), P.ws.positions.data(), rows, c.n_kv_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
        if (recorded) a.made = &kv;
        P.ws.cache[slot] = &kv;
    }
    if (kv_only) return;
    matmul_blocked(a.q.data(), a.xn1.data(), w.wq.data() + (size_t)l * QD * D, rows, D, QD);
    rope(a.q.data(), P.ws.positions.data(), rows, c.n_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
    a.read = P.ws.cache[slot];
    if (!a.read) fail("internal: layer " + std::to_string(l) + " reads a K/V slot nothing has written");
    for (int b = 0; b < P.batch; b++) {
        const size_t qo = (size_t)b * n * QD, ko = (size_t)b * n * KD;
        attention_blocked(a.att.data() + qo, a.q.data() + qo, a.read->k.data() + ko, a.read->v.data() + ko, n, 0,
                  plan.strict(l), c.n_heads, c.n_kv_heads, c.head_size());
    }
    matmul_blocked(P.ws.tmp.data(), a.att.data(), w.wo.data() + (size_t)l * D * QD, rows, QD, D);
    residual_add(x.data(), P.ws.tmp.data(), R * D);
    if (recorded) a.x_mid.assign(x.begin(), x.end());

    rmsnorm(a.xn2.data(), x.data(), w.rms_ffn.data() + (size_t)l * D, rows, D, c.norm_eps);
    matmul_blocked(a.gate.data(), a.xn2.data(), w.w1.data() + (size_t)l * H * D, rows, D, H);
    matmul_blocked(a.up.data(), a.xn2.data(), w.w3.data() + (size_t)l * H * D, rows, D, H);
    P.ws.act.resize(R * H);
    swiglu_keep(P.ws.act.data(), a.denom.data(), a.gate.data(), a.up.data(), R * H);
    matmul_blocked(P.ws.tmp.data(), P.ws.act.data(), w.w2.data() + (size_t)l * D * H, rows, H, D);
    residual_add(x.data(), P.ws.tmp.data(), R * D);
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
    zero(P.ws.dact, R * H);
    matmul_backward_x_blocked(P.ws.dact.data(), dx.data(), w.w2.data() + (size_t)l * D * H, rows, H, D);
    zero(P.ws.dgate, R * H);
    zero(P.ws.dup, R * H);
    P.ws.act.resize(R * H);  // receives act again
    swiglu_backward_kept(P.ws.dgate.data(), P.ws.dup.data(), P.ws.act.data(), P.ws.dact.data(), a.gate.data(),
                         a.up.data(), a.denom.data(), R * H);
    matmul_backward_w_blocked(g.w2.data() + (size_t)l * D * H, dx.data(), P.ws.act.data(), rows, H, D);
    zero(P.ws.dxn, R * D);
    matmul_backward_x_blocked(P.ws.dxn.data(), P.ws.dgate.data(), w.w1.data() + (size_t)l * H * D, rows, D, H);
    matmul_backward_w_blocked(g.w1.data() + (size_t)l * H * D, P.ws.dgate.data(), a.xn2.data(), rows, D, H);
    matmul_backward_x_blocked(P.ws.dxn.data(), P.ws.dup.data(), w.w3.data() + (size_t)l * H * D, rows, D, H);
    matmul_backward_w_blocked(g.w3.data() + (size_t)l * H * D, P.ws.dup.data(), a.xn2.data(), rows, D, H);
    rmsnorm_backward(dx.data(), g.rms_ffn.data() + (size_t)l * D, P.ws.dxn.data(), a.x_mid.data(),
                     w.rms_ffn.data() + (size_t)l * D, rows, D, c.norm_eps);  // dx is now d x_mid

    // x_mid = x_in + wo att,  att = attention(q, source K/V),  q = rope(wq xn1)
    zero(P.ws.datt, R * QD);
    matmul_backward_x_blocked(P.ws.datt.data(), dx.data(), w.wo.data() + (size_t)l * D * QD, rows, QD, D);
    matmul_backward_w_blocked(g.wo.data() + (size_t)l * D * QD, dx.data(), a.att.data(), rows, QD, D);
    zero(P.ws.dq, R * QD);
    KV& src = *a.read;
    for (int b = 0; b < P.batch; b++) {
        const size_t qo = (size_t)b * n * QD, ko = (size_t)b * n * KD;
        attention_backward_blocked(P.ws.dq.data() + qo, src.has_grad() ? src.dk.data() + ko : nullptr,
                           src.has_grad() ? src.dv.data() + ko : nullptr, P.ws.datt.data() + qo, a.q.data() + qo,
                           src.k.data() + ko, src.v.data() + ko, n, 0, plan.strict(l), c.n_heads, c.n_kv_heads,
                           c.head_size());
    }
    rope_backward(P.ws.dq.data(), P.ws.positions.data(), rows, c.n_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
    zero(P.ws.dxn, R * D);
    matmul_backward_x_blocked(P.ws.dxn.data(), P.ws.dq.data(), w.wq.data() + (size_t)l * QD * D, rows, D, QD);
    matmul_backward_w_blocked(g.wq.data() + (size_t)l * QD * D, P.ws.dq.data(), a.xn1.data(), rows, D, QD);
    if (a.made) {  // every reader of this K/V has run its backward: its gradient is complete
        KV& kv = *a.made;
        rope_backward(kv.dk.data(), P.ws.positions.data(), rows, c.n_kv_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
        matmul_backward_x_blocked(P.ws.dxn.data(), kv.dk.data(), w.wk.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_backward_w_blocked(g.wk.data() + (size_t)slot * KD * D, kv.dk.data(), a.xn1.data(), rows, D, KD);
        matmul_backward_x_blocked(P.ws.dxn.data(), kv.dv.data(), w.wv.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_backward_w_blocked(g.wv.data() + (size_t)slot * KD * D, kv.dv.data(), a.xn1.data(), rows, D, KD);
    }
    rmsnorm_backward(dx.data(), g.rms_att.data() + (size_t)l * D, P.ws.dxn.data(), a.x_in.data(),
                     w.rms_att.data() + (size_t)l * D, rows, D, c.norm_eps);  // dx is now d x_in
}

double run(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it, Weights* grad,
           Buffers& ws) {
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

    Pass P(m, batch, n, ws);
    const int rows = P.rows;
    std::vector<int>& inputs = ws.inputs;
    std::vector<int>& targets = ws.targets;
    inputs.resize(rows);
    targets.resize(rows);
    for (int b = 0; b < batch; b++)
        for (int t = 0; t < n; t++) {
            inputs[(size_t)b * n + t] = tokens[(size_t)b * (n + 1) + t];
            targets[(size_t)b * n + t] = tokens[(size_t)b * (n + 1) + t + 1];
        }
    for (int r = 0; r < rows; r++)
        if (inputs[r] < 0 || inputs[r] >= V)
            fail("token id " + std::to_string(inputs[r]) + " is outside the vocabulary (0.." + std::to_string(V - 1) + ")");

    const size_t RD = (size_t)rows * D;
    std::vector<float>& x = ws.x;
    x.resize(RD);
    embedding(x.data(), m.weights.token_embedding.data(), inputs.data(), rows, D);

    const bool record = grad != nullptr;
    std::vector<Segment>& segments = ws.segments;
    auto run_once = [&](int first, int last) {
        if (first > last) return;
        segments.push_back({false, first, last, ws.taped});
        for (int l = first; l <= last; l++) layer_forward(P, l, x, record ? P.record() : ws.scratch, record);
    };

    int next = 0;  // first layer not yet run
    for (const Block& blk : plan.blocks) {
        run_once(next, blk.first - 1);
        ws.block_input.assign(x.begin(), x.end());
        // iteration 1 reads zeros for the K/V of the block's layers (constants)
        ws.zeros.k.assign((size_t)rows * c.kv_dim(), 0.0f);
        ws.zeros.v.assign((size_t)rows * c.kv_dim(), 0.0f);
        for (int l = blk.first; l <= blk.last; l++)
            if (plan.owns_kv(l)) ws.cache[plan.kv_slot[l]] = &ws.zeros;
        segments.push_back({true, blk.first, blk.last, ws.taped});
        for (int i = 0; i < it.m + it.b; i++) {
            const bool rec = record && i >= it.m;
            x.assign(ws.block_input.begin(), ws.block_input.end());
            for (int l = blk.first; l <= blk.last; l++) {
                // before the last iteration, only the top layer's K/V leaves it (as in forward.cpp)
                const bool kv_only = !rec && l == blk.last && i < it.m + it.b - 1;
                layer_forward(P, l, x, rec ? P.record() : ws.scratch, rec, kv_only);
            }
        }
        next = blk.last + 1;
    }
    run_once(next, L - 1);

    // final norm, classifier, loss
    ws.hn.resize(RD);
    ws.logits.resize((size_t)rows * V);
    rmsnorm(ws.hn.data(), x.data(), m.weights.rms_final.data(), rows, D, c.norm_eps);
    matmul_blocked(ws.logits.data(), ws.hn.data(), m.classifier(), rows, D, V);
    if (!grad) return softmax_cross_entropy(ws.logits.data(), targets.data(), rows, V);

    Weights& g = *grad;
    zero(ws.dlogits, (size_t)rows * V);
    zero(ws.dhn, RD);
    zero(ws.dx, RD);
    const double loss = softmax_cross_entropy_with_grad(ws.dlogits.data(), ws.logits.data(), targets.data(), rows, V);
    float* dcls = c.shared_classifier ? g.token_embedding.data() : g.wcls.data();
    matmul_backward_x_blocked(ws.dhn.data(), ws.dlogits.data(), m.classifier(), rows, D, V);
    matmul_backward_w_blocked(dcls, ws.dlogits.data(), ws.hn.data(), rows, D, V);
    std::vector<float>& dx = ws.dx;
    rmsnorm_backward(dx.data(), g.rms_final.data(), ws.dhn.data(), x.data(), m.weights.rms_final.data(), rows, D, c.norm_eps);

    for (size_t si = segments.size(); si-- > 0;) {
        const Segment& seg = segments[si];
        const int width = seg.last - seg.first + 1;
        if (!seg.block) {
            for (int j = width - 1; j >= 0; j--) layer_backward(P, ws.tape[seg.step0 + j], dx, g);
            continue;
        }
        // Every recorded iteration starts from block_input, so its gradient is the sum of
        // what each iteration sends back. Only the last iteration's output is used; an
        // earlier one affects the loss only through the K/V it makes.
        zero(ws.dinput, RD);
        for (int r = it.b - 1; r >= 0; r--) {
            if (r < it.b - 1) std::fill(dx.begin(), dx.end(), 0.0f);
            for (int j = width - 1; j >= 0; j--) layer_backward(P, ws.tape[seg.step0 + (size_t)r * width + j], dx, g);
            residual_backward(ws.dinput.data(), dx.data(), RD);  // dinput += dx
        }
        dx.swap(ws.dinput);
    }
    embedding_backward(g.token_embedding.data(), dx.data(), inputs.data(), rows, D);
    return loss;
}

}  // namespace

double model_loss_and_grad(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                           Weights* grad, TrainWorkspace* workspace) {
    if (workspace) return run(m, tokens, batch, n, it, grad, *workspace->buffers);
    TrainWorkspace own;
    return run(m, tokens, batch, n, it, grad, *own.buffers);
}

double model_loss(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                  TrainWorkspace* workspace) {
    return model_loss_and_grad(m, tokens, batch, n, it, nullptr, workspace);
}
