// The CPU reference forward pass: one-pass prefill, parallel iterative prefill of cyclic
// blocks, token-by-token prefill and decode, over a KV cache that holds KV layers only.
#pragma once
#include "src/model/backend.h"

class CpuBackend : public Backend {
public:
    CpuBackend(const Model& m, int batch, int context);

    std::string device_name() const override { return "cpu"; }
    void prefill(const int* tokens, int n, const PrefillOptions& opt) override;
    void decode(const int* tokens) override;
    const float* logits() override { return out_logits_.data(); }
    const float* hidden() override { return out_hidden_.data(); }
    int logit_positions() const override { return logit_positions_; }
    void read_kv(int layer, std::vector<float>& k, std::vector<float>& v) override;
    int batch() const override { return batch_; }
    int vocab_size() const override { return m_.config.vocab_size; }
    int context() const override { return kv_.context; }
    int pos() const override { return pos_; }
    size_t kv_cache_bytes() const override { return (key_cache_.size() + value_cache_.size()) * sizeof(float); }

    // The residual stream after the last call, (batch * rows, dim): for tests that
    // compare layer by layer.
    const std::vector<float>& residual() const { return x_; }
    // Debug, off by default: keep the residual after every layer of the last call (the last
    // iteration's inside a cyclic block), (batch * rows, dim) each, so that a test can name
    // the first layer where two backends part.
    void capture_layers(bool on) { capture_ = on; layer_out_.assign(on ? m_.config.n_layers : 0, {}); }
    const std::vector<std::vector<float>>& layer_outputs() const { return layer_out_; }

private:
    // Runs layers first..last over n new positions per sequence starting at p0.
    void run_layers(int first, int last, int n, int p0);
    // kv_only: only the layer's K/V, into its cache slot (a cyclic block's top layer before
    // the last iteration, whose output nothing reads)
    void run_layer(int layer, int n, int p0, bool kv_only = false);
    // Embeds tokens (batch, n) at positions p0.. into x_.
    void embed(const int* tokens, int n, int p0);
    // Final norm and classifier for the kept rows (all n, or the last of each sequence).
    void finish(int n, bool all_positions);
    // One token per sequence through every layer; the final norm and classifier only when
    // `with_logits` (token-by-token prefill needs them for the last position only).
    void step(const int* tokens, bool with_logits);
    void grow(int rows);

    const Model& m_;
    int batch_;
    int pos_ = 0;
    int logit_positions_ = 0;
    KVLayout kv_;
    std::vector<float> key_cache_, value_cache_;  // (kv_slot, batch, context, kv_dim)

    // run state, (rows, width) with rows = batch * new positions; grown, never shrunk
    std::vector<float> x_;            // residual stream (rows, dim)
    std::vector<float> xb_;           // normed input / branch output (rows, dim)
    std::vector<float> q_;            // (rows, q_dim)
    std::vector<float> k_, v_;        // (rows, kv_dim) of a KV layer before caching
    std::vector<float> att_;          // (rows, q_dim)
    std::vector<float> hb_, hb2_;     // (rows, hidden_dim)
    std::vector<float> block_input_;  // x_ at a cyclic block's entry, reused each iteration
    std::vector<int> positions_;      // (rows)
    std::vector<float> out_logits_;   // (batch, logit_positions, vocab)
    std::vector<float> out_hidden_;   // (batch, logit_positions, dim)
    bool capture_ = false;
    std::vector<std::vector<float>> layer_out_;  // (layer) -> (rows, dim), when capturing
};
