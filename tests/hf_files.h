// Hugging Face folders written by hand for the tests: a safetensors writer that writes any
// header and bytes (good or bad), W_q/W_k put in Hugging Face's half-split row order by a
// loop of the tests' own, and models whose weights every dtype holds exactly.
#pragma once
#include "src/formats/checkpoint.h"
#include "src/util.h"
#include "tests/helpers.h"
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace hf_test {

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream(path, std::ios::binary).write(bytes.data(), (std::streamsize)bytes.size());
}

inline std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

struct RawTensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
};

// A safetensors file: the header JSON written by string concatenation (not the project's
// writer), offsets in the order given, padded to 8 bytes like Hugging Face's writer.
inline std::string safetensors_bytes(const std::vector<RawTensor>& tensors, const std::string& metadata = "{\"format\":\"pt\"}") {
    std::string header = "{\"__metadata__\":" + metadata;
    size_t at = 0;
    for (const RawTensor& t : tensors) {
        header += ",\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
        for (size_t i = 0; i < t.shape.size(); i++) header += (i ? "," : "") + std::to_string(t.shape[i]);
        header += "],\"data_offsets\":[" + std::to_string(at) + "," + std::to_string(at + t.bytes.size()) + "]}";
        at += t.bytes.size();
    }
    header += "}";
    header.append((8 - header.size() % 8) % 8, ' ');
    const uint64_t n = header.size();
    std::string out((const char*)&n, 8);
    out += header;
    for (const RawTensor& t : tensors) out += t.bytes;
    return out;
}

// An fp32 value that F16 holds exactly, as F16 bits (the test models' weights are such values).
inline uint16_t exact_f16(float x) {
    const uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    const double a = std::fabs((double)x);
    if (a == 0) return sign;
    int e;
    std::frexp(a, &e);  // a = f x 2^e, f in [0.5, 1)
    e -= 1;             // a = 1.m x 2^e
    if (e < -14) {      // subnormal: a multiple of 2^-24
        const double m = std::ldexp(a, 24);
        if (m != std::floor(m)) FAIL("not exact in F16: " << x);
        return (uint16_t)(sign | (uint16_t)m);
    }
    const double m = (std::ldexp(a, -e) - 1.0) * 1024.0;
    if (m != std::floor(m) || e > 15) FAIL("not exact in F16: " << x);
    return (uint16_t)(sign | (uint16_t)((e + 15) << 10) | (uint16_t)m);
}

// Floats as the bytes of dtype F32, F16 or BF16 (the values must be exact in that dtype).
inline std::string as_dtype(const float* x, size_t n, const std::string& dtype) {
    std::string out;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        std::memcpy(&bits, &x[i], 4);
        if (dtype == "F32") out.append((const char*)&bits, 4);
        else {
            uint16_t h = dtype == "BF16" ? (uint16_t)(bits >> 16) : exact_f16(x[i]);
            if (dtype == "BF16" && (bits & 0xFFFF) != 0) FAIL("not exact in BF16: " << x[i]);
            out.append((const char*)&h, 2);
        }
    }
    return out;
}

// Rows (heads * head_size, cols) from kvshare's adjacent pairs into Hugging Face's half-split
// order: within each head, HF row j < half is adjacent row 2j, HF row half + j is row 2j + 1.
inline std::vector<float> to_hf_rows(const float* w, int heads, int head_size, int cols) {
    std::vector<float> out((size_t)heads * head_size * cols);
    const int half = head_size / 2;
    for (int h = 0; h < heads; h++)
        for (int j = 0; j < head_size; j++) {
            const int from = j < half ? 2 * j : 2 * (j - half) + 1;
            std::memcpy(&out[((size_t)h * head_size + j) * cols], w + ((size_t)h * head_size + from) * cols, cols * sizeof(float));
        }
    return out;
}

// Every tensor of m under its Hugging Face name, in dtype, with W_q/W_k in HF row order;
// layers that own no K/V get no k_proj/v_proj (LCKV's layout).
inline std::vector<RawTensor> hf_tensors(const Model& m, const std::string& dtype) {
    const Config& c = m.config;
    const Weights& w = m.weights;
    const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, QD = c.q_dim(), KD = c.kv_dim();
    auto name = [](int l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest + ".weight"; };
    std::vector<RawTensor> t;
    t.push_back({"model.embed_tokens.weight", dtype, {V, D}, as_dtype(w.token_embedding.data(), V * D, dtype)});
    for (int l = 0; l < c.n_layers; l++) {
        const std::vector<float> q = to_hf_rows(w.wq.data() + l * QD * D, c.n_heads, c.head_size(), c.dim);
        t.push_back({name(l, "self_attn.q_proj"), dtype, {QD, D}, as_dtype(q.data(), q.size(), dtype)});
        if (m.plan.owns_kv(l)) {
            const size_t slot = m.plan.kv_slot[l];
            const std::vector<float> k = to_hf_rows(w.wk.data() + slot * KD * D, c.n_kv_heads, c.head_size(), c.dim);
            t.push_back({name(l, "self_attn.k_proj"), dtype, {KD, D}, as_dtype(k.data(), k.size(), dtype)});
            t.push_back({name(l, "self_attn.v_proj"), dtype, {KD, D}, as_dtype(w.wv.data() + slot * KD * D, KD * D, dtype)});
        }
        t.push_back({name(l, "self_attn.o_proj"), dtype, {D, QD}, as_dtype(w.wo.data() + l * D * QD, D * QD, dtype)});
        t.push_back({name(l, "mlp.gate_proj"), dtype, {H, D}, as_dtype(w.w1.data() + l * H * D, H * D, dtype)});
        t.push_back({name(l, "mlp.up_proj"), dtype, {H, D}, as_dtype(w.w3.data() + l * H * D, H * D, dtype)});
        t.push_back({name(l, "mlp.down_proj"), dtype, {D, H}, as_dtype(w.w2.data() + l * D * H, D * H, dtype)});
        t.push_back({name(l, "input_layernorm"), dtype, {D}, as_dtype(w.rms_att.data() + l * D, D, dtype)});
        t.push_back({name(l, "post_attention_layernorm"), dtype, {D}, as_dtype(w.rms_ffn.data() + l * D, D, dtype)});
    }
    t.push_back({"model.norm.weight", dtype, {D}, as_dtype(w.rms_final.data(), D, dtype)});
    if (!c.shared_classifier) t.push_back({"lm_head.weight", dtype, {V, D}, as_dtype(w.wcls.data(), V * D, dtype)});
    return t;
}

// config.json as Hugging Face writes a Llama's; `extra` adds members (",\"key\": value").
inline std::string config_json(const Config& c, const std::string& model_type = "llama", const std::string& extra = "") {
    return "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"" + model_type + "\",\n" +
           "  \"hidden_size\": " + std::to_string(c.dim) + ",\n  \"intermediate_size\": " + std::to_string(c.hidden_dim) +
           ",\n  \"num_hidden_layers\": " + std::to_string(c.n_layers) + ",\n  \"num_attention_heads\": " + std::to_string(c.n_heads) +
           ",\n  \"num_key_value_heads\": " + std::to_string(c.n_kv_heads) + ",\n  \"vocab_size\": " + std::to_string(c.vocab_size) +
           ",\n  \"max_position_embeddings\": " + std::to_string(c.max_seq_len) + ",\n  \"rope_theta\": 10000.0,\n" +
           "  \"rms_norm_eps\": 1e-05,\n  \"tie_word_embeddings\": " + (c.shared_classifier ? "true" : "false") +
           ",\n  \"hidden_act\": \"silu\",\n  \"rope_scaling\": null,\n  \"torch_dtype\": \"bfloat16\",\n" +
           "  \"transformers_version\": \"4.45.0\",\n  \"use_cache\": true,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2" + extra +
           "\n}\n";
}

// A fresh folder in the temp directory.
inline std::string fresh_dir(const std::string& name) {
    const std::string dir = temp_path(name);
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    return dir;
}

// The folder: config.json, model.safetensors in dtype (or `shards` files with an index).
inline void write_folder(const std::string& dir, const Model& m, const std::string& dtype, const std::string& config, int shards = 1) {
    write_bytes(dir + "/config.json", config);
    const std::vector<RawTensor> t = hf_tensors(m, dtype);
    if (shards == 1) {
        write_bytes(dir + "/model.safetensors", safetensors_bytes(t));
        return;
    }
    std::string index = "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {";
    for (int s = 0; s < shards; s++) {
        char file[64];
        std::snprintf(file, sizeof file, "model-%05d-of-%05d.safetensors", s + 1, shards);
        std::vector<RawTensor> part;
        for (size_t i = s; i < t.size(); i += shards) {  // dealt round-robin: every shard holds a mix
            part.push_back(t[i]);
            index += std::string(index.back() == '{' ? "" : ",") + "\n  \"" + t[i].name + "\": \"" + file + "\"";
        }
        write_bytes(dir + "/" + file, safetensors_bytes(part));
    }
    write_bytes(dir + "/model.safetensors.index.json", index + "\n}}\n");
}

// The tiny test shape with grouped-query heads, and weights on a grid every dtype holds
// exactly: matrices k x 2^-12 with |k| <= 255 (8 significant bits: BF16's), norm gains 1 + k/128.
inline Model grid_model(const std::string& plan, bool tied, uint64_t seed, int layers = 4) {
    Config c = preset_config("tiny");
    c.n_layers = layers;
    c.shared_classifier = tied;
    Model m = init_model(c, parse_plan(plan, layers), seed);
    Rng rng(seed + 100);
    Weights& w = m.weights;
    for (auto* t : {&w.token_embedding, &w.wq, &w.wk, &w.wv, &w.wo, &w.w1, &w.w2, &w.w3, &w.wcls})
        for (float& x : *t) x = std::ldexp((float)std::max(-255L, std::min(255L, std::lround(std::ldexp(x, 12)))), -12);
    for (auto* t : {&w.rms_att, &w.rms_ffn, &w.rms_final})
        for (float& x : *t) x = 1.0f + (float)((int)(rng.next_u32() % 64) - 32) / 128.0f;
    m.random_weights = false;
    return m;
}

}  // namespace hf_test
