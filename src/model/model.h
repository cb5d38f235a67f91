// A model = config + sharing plan + weights. Only KV layers own W_K and W_V.
#pragma once
#include "src/model/config.h"
#include "src/model/plan.h"
#include "src/model/tensor.h"
#include "src/text/tokenizer_spec.h"
#include <memory>
#include <string>
#include <vector>

// Each tensor owns its floats or borrows them from a mapped checkpoint (src/model/tensor.h).
struct Weights {
    Tensor token_embedding; // (vocab_size, dim)
    Tensor rms_att;         // (layer, dim)
    Tensor wq;              // (layer, n_heads * head_size, dim)
    Tensor wk;              // (kv_layer, n_kv_heads * head_size, dim)
    Tensor wv;              // (kv_layer, n_kv_heads * head_size, dim)
    Tensor wo;              // (layer, dim, n_heads * head_size)
    Tensor rms_ffn;         // (layer, dim)
    Tensor w1;              // (layer, hidden_dim, dim)  gate
    Tensor w2;              // (layer, dim, hidden_dim)  down
    Tensor w3;              // (layer, hidden_dim, dim)  up
    Tensor rms_final;       // (dim)
    Tensor wcls;            // (vocab_size, dim); empty when tied to token_embedding

    // Every tensor in file order, with its element count, for I/O and optimizers.
    std::vector<Tensor*> tensors();
};

struct Model {
    Config config;
    Plan plan;
    Weights weights;
    bool random_weights = false;  // made by init and never trained: its text is noise
    // How prefill iterates unless --prefill says otherwise: LCKV's forward_passes m and
    // backward_passes b (T = m + b iterations per cyclic block) and use_sequential (token by
    // token), as a Hugging Face LCKV config gives them; the defaults are LCKV's.
    int forward_passes = 7, backward_passes = 2;
    bool sequential_prefill = false;
    std::string tokenizer_path{};  // the tokenizer the checkpoint came with (a folder's tokenizer.model), or ""
    std::string folder{};          // the Hugging Face folder it was loaded from, or "": its tokenizer and generation files
    // A tokenizer held inside the checkpoint (a GGUF file's metadata), or null.
    std::shared_ptr<const TokenizerSpec> tokenizer_spec{};

    const float* classifier() const {
        return config.shared_classifier ? weights.token_embedding.data() : weights.wcls.data();
    }
    size_t n_params() const;
};

// The floats of each tensor of Weights::tensors(), in that order, as the config and the
// number of KV layers imply, allocating nothing: loaders check a file against these before
// taking any memory, and weight_bytes (memory.h) sums them.
std::vector<size_t> weight_sizes(const Config& c, int n_kv_layers);

// Allocates every tensor with the sizes the config and plan imply (zero filled), after
// checking that they fit the memory available (src/model/memory.h).
void allocate_weights(Model& m);

// Random weights: N(0, 0.02) matrices (output projections scaled by 1/sqrt(2 L)), unit norms.
Model init_model(const Config& c, const Plan& plan, uint64_t seed);

// Re-plan a model, keeping the K/V weights of the new plan's KV layers. Takes the model by
// value: pass std::move(m) and its tensors move (a mapped file stays mapped, not copied).
Model apply_plan(Model m, const Plan& plan);
// apply_plan's checks alone (the layer count; the K/V weights of the plan's KV layers),
// for callers that want every plan's error before any work.
void check_plan_applies(const Model& m, const Plan& plan);
