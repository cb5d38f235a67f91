#include "src/formats/hf_config.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <set>

// Keys that describe the checkpoint, tokenizer or generation defaults but not the forward
// pass, so reading them is not needed: PretrainedConfig's common attributes and Llama's, and
// those of published folders such as SmolLM2's: nanotron's is_llama_config marker and
// transformers.js's settings (its KV cache dtype). pretraining_tp > 1 makes transformers
// split each projection into that many slices of rows and add the partial products: the same
// sums in another order, so in fp32 it changes rounding only, not what is computed.
static const std::set<std::string> kIgnoredKeys = {
    "is_llama_config", "transformers.js_config",
    "_name_or_path", "architectures", "auto_map", "transformers_version", "torch_dtype", "use_cache",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "initializer_range", "attention_dropout", "pretraining_tp", "use_bfloat16", "return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "tokenizer_class", "id2label", "label2id",
    "max_length", "min_length", "do_sample", "temperature", "top_k", "top_p", "repetition_penalty",
    "num_beams", "num_return_sequences", "is_decoder", "is_encoder_decoder", "add_cross_attention",
    "tie_encoder_decoder", "problem_type", "finetuning_task", "prefix", "task_specific_params",
    "chunk_size_feed_forward", "pruned_heads", "tf_legacy_loss", "_attn_implementation",
    "_attn_implementation_autoset", "_flash_attn_2_enabled", "use_flash_attention_2",
};

// What a key that changes the computation needs to be for kvshare to compute it.
static void check_supported(const Json& json, const std::string& source, int hidden, int heads) {
    auto get = [&](const char* key) { return json.find(key); };
    const std::string what = source + ": ";
    if (const Json* v = get("rope_scaling"); v && !v->is(Json::Type::Null))
        fail(what + "rope_scaling is set; kvshare implements plain RoPE only");
    for (const char* key : {"attention_bias", "mlp_bias"})
        if (const Json* v = get(key); v && v->as_bool(what + key))
            fail(what + key + " is true; kvshare's Llama has no biases");
    if (const Json* v = get("hidden_act"); v && v->as_string(what + "hidden_act") != "silu")
        fail(what + "hidden_act is '" + v->text + "'; kvshare implements silu (SwiGLU) only");
    if (const Json* v = get("head_dim"); v && !v->is(Json::Type::Null) && heads > 0 && v->as_int(what + "head_dim") != hidden / heads)
        fail(what + "head_dim " + v->text + " is not hidden_size / num_attention_heads = " + std::to_string(hidden / heads) +
             "; kvshare does not implement that");
    if (const Json* v = get("quantization_config"); v && !v->is(Json::Type::Null))
        fail(what + "the weights are quantized (quantization_config); kvshare reads F32, F16 and BF16");
    // nanotron's flag for RoPE on adjacent pairs. transformers ignores it and always rotates
    // half-split pairs, so a folder that sets it was either permuted for transformers or not,
    // and nothing in it says which: refused rather than guessed.
    if (const Json* v = get("rope_interleaved"); v && !v->is(Json::Type::Null) && v->as_bool(what + "rope_interleaved"))
        fail(what + "rope_interleaved is true (RoPE on adjacent pairs, nanotron's layout), which transformers ignores; kvshare cannot "
                    "tell which pairing these weights were made for (false, or the key removed, means Hugging Face's half-split pairs)");
}

static int int_field(const Json& json, const char* key, const std::string& source, int fallback, bool required) {
    const Json* v = json.find(key);
    if (!v || v->is(Json::Type::Null)) {
        if (required) fail(source + " has no " + key);
        return fallback;
    }
    const int64_t n = v->as_int(source + ": " + key);
    if (n < -(1LL << 31) || n >= (1LL << 31)) fail(source + ": " + key + " " + v->text + " is out of range");
    return (int)n;
}

static float float_field(const Json& json, const char* key, const std::string& source, float fallback) {
    const Json* v = json.find(key);
    if (!v || v->is(Json::Type::Null)) return fallback;
    const double x = v->as_number(source + ": " + key);
    if (!std::isfinite((float)x)) fail(source + ": " + key + " " + v->text + " does not fit a float");
    return (float)x;
}

static bool bool_field(const Json& json, const char* key, const std::string& source, bool fallback) {
    const Json* v = json.find(key);
    return v && !v->is(Json::Type::Null) ? v->as_bool(source + ": " + key) : fallback;
}

Plan plan_from_layer_types(const std::string& layer_types, int n_layers, bool diag_all, const std::string& source) {
    const std::vector<std::string> parts = split(layer_types, '_');
    if ((int)parts.size() != n_layers)
        fail(source + ": layer_types '" + layer_types + "' names " + std::to_string(parts.size()) + " layers, but the model has " +
             std::to_string(n_layers));
    std::vector<int> source_map;
    for (const std::string& p : parts) {
        if (!p.empty() && p.back() == 's')
            fail(source + ": layer_types '" + layer_types + "' asks for sliding-window attention ('" + p + "'); kvshare does not implement it");
        source_map.push_back(parse_int(p, source + ": layer_types entry"));
    }
    // A chain (layer i reads j, and j reads k != j; a cycle is one too) means something else
    // in the authors' code than in a kvshare map: there a layer computes K/V whenever another
    // layer reads it, so j computes K/V for i while attending to k's (models/utils.py,
    // LayerType.computes_kv). kvshare's K/V layers attend to their own K/V (make_plan resolves
    // i -> j -> k to i -> k, another model), so it refuses rather than run a different model.
    const bool in_range = std::all_of(source_map.begin(), source_map.end(), [&](int j) { return j >= 0 && j < n_layers; });
    for (int i = 0; i < n_layers && in_range; i++) {  // (make_plan reports an index out of range)
        const int j = source_map[i];
        if (source_map[j] == j) continue;
        const std::string li = "layer " + std::to_string(i), lj = "layer " + std::to_string(j),
                          lk = "layer " + std::to_string(source_map[j]);
        fail(source + ": layer_types '" + layer_types + "': " + li + " reads " + lj + ", which reads " + lk +
             ". In the LCKV authors' code " + lj + " then computes K/V of its own for " + li + " to read, while " + lj +
             " itself attends to " + lk + "'s; kvshare's K/V layers attend to their own K/V, so it cannot run this model "
             "(resolving the chain, " + li + " reading " + lk + "'s K/V, would be a different model)");
    }
    Plan plan;
    try {
        plan = make_plan(source_map, diag_all, "lckv layer_types");
    } catch (const std::runtime_error& e) {
        fail(source + ": layer_types '" + layer_types + "': " + e.what());
    }
    return plan;
}

std::string lckv_layer_types(const Plan& plan) {
    std::string s;
    for (int i = 0; i < plan.n_layers(); i++) s += (i ? "_" : "") + std::to_string(plan.source[i]);
    return s;
}

HfConfig parse_hf_config(const Json& json, const std::string& source) {
    if (!json.is(Json::Type::Object)) fail(source + " holds " + json.type_name() + ", not an object");
    const Json* type = json.find("model_type");
    if (!type) fail(source + " has no model_type (kvshare reads \"llama\" and \"lckv-llama\")");
    const std::string model_type = type->as_string(source + ": model_type");
    const bool lckv = model_type == "lckv-llama";
    if (model_type != "llama" && !lckv)
        fail(source + ": model_type '" + model_type + "' is not supported (kvshare reads \"llama\" and \"lckv-llama\")");

    static const std::set<std::string> kRead = {
        "model_type", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
        "vocab_size", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings",
        "rope_scaling", "attention_bias", "mlp_bias", "hidden_act", "head_dim", "quantization_config", "rope_interleaved"};
    static const std::set<std::string> kLckv = {"layer_types", "forward_passes", "backward_passes", "use_sequential",
                                                "force_nodiag", "sliding_window"};
    for (const auto& m : json.members)
        if (!kRead.count(m.first) && !kIgnoredKeys.count(m.first) && !(lckv && kLckv.count(m.first)))
            fail(source + ": key '" + m.first + "' is not one kvshare knows" +
                 (kLckv.count(m.first) ? " for model_type \"llama\"" : "") + "; it might change the model, so kvshare stops");

    HfConfig h;
    Config& c = h.config;
    // LlamaConfig's defaults where a key may be absent
    c.dim = int_field(json, "hidden_size", source, 0, true);
    c.hidden_dim = int_field(json, "intermediate_size", source, 0, true);
    c.n_layers = int_field(json, "num_hidden_layers", source, 0, true);
    c.n_heads = int_field(json, "num_attention_heads", source, 0, true);
    c.n_kv_heads = int_field(json, "num_key_value_heads", source, c.n_heads, false);
    c.vocab_size = int_field(json, "vocab_size", source, 0, true);
    c.max_seq_len = int_field(json, "max_position_embeddings", source, 2048, false);
    c.rope_theta = float_field(json, "rope_theta", source, 10000.0f);
    c.norm_eps = float_field(json, "rms_norm_eps", source, 1e-6f);
    c.shared_classifier = bool_field(json, "tie_word_embeddings", source, false);
    check_supported(json, source, c.dim, c.n_heads);
    try {
        validate_config(c);
    } catch (const std::runtime_error& e) {
        fail(source + ": " + e.what());
    }

    bool diag_all = false;
    std::string layer_types;
    if (lckv) {
        h.forward_passes = int_field(json, "forward_passes", source, 7, false);
        h.backward_passes = int_field(json, "backward_passes", source, 2, false);
        if (h.forward_passes < 0 || h.backward_passes < 0 || h.forward_passes + h.backward_passes < 1 ||
            h.forward_passes + h.backward_passes > 1000)
            fail(source + ": forward_passes + backward_passes must be 1..1000");
        h.use_sequential = bool_field(json, "use_sequential", source, false);
        diag_all = bool_field(json, "force_nodiag", source, false);
        if (const Json* v = json.find("layer_types"); v && !v->is(Json::Type::Null)) layer_types = v->as_string(source + ": layer_types");
    }
    if (layer_types.empty()) {  // LCKV's default, and Llama: every layer its own KV layer
        std::vector<int> id(c.n_layers);
        for (int i = 0; i < c.n_layers; i++) id[i] = i;
        h.plan = make_plan(id, diag_all, "standard");
    } else {
        h.plan = plan_from_layer_types(layer_types, c.n_layers, diag_all, source);
    }
    return h;
}

static void set_token_ids(Json& j, const HfTokenizerFacts& tok) {
    if (tok.bos_id >= 0) j.set("bos_token_id", Json::of(tok.bos_id));
    if (tok.eos_id >= 0) j.set("eos_token_id", Json::of(tok.eos_id));
}

Json hf_config_json(const Model& m, const std::string& torch_dtype, const HfTokenizerFacts& tok) {
    const Config& c = m.config;
    const bool lckv = m.plan.n_kv_layers() != c.n_layers || m.plan.diag_all;
    Json j = Json::object();
    j.set("architectures", Json::array().add(Json::of(lckv ? "LCKVLlamaForCausalLM" : "LlamaForCausalLM")));
    j.set("model_type", Json::of(lckv ? "lckv-llama" : "llama"));
    j.set("hidden_size", Json::of(c.dim));
    j.set("intermediate_size", Json::of(c.hidden_dim));
    j.set("num_hidden_layers", Json::of(c.n_layers));
    j.set("num_attention_heads", Json::of(c.n_heads));
    j.set("num_key_value_heads", Json::of(c.n_kv_heads));
    j.set("head_dim", Json::of(c.head_size()));
    j.set("vocab_size", Json::of(c.vocab_size));
    j.set("max_position_embeddings", Json::of(c.max_seq_len));
    j.set("rope_theta", Json::of((double)c.rope_theta));
    j.set("rms_norm_eps", Json::of((double)c.norm_eps));
    j.set("tie_word_embeddings", Json::of(c.shared_classifier));
    j.set("hidden_act", Json::of("silu"));
    j.set("rope_scaling", Json::null());
    j.set("attention_bias", Json::of(false));
    j.set("mlp_bias", Json::of(false));
    set_token_ids(j, tok);
    // what AutoTokenizer opens the tokenizer with: without it, it looks the tokenizer up by
    // config class, and the authors' LCKVLlamaConfig has none
    j.set("tokenizer_class", Json::of(tok.tokenizer_class));
    j.set("torch_dtype", Json::of(torch_dtype));
    if (lckv) {
        j.set("layer_types", Json::of(lckv_layer_types(m.plan)));
        j.set("forward_passes", Json::of(m.forward_passes));
        j.set("backward_passes", Json::of(m.backward_passes));
        j.set("force_nodiag", Json::of(m.plan.diag_all));
        j.set("use_sequential", Json::of(m.sequential_prefill));
    }
    return j;
}

Json hf_generation_config_json(const HfTokenizerFacts& tok) {
    Json j = Json::object();
    set_token_ids(j, tok);
    return j;
}
