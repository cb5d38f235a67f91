// The GPU forward pass: the same scenario as the CPU reference (reference/forward.h) on
// the hand-written kernels of cuda/kernels.h. One-pass prefill, parallel iterative prefill
// of cyclic blocks run entirely on the device, token-by-token prefill and batched decode,
// over a device KV cache that holds KV layers only.
//
// No CUDA types here: g++ code (tests, make_backend) includes this header.
#pragma once
#include "src/model/backend.h"
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

// A device array that only grows (reserve); freed with its owner. Its contents are lost
// when it grows, so it grows only before a pass starts writing it.
template <typename T>
class DeviceArray {
public:
    DeviceArray() = default;
    ~DeviceArray();
    DeviceArray(const DeviceArray&) = delete;
    DeviceArray& operator=(const DeviceArray&) = delete;

    // At least n elements; a new allocation is filled with 0xFF bytes (NaN for floats), so
    // that reading what no kernel wrote shows up in the tests.
    void reserve(size_t n);
    // Exactly the host data (n elements), reserving first.
    void upload(const T* host, size_t n);
    void zero();  // every allocated element

    T* get() const { return p_; }
    size_t size() const { return n_; }
    void swap(DeviceArray& o) noexcept {
        std::swap(p_, o.p_);
        std::swap(n_, o.n_);
    }

private:
    T* p_ = nullptr;
    size_t n_ = 0;  // elements allocated
};

// The weights on the device, shapes as in src/model/model.h. Only KV layers own W_K and W_V.
struct GpuWeights {
    DeviceArray<float> token_embedding;  // (vocab_size, dim)
    DeviceArray<float> rms_att;          // (layer, dim)
    DeviceArray<float> wq;               // (layer, q_dim, dim)
    DeviceArray<float> wk;               // (kv_layer, kv_dim, dim)
    DeviceArray<float> wv;               // (kv_layer, kv_dim, dim)
    DeviceArray<float> wo;               // (layer, dim, q_dim)
    DeviceArray<float> rms_ffn;          // (layer, dim)
    DeviceArray<float> w1;               // (layer, hidden_dim, dim)  gate
    DeviceArray<float> w2;               // (layer, dim, hidden_dim)  down
    DeviceArray<float> w3;               // (layer, hidden_dim, dim)  up
    DeviceArray<float> rms_final;        // (dim)
    DeviceArray<float> wcls;             // (vocab_size, dim); empty when tied
    const float* classifier = nullptr;   // wcls, or token_embedding when tied
};

// Activations of one pass, (rows, width) with rows = batch * new positions per sequence;
// grown, never shrunk.
struct GpuRunState {
    DeviceArray<float> x;            // residual stream (rows, dim)
    DeviceArray<float> xb;           // normed input / branch output (rows, dim)
    DeviceArray<float> q;            // (rows, q_dim)
    DeviceArray<float> k, v;         // (rows, kv_dim) of a KV layer before caching
    DeviceArray<float> att;          // (rows, q_dim)
    DeviceArray<float> hb, hb2;      // (rows, hidden_dim)
    DeviceArray<float> block_input;  // x at a cyclic block's entry, restored every iteration
    DeviceArray<float> decode_work;  // split decode's partials: attention_decode_workspace_floats
    DeviceArray<int> tokens;         // (rows)
    DeviceArray<int> positions;      // (rows)
    DeviceArray<float> hidden;       // (batch, logit_positions, dim) after the final norm
    DeviceArray<float> logits;       // (batch, logit_positions, vocab)
    DeviceArray<float> all_hidden;   // token-by-token prefill keeping every position:
    DeviceArray<float> all_logits;   //   (batch, n, width), gathered one column per token
};

class CudaBackend : public Backend {
public:
    CudaBackend(const Model& m, int batch, int context);
    ~CudaBackend() override = default;  // the DeviceArrays free themselves
    CudaBackend(const CudaBackend&) = delete;
    CudaBackend& operator=(const CudaBackend&) = delete;

    std::string device_name() const override { return device_name_; }
    void prefill(const int* tokens, int n, const PrefillOptions& opt) override;
    void decode(const int* tokens) override;
    const float* logits() override;  // copied to the host on first use after each call
    const float* hidden() override;
    int logit_positions() const override { return logit_positions_; }
    void read_kv(int layer, std::vector<float>& k, std::vector<float>& v) override;
    int batch() const override { return batch_; }
    int context() const override { return kv_.context; }
    int pos() const override { return pos_; }
    size_t kv_cache_bytes() const override { return (key_cache_.size() + value_cache_.size()) * sizeof(float); }

    // For tests that compare layer by layer (like CpuBackend::residual()): the residual
    // stream after the last call, (batch * rows, dim), copied from the device.
    std::vector<float> residual() const;
    // Debug, off by default: keep the residual after every layer of the last call (the last
    // iteration's inside a cyclic block), (batch * rows, dim) each. Copies every layer's
    // output to the host as it goes, so it is slow and syncs: for tests only.
    void capture_layers(bool on);
    const std::vector<std::vector<float>>& layer_outputs() const { return layer_out_; }

private:
    // Runs layers first..last over n new positions per sequence starting at p0.
    void run_layers(int first, int last, int n, int p0);
    void run_layer(int layer, int n, int p0);
    // Writes a KV layer's new K/V rows (batch, n, kv_dim) to its slot at positions p0...
    void store_kv(int slot, int n, int p0);
    // Embeds tokens (batch, n) at positions p0.. into x (the only host-to-device copy).
    void embed(const int* tokens, int n, int p0);
    // Final norm and classifier for the kept rows (all n, or the last of each sequence).
    void finish(int n, bool all_positions);
    // One token per sequence through every layer; the final norm and classifier only when
    // `with_logits` (token-by-token prefill needs them for the last position only).
    void step(const int* tokens, bool with_logits);
    void grow(size_t rows);
    float* key_slot(int slot) const { return key_cache_.get() + kv_.offset(slot, 0, 0); }
    float* value_slot(int slot) const { return value_cache_.get() + kv_.offset(slot, 0, 0); }

    Config config_;  // copies: the backend does not keep the Model alive
    Plan plan_;
    int batch_;
    int pos_ = 0;
    int rows_ = 0;  // batch * new positions of the last call
    int logit_positions_ = 0;
    std::string device_name_;

    GpuWeights w_;
    GpuRunState s_;
    KVLayout kv_;
    DeviceArray<float> key_cache_, value_cache_;  // (kv_slot, batch, context, kv_dim)

    // host copies of the results, made when asked for
    std::vector<float> host_logits_, host_hidden_;
    bool host_logits_fresh_ = false, host_hidden_fresh_ = false;

    bool capture_ = false;
    std::vector<std::vector<float>> layer_out_;
};
