// Hugging Face's config.json for Llama ("llama") and the LCKV authors' "lckv-llama", read
// into kvshare's Config, sharing plan and prefill defaults, and written back for export.
//
// LCKV's layer_types "0_20_20_..._21": entry i is the layer whose K/V layer i reads, which is
// kvshare's source map; an "s" suffix (sliding-window attention) is rejected, and so is a chain
// (i reads j, which reads another layer), which the authors' code computes differently
// (walkthrough 9.5). force_nodiag is
// diag=all; forward_passes + backward_passes is the default prefill iteration count T;
// use_sequential prefills token by token.
//
// Keys that would change what the model computes and that the engine does not implement
// (rope_scaling, attention or MLP bias, an activation other than silu, a head_dim other than
// hidden_size / num_attention_heads, quantization, rope_interleaved true, another model_type)
// are errors, and so is any key kvshare does not know: a silent wrong answer is worse than a
// refusal.
#pragma once
#include "src/formats/json.h"
#include "src/model/model.h"
#include <string>

struct HfConfig {
    Config config;
    Plan plan;
    int forward_passes = 7, backward_passes = 2;
    bool use_sequential = false;
};

// `source` names the file in errors.
HfConfig parse_hf_config(const Json& json, const std::string& source);

// What config.json and generation_config.json say of the tokenizer written beside them: the
// defaults are SentencePiece's Llama layout (kvshare's own tokenizers, llama2.c's); a
// byte-level one (tokenizer.json) has its own ids and Hugging Face's fast tokenizer class.
struct HfTokenizerFacts {
    int bos_id = 1, eos_id = 2;  // -1: none, and the key is not written
    std::string tokenizer_class = "LlamaTokenizer";
};

// config.json for a model: "llama" for the standard plan without diag=all, else "lckv-llama"
// with layer_types, forward_passes, backward_passes, force_nodiag and use_sequential.
// torch_dtype names the dtype the weights are stored in ("float32" or "bfloat16").
Json hf_config_json(const Model& m, const std::string& torch_dtype, const HfTokenizerFacts& tok = {});

// generation_config.json: the BOS and EOS ids, which generate() stops at.
Json hf_generation_config_json(const HfTokenizerFacts& tok = {});

// A plan as LCKV's layer_types string ("0_0_2_2"), and back.
std::string lckv_layer_types(const Plan& plan);
Plan plan_from_layer_types(const std::string& layer_types, int n_layers, bool diag_all, const std::string& source);
