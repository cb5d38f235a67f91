// A model = config + sharing plan + weights. Only KV layers own W_K and W_V.
#pragma once
#include "src/model/config.h"
#include "src/model/plan.h"
#include <string>
#include <vector>

struct Weights {
    std::vector<float> token_embedding;  // (vocab_size, dim)
    std::vector<float> rms_att;          // (layer, dim)
    std::vector<float> wq;               // (layer, n_heads * head_size, dim)
    std::vector<float> wk;               // (kv_layer, n_kv_heads * head_size, dim)
    std::vector<float> wv;               // (kv_layer, n_kv_heads * head_size, dim)
    std::vector<float> wo;               // (layer, dim, n_heads * head_size)
    std::vector<float> rms_ffn;          // (layer, dim)
    std::vector<float> w1;               // (layer, hidden_dim, dim)  gate
    std::vector<float> w2;               // (layer, dim, hidden_dim)  down
    std::vector<float> w3;               // (layer, hidden_dim, dim)  up
    std::vector<float> rms_final;        // (dim)
    std::vector<float> wcls;             // (vocab_size, dim); empty when tied to token_embedding

    // Every tensor in file order, with its element count, for I/O and optimizers.
    std::vector<std::vector<float>*> tensors();
};

struct Model {
    Config config;
    Plan plan;
    Weights weights;
    bool random_weights = false;  // made by init and never trained: its text is noise

    const float* classifier() const {
        return config.shared_classifier ? weights.token_embedding.data() : weights.wcls.data();
    }
    size_t n_params() const;
};

// Allocates every tensor with the sizes the config and plan imply (zero filled), after
// checking that they fit the memory available (src/model/memory.h).
void allocate_weights(Model& m);

// Random weights: N(0, 0.02) matrices (output projections scaled by 1/sqrt(2 L)), unit norms.
Model init_model(const Config& c, const Plan& plan, uint64_t seed);

// Re-plan a loaded model, keeping the K/V weights of the new plan's KV layers.
Model apply_plan(const Model& m, const Plan& plan);
// apply_plan's checks alone (the layer count; the K/V weights of the plan's KV layers),
// for callers that want every plan's error before any work.
void check_plan_applies(const Model& m, const Plan& plan);
