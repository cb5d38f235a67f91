#include "reference/forward.h"
#include "reference/attention_blocked.h"
#include "reference/matmul_blocked.h"
#include "reference/ops.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cstring>

std::unique_ptr<Backend> make_cpu_backend(const Model& m, int batch, int context) {
    return std::make_unique<CpuBackend>(m, batch, context);
}

CpuBackend::CpuBackend(const Model& m, int batch, int context) : m_(m), batch_(batch) {
    const Config& c = m.config;
    if (context <= 0) context = c.max_seq_len;
    if (batch < 1) fail("batch must be at least 1");
    if (context > c.max_seq_len)
        fail("context " + std::to_string(context) + " exceeds the model's max_seq_len " + std::to_string(c.max_seq_len));
    kv_ = KVLayout{m.plan.n_kv_layers(), batch, context, c.kv_dim()};
    check_memory(MemoryNeed().host("KV cache", ::kv_cache_bytes(c, kv_.n_slots, batch, context)), "the CPU forward",
                 "a smaller batch or context");
    key_cache_.assign(kv_.floats(), 0.0f);
    value_cache_.assign(kv_.floats(), 0.0f);
    grow(batch);
}

void CpuBackend::grow(int rows) {
    const Config& c = m_.config;
    if ((size_t)rows > positions_.size()) {  // growing: checked before it is taken
        MemoryNeed need;
        need.host("run state for " + std::to_string(rows) + " rows",
                  run_state_bytes(c, m_.plan.iterates(), (size_t)rows - positions_.size(), 0));
        check_memory(need, "the CPU forward", "a shorter prompt or a smaller batch");
    }
    auto fit = [rows](std::vector<float>& v, int width) {
        if (v.size() < (size_t)rows * width) v.resize((size_t)rows * width);
    };
    fit(x_, c.dim); fit(xb_, c.dim); fit(q_, c.q_dim()); fit(k_, c.kv_dim()); fit(v_, c.kv_dim());
    fit(att_, c.q_dim()); fit(hb_, c.hidden_dim); fit(hb2_, c.hidden_dim);
    if (positions_.size() < (size_t)rows) positions_.resize(rows);
}

// ---------------------------------------------------------------------------
// one layer: x += Attn(RMSNorm(x)) over the source's cache; x += SwiGLU(RMSNorm(x))

void CpuBackend::run_layer(int l, int n, int p0, bool kv_only) {
    const Config& c = m_.config;
    const Weights& w = m_.weights;
    const Plan& plan = m_.plan;
    const int rows = batch_ * n, D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim;

    rmsnorm(xb_.data(), x_.data(), w.rms_att.data() + (size_t)l * D, rows, D, c.norm_eps);
    if (!kv_only) {
        matmul_blocked(q_.data(), xb_.data(), w.wq.data() + (size_t)l * QD * D, rows, D, QD);
        rope(q_.data(), positions_.data(), rows, c.n_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
    }

    const int slot = plan.kv_slot[l];
    if (plan.owns_kv(l)) {  // only KV layers compute K and V, and write them to their slot
        matmul_blocked(k_.data(), xb_.data(), w.wk.data() + (size_t)slot * KD * D, rows, D, KD);
        matmul_blocked(v_.data(), xb_.data(), w.wv.data() + (size_t)slot * KD * D, rows, D, KD);
        rope(k_.data(), positions_.data(), rows, c.n_kv_heads, c.head_size(), c.rope_theta, RopeStyle::Adjacent);
        for (int b = 0; b < batch_; b++) {
            const size_t src = (size_t)b * n * KD, dst = kv_.offset(slot, b, p0);
            std::memcpy(&key_cache_[dst], &k_[src], (size_t)n * KD * sizeof(float));
            std::memcpy(&value_cache_[dst], &v_[src], (size_t)n * KD * sizeof(float));
        }
    }
    if (kv_only) return;
    for (int b = 0; b < batch_; b++) {
        const size_t rows_b = (size_t)b * n * QD;
        const float* kb = &key_cache_[kv_.offset(slot, b, 0)];
        const float* vb = &value_cache_[kv_.offset(slot, b, 0)];
        if (n == 1 && plan.zero_row_step(l))  // one query, as the authors' code's q_len == 1
            attention_zero_row(att_.data() + rows_b, q_.data() + rows_b, kb, vb, p0, c.n_heads, c.n_kv_heads, c.head_size());
        else
            attention_blocked(att_.data() + rows_b, q_.data() + rows_b, kb, vb, n, p0, plan.strict(l), c.n_heads, c.n_kv_heads,
                              c.head_size());
    }
    matmul_blocked(xb_.data(), att_.data(), w.wo.data() + (size_t)l * D * QD, rows, QD, D);
    residual_add(x_.data(), xb_.data(), (size_t)rows * D);

    rmsnorm(xb_.data(), x_.data(), w.rms_ffn.data() + (size_t)l * D, rows, D, c.norm_eps);
    matmul_blocked(hb_.data(), xb_.data(), w.w1.data() + (size_t)l * H * D, rows, D, H);
    matmul_blocked(hb2_.data(), xb_.data(), w.w3.data() + (size_t)l * H * D, rows, D, H);
    swiglu(hb_.data(), hb2_.data(), (size_t)rows * H);
    matmul_blocked(xb_.data(), hb_.data(), w.w2.data() + (size_t)l * D * H, rows, H, D);
    residual_add(x_.data(), xb_.data(), (size_t)rows * D);
    if (capture_) layer_out_[l].assign(x_.begin(), x_.begin() + (size_t)rows * D);
}

void CpuBackend::run_layers(int first, int last, int n, int p0) {
    for (int l = first; l <= last; l++) run_layer(l, n, p0);
}

void CpuBackend::embed(const int* tokens, int n, int p0) {
    const Config& c = m_.config;
    const int rows = batch_ * n;
    grow(rows);  // token ids were checked by prefill or decode
    embedding(x_.data(), m_.weights.token_embedding.data(), tokens, rows, c.dim);
    for (int r = 0; r < rows; r++) positions_[r] = p0 + r % n;
}

void CpuBackend::finish(int n, bool all_positions) {
    const Config& c = m_.config;
    const int keep = all_positions ? n : 1;
    out_hidden_.resize((size_t)batch_ * keep * c.dim);
    out_logits_.resize((size_t)batch_ * keep * c.vocab_size);
    for (int b = 0; b < batch_; b++) {
        const int first = all_positions ? 0 : n - 1;
        rmsnorm(&out_hidden_[(size_t)b * keep * c.dim], &x_[((size_t)b * n + first) * c.dim],
                m_.weights.rms_final.data(), keep, c.dim, c.norm_eps);
    }
    matmul_blocked(out_logits_.data(), out_hidden_.data(), m_.classifier(), batch_ * keep, c.dim, c.vocab_size);
    logit_positions_ = keep;
}

// ---------------------------------------------------------------------------
// decode and the three prefills

void CpuBackend::decode(const int* tokens) {
    if (pos_ >= kv_.context)
        fail("the sequence is full: " + std::to_string(kv_.context) + " tokens of context");
    check_tokens(tokens, (size_t)batch_, m_.config.vocab_size);
    step(tokens, true);
}

void CpuBackend::step(const int* tokens, bool with_logits) {
    embed(tokens, 1, pos_);
    run_layers(0, m_.config.n_layers - 1, 1, pos_);
    if (with_logits) finish(1, false);
    pos_++;
}

void CpuBackend::prefill(const int* tokens, int n, const PrefillOptions& opt) {
    const Config& c = m_.config;
    const Plan& plan = m_.plan;
    check_prefill(tokens, batch_, n, kv_.context, c.vocab_size, opt);
    pos_ = 0;

    if (prefill_token_by_token(plan, n, opt)) {
        std::vector<float> logits, hidden;  // (batch, n, width) when all positions are kept
        std::vector<int> column(batch_);
        for (int t = 0; t < n; t++) {
            for (int b = 0; b < batch_; b++) column[b] = tokens[(size_t)b * n + t];
            // the classifier can cost more than the layers (stories15M: 32000 x 288 against
            // 6 layers of about 1M weights), so it runs only where logits are kept
            step(column.data(), opt.all_positions || t == n - 1);
            if (!opt.all_positions) continue;
            logits.resize((size_t)batch_ * n * c.vocab_size);
            hidden.resize((size_t)batch_ * n * c.dim);
            for (int b = 0; b < batch_; b++) {
                std::copy_n(&out_logits_[(size_t)b * c.vocab_size], c.vocab_size, &logits[((size_t)b * n + t) * c.vocab_size]);
                std::copy_n(&out_hidden_[(size_t)b * c.dim], c.dim, &hidden[((size_t)b * n + t) * c.dim]);
            }
        }
        if (opt.all_positions) {
            out_logits_.swap(logits);
            out_hidden_.swap(hidden);
            logit_positions_ = n;
        }
        return;
    }

    embed(tokens, n, 0);
    const size_t rows = (size_t)batch_ * n;
    int next = 0;  // first layer not yet run
    for (const Block& blk : plan.blocks) {
        run_layers(next, blk.first - 1, n, 0);
        block_input_.assign(x_.begin(), x_.begin() + rows * c.dim);
        // iteration 1 reads zeros for K/V not computed yet
        for (int l = blk.first; l <= blk.last; l++)
            if (plan.owns_kv(l))
                for (int b = 0; b < batch_; b++) {
                    const size_t off = kv_.offset(plan.kv_slot[l], b, 0);
                    std::fill_n(&key_cache_[off], (size_t)n * kv_.kv_dim, 0.0f);
                    std::fill_n(&value_cache_[off], (size_t)n * kv_.kv_dim, 0.0f);
                }
        // iteration k reads the upper K/V that iteration k-1 wrote; keep the last. Before the
        // last, only the K/V of the block's top layer (the highest source) leaves an
        // iteration: the rest of that layer's work is skipped.
        for (int it = 0; it < opt.iterations; it++) {
            std::copy(block_input_.begin(), block_input_.end(), x_.begin());
            const bool last = it == opt.iterations - 1;
            run_layers(blk.first, blk.last - 1, n, 0);
            run_layer(blk.last, n, 0, !last);
        }
        next = blk.last + 1;
    }
    run_layers(next, c.n_layers - 1, n, 0);
    finish(n, opt.all_positions);
    pos_ = n;
}

void CpuBackend::read_kv(int layer, std::vector<float>& k, std::vector<float>& v) {
    if (layer < 0 || layer >= m_.config.n_layers) fail("read_kv: no layer " + std::to_string(layer));
    const int slot = m_.plan.kv_slot[layer];
    const size_t per = (size_t)pos_ * kv_.kv_dim;
    k.resize(batch_ * per);
    v.resize(batch_ * per);
    for (int b = 0; b < batch_; b++) {
        std::copy_n(&key_cache_[kv_.offset(slot, b, 0)], per, &k[b * per]);
        std::copy_n(&value_cache_[kv_.offset(slot, b, 0)], per, &v[b * per]);
    }
}
