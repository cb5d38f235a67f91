// The model's hyperparameters, shared by every path.
#pragma once
#include <string>

struct Config {
    int dim = 0;          // transformer width
    int hidden_dim = 0;   // SwiGLU inner width
    int n_layers = 0;
    int n_heads = 0;      // query heads
    int n_kv_heads = 0;   // key/value heads (grouped-query attention), divides n_heads
    int vocab_size = 0;
    int max_seq_len = 0;
    float rope_theta = 10000.0f;
    float norm_eps = 1e-5f;
    bool shared_classifier = true;  // classifier tied to the token embedding

    int head_size() const { return dim / n_heads; }
    int q_dim() const { return n_heads * head_size(); }
    int kv_dim() const { return n_kv_heads * head_size(); }
};

// Throws std::runtime_error naming the first field that makes no sense.
void validate_config(const Config& c);

// Named shapes for `kvshare init --preset`.
Config preset_config(const std::string& name);
std::string preset_names();
