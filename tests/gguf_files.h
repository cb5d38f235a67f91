// GGUF files written by hand for the tests: a writer of the tests' own (not the project's
// reader run backwards) that can write any value, good or bad, and records where each header
// field lies so the fuzz test can damage them one by one; block encoders that pack chosen
// integer codes and scales into each ggml block type and say what the values must be; and
// a Llama GGUF from a Model with every tensor in one type.
#pragma once
#include "src/model/model.h"
#include "src/util.h"
#include "tests/hf_files.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

namespace gguf_test {

// ggml type numbers, as the file stores them
enum : uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30 };
inline const std::vector<uint32_t>& all_types() {
    static const std::vector<uint32_t> t = {F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K};
    return t;
}
inline size_t block_values(uint32_t t) { return t == F32 || t == F16 || t == BF16 ? 1 : t >= Q4_K && t <= Q6_K ? 256 : 32; }
// metadata value types
enum : uint32_t { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, VF32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12 };

template <class T> std::string pod(T v) { return std::string((const char*)&v, sizeof v); }
inline std::string gstr(const std::string& s) { return pod<uint64_t>(s.size()) + s; }

// One metadata entry: key, value type and the value's bytes as the file holds them.
struct Kv {
    std::string key;
    uint32_t type;
    std::string payload;
};
inline Kv kv_u32(const std::string& k, uint32_t v) { return {k, U32, pod(v)}; }
inline Kv kv_i32(const std::string& k, int32_t v) { return {k, I32, pod(v)}; }
inline Kv kv_u64(const std::string& k, uint64_t v) { return {k, U64, pod(v)}; }
inline Kv kv_f32(const std::string& k, float v) { return {k, VF32, pod(v)}; }
inline Kv kv_bool(const std::string& k, bool v) { return {k, BOOL, std::string(1, v ? 1 : 0)}; }
inline Kv kv_str(const std::string& k, const std::string& v) { return {k, STRING, gstr(v)}; }
inline Kv kv_strings(const std::string& k, const std::vector<std::string>& v) {
    std::string p = pod<uint32_t>(STRING) + pod<uint64_t>(v.size());
    for (const std::string& s : v) p += gstr(s);
    return {k, ARRAY, p};
}
inline Kv kv_floats(const std::string& k, const std::vector<float>& v) {
    std::string p = pod<uint32_t>(VF32) + pod<uint64_t>(v.size());
    for (float x : v) p += pod(x);
    return {k, ARRAY, p};
}
inline Kv kv_ints(const std::string& k, const std::vector<int32_t>& v) {
    std::string p = pod<uint32_t>(I32) + pod<uint64_t>(v.size());
    for (int32_t x : v) p += pod(x);
    return {k, ARRAY, p};
}

struct TensorOut {
    std::string name;
    std::vector<uint64_t> ne;  // fastest first
    uint32_t type;
    std::string data;
};

// Where a field of the header lies, for the fuzz test.
struct Field {
    std::string what;
    size_t offset, bytes;
};

struct GgufBytes {
    std::string bytes;
    std::vector<Field> fields;  // every count, length, type, dimension and offset
};

// The whole file: header, metadata, tensor infos, padding, data (each tensor padded to the
// alignment, offsets in the order given). general.alignment is written when it is not 32.
inline GgufBytes gguf_bytes(std::vector<Kv> kvs, const std::vector<TensorOut>& tensors, uint32_t version = 3, uint32_t alignment = 32) {
    if (alignment != 32) kvs.insert(kvs.begin(), kv_u32("general.alignment", alignment));
    GgufBytes g;
    std::string& b = g.bytes;
    auto field = [&](const std::string& what, const std::string& bytes) {
        g.fields.push_back({what, b.size(), bytes.size()});
        b += bytes;
    };
    b = "GGUF";
    field("version", pod(version));
    field("tensor count", pod<uint64_t>(tensors.size()));
    field("metadata count", pod<uint64_t>(kvs.size()));
    for (const Kv& kv : kvs) {
        field(kv.key + " key length", pod<uint64_t>(kv.key.size()));
        b += kv.key;
        field(kv.key + " type", pod(kv.type));
        if (kv.type == ARRAY) {
            g.fields.push_back({kv.key + " element type", b.size(), 4});
            g.fields.push_back({kv.key + " element count", b.size() + 4, 8});
        } else if (kv.type == STRING) {
            g.fields.push_back({kv.key + " string length", b.size(), 8});
        }
        b += kv.payload;
    }
    size_t at = 0;
    std::vector<size_t> offsets;
    for (const TensorOut& t : tensors) {
        offsets.push_back(at);
        at += (t.data.size() + alignment - 1) / alignment * alignment;
    }
    for (size_t i = 0; i < tensors.size(); i++) {
        const TensorOut& t = tensors[i];
        field(t.name + " name length", pod<uint64_t>(t.name.size()));
        b += t.name;
        field(t.name + " dimension count", pod<uint32_t>(t.ne.size()));
        for (uint64_t n : t.ne) field(t.name + " dimension", pod(n));
        field(t.name + " type", pod(t.type));
        field(t.name + " offset", pod<uint64_t>(offsets[i]));
    }
    b.append((alignment - b.size() % alignment) % alignment, '\0');
    for (const TensorOut& t : tensors) {
        b += t.data;
        b.append((alignment - b.size() % alignment) % alignment, '\0');
    }
    return g;
}

// ---- block encoders: chosen codes and scales in, block bytes and the values they mean out

inline uint16_t f16_bits_of(float x) { return hf_test::exact_f16(x); }
inline float f16_value(uint16_t h) {  // test-side f16 decode, normal and subnormal numbers only
    const int e = (h >> 10) & 31, m = h & 1023;
    const float mag = e == 0 ? std::ldexp((float)m, -24) : std::ldexp((float)(1024 + m), e - 25);
    return h & 0x8000 ? -mag : mag;
}

// The values of one block as its codes say: x[j] for j in the block.
struct QuantBlock {
    std::string bytes;
    std::vector<float> values;
};

// Q8_0: d, int8 codes.
inline QuantBlock q8_0_block(uint16_t d, const int8_t q[32]) {
    QuantBlock b{pod(d), {}};
    for (int j = 0; j < 32; j++) {
        b.bytes += (char)q[j];
        b.values.push_back(f16_value(d) * (float)q[j]);
    }
    return b;
}

// Q4_0 (with_min false: x = d (q - 8)) and Q4_1 (x = d q + m): codes 0..15.
inline QuantBlock q4_block(bool with_min, uint16_t d, uint16_t m, const uint8_t q[32]) {
    QuantBlock b{pod(d) + (with_min ? pod(m) : ""), std::vector<float>(32)};
    for (int j = 0; j < 16; j++) b.bytes += (char)(q[j] | q[j + 16] << 4);
    for (int j = 0; j < 32; j++) b.values[j] = with_min ? f16_value(d) * (float)q[j] + f16_value(m) : f16_value(d) * (float)(q[j] - 8);
    return b;
}

// Q5_0 (x = d (q - 16)) and Q5_1 (x = d q + m): codes 0..31, the fifth bits gathered in qh.
inline QuantBlock q5_block(bool with_min, uint16_t d, uint16_t m, const uint8_t q[32]) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) qh |= (uint32_t)(q[j] >> 4) << j;
    QuantBlock b{pod(d) + (with_min ? pod(m) : "") + pod(qh), std::vector<float>(32)};
    for (int j = 0; j < 16; j++) b.bytes += (char)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int j = 0; j < 32; j++) b.values[j] = with_min ? f16_value(d) * (float)q[j] + f16_value(m) : f16_value(d) * (float)(q[j] - 16);
    return b;
}

// Q4_K (five_bits false, codes 0..15) and Q5_K (codes 0..31): 8 sub-blocks of 32 with 6-bit
// scales sc and minimums mn; x = (d sc) q - (dmin mn).
inline QuantBlock qk_block(bool five_bits, uint16_t d, uint16_t dmin, const uint8_t sc[8], const uint8_t mn[8], const uint8_t q[256]) {
    uint8_t scales[12] = {};
    for (int s = 0; s < 4; s++) {
        scales[s] = (uint8_t)((sc[s] & 63) | (sc[s + 4] >> 4) << 6);
        scales[s + 4] = (uint8_t)((mn[s] & 63) | (mn[s + 4] >> 4) << 6);
        scales[s + 8] = (uint8_t)((sc[s + 4] & 15) | (mn[s + 4] & 15) << 4);
    }
    QuantBlock b{pod(d) + pod(dmin) + std::string((const char*)scales, 12), std::vector<float>(256)};
    if (five_bits) {
        uint8_t qh[32] = {};
        for (int v = 0; v < 256; v++) qh[v % 32] |= (uint8_t)((q[v] >> 4) << (v / 32));
        b.bytes += std::string((const char*)qh, 32);
    }
    for (int pair = 0; pair < 4; pair++)  // sub-blocks 2 pair and 2 pair + 1 share 32 bytes
        for (int l = 0; l < 32; l++) b.bytes += (char)((q[64 * pair + l] & 15) | (q[64 * pair + 32 + l] & 15) << 4);
    for (int v = 0; v < 256; v++) {
        const int s = v / 32;
        b.values[v] = f16_value(d) * (float)sc[s] * (float)q[v] - f16_value(dmin) * (float)mn[s];
    }
    return b;
}

// Q6_K: codes 0..63, 16 int8 scales of 16 values; x = (d sc) (q - 32).
inline QuantBlock q6_k_block(uint16_t d, const int8_t sc[16], const uint8_t q[256]) {
    uint8_t ql[128] = {}, qh[64] = {};
    for (int v = 0; v < 256; v++) {
        const int half = v / 128, g = (v % 128) / 32, l = v % 32;
        ql[64 * half + 32 * (g % 2) + l] |= (uint8_t)((q[v] & 15) << (g < 2 ? 0 : 4));
        qh[32 * half + l] |= (uint8_t)((q[v] >> 4) << (2 * g));
    }
    QuantBlock b{std::string((const char*)ql, 128) + std::string((const char*)qh, 64) + std::string((const char*)sc, 16) + pod(d),
            std::vector<float>(256)};
    for (int v = 0; v < 256; v++) b.values[v] = f16_value(d) * (float)sc[v / 16] * (float)(q[v] - 32);
    return b;
}

// A random f16 scale of magnitude about `size` (at least 2^-16), 8 significant bits, so f16
// holds it exactly; its sign random.
inline uint16_t random_scale(Rng& rng, float size) {
    const int e = (int)std::floor(std::log2(size));
    const float x = std::ldexp((float)(64 + rng.next_u32() % 192), e - 7) * (rng.next_u32() % 2 ? -1.0f : 1.0f);
    return hf_test::exact_f16(x);
}

// n values of `type` with random codes and scales near `size`: the bytes and their values.
inline QuantBlock random_blocks(uint32_t type, size_t n, Rng& rng, float size) {
    QuantBlock out;
    auto codes = [&](uint8_t* q, int count, int bits) {
        for (int j = 0; j < count; j++) q[j] = (uint8_t)(rng.next_u32() % (1u << bits));
    };
    for (size_t done = 0; done < n; done += block_values(type)) {
        QuantBlock b;
        uint8_t q[256], sc[8], mn[8];
        if (type == F32 || type == F16 || type == BF16) {
            // 8 significant bits, so every one of the three holds it (size a power of two)
            const float x = std::ldexp((float)((int)(rng.next_u32() % 511) - 255), -8) * size;
            b.values = {x};
            b.bytes = hf_test::as_dtype(&x, 1, type == F32 ? "F32" : type == F16 ? "F16" : "BF16");
        } else if (type == Q8_0) {
            int8_t s[32];
            for (int8_t& v : s) v = (int8_t)(rng.next_u32() % 256);
            b = q8_0_block(random_scale(rng, size / 64), s);
        } else if (type == Q4_0 || type == Q4_1) {
            codes(q, 32, 4);
            b = q4_block(type == Q4_1, random_scale(rng, size / 8), random_scale(rng, size), q);
        } else if (type == Q5_0 || type == Q5_1) {
            codes(q, 32, 5);
            b = q5_block(type == Q5_1, random_scale(rng, size / 16), random_scale(rng, size), q);
        } else if (type == Q4_K || type == Q5_K) {
            codes(q, 256, type == Q5_K ? 5 : 4);
            codes(sc, 8, 6);
            codes(mn, 8, 6);
            b = qk_block(type == Q5_K, random_scale(rng, size / 512), random_scale(rng, size / 64), sc, mn, q);
        } else {  // Q6_K
            int8_t s[16];
            for (int8_t& v : s) v = (int8_t)(rng.next_u32() % 256);
            codes(q, 256, 6);
            b = q6_k_block(random_scale(rng, size / 2048), s, q);
        }
        out.bytes += b.bytes;
        out.values.insert(out.values.end(), b.values.begin(), b.values.end());
    }
    return out;
}

// ---- a Llama GGUF from a model

// llama.* metadata for c (the vocabulary is token_embd's).
inline std::vector<Kv> llama_keys(const Config& c) {
    return {kv_str("general.architecture", "llama"),
            kv_str("general.name", "a test model"),
            kv_u32("llama.context_length", (uint32_t)c.max_seq_len),
            kv_u32("llama.embedding_length", (uint32_t)c.dim),
            kv_u32("llama.block_count", (uint32_t)c.n_layers),
            kv_u32("llama.feed_forward_length", (uint32_t)c.hidden_dim),
            kv_u32("llama.attention.head_count", (uint32_t)c.n_heads),
            kv_u32("llama.attention.head_count_kv", (uint32_t)c.n_kv_heads),
            kv_f32("llama.rope.freq_base", c.rope_theta),
            kv_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps),
            kv_u32("llama.rope.dimension_count", (uint32_t)c.head_size())};
}

// Every tensor of m (standard plan) under its GGUF name, as F32, in kvshare's row order,
// which is llama.cpp's (W_q/W_k rows in adjacent RoPE pairs).
inline std::vector<TensorOut> llama_tensors(const Model& m) {
    const Config& c = m.config;
    const Weights& w = m.weights;
    const uint64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, QD = c.q_dim(), KD = c.kv_dim();
    auto f32 = [](const float* p, size_t n) { return std::string((const char*)p, n * 4); };
    auto blk = [](int l, const std::string& rest) { return "blk." + std::to_string(l) + "." + rest + ".weight"; };
    std::vector<TensorOut> t;
    t.push_back({"token_embd.weight", {D, V}, F32, f32(w.token_embedding.data(), V * D)});
    for (int l = 0; l < c.n_layers; l++) {
        t.push_back({blk(l, "attn_norm"), {D}, F32, f32(w.rms_att.data() + l * D, D)});
        t.push_back({blk(l, "ffn_down"), {H, D}, F32, f32(w.w2.data() + l * D * H, D * H)});
        t.push_back({blk(l, "ffn_gate"), {D, H}, F32, f32(w.w1.data() + l * H * D, H * D)});
        t.push_back({blk(l, "ffn_up"), {D, H}, F32, f32(w.w3.data() + l * H * D, H * D)});
        t.push_back({blk(l, "ffn_norm"), {D}, F32, f32(w.rms_ffn.data() + l * D, D)});
        t.push_back({blk(l, "attn_k"), {D, KD}, F32, f32(w.wk.data() + l * KD * D, KD * D)});
        t.push_back({blk(l, "attn_output"), {QD, D}, F32, f32(w.wo.data() + l * D * QD, D * QD)});
        t.push_back({blk(l, "attn_q"), {D, QD}, F32, f32(w.wq.data() + l * QD * D, QD * D)});
        t.push_back({blk(l, "attn_v"), {D, KD}, F32, f32(w.wv.data() + l * KD * D, KD * D)});
    }
    t.push_back({"output_norm.weight", {D}, F32, f32(w.rms_final.data(), D)});
    if (!c.shared_classifier) t.push_back({"output.weight", {D, V}, F32, f32(w.wcls.data(), V * D)});
    return t;
}

// m's tensors re-encoded as `type` with random codes (quantized types) or values (F32, F16,
// BF16), all of them, norm gains too: the GGUF tensors, and m's weights replaced by the
// values those blocks hold. Dimensions must be multiples of the type's block.
inline std::vector<TensorOut> requantized_tensors(Model& m, uint32_t type, uint64_t seed) {
    std::vector<TensorOut> t = llama_tensors(m);
    Rng rng(seed);
    const Config& c = m.config;
    Weights& w = m.weights;
    const size_t D = c.dim, H = c.hidden_dim, QD = c.q_dim(), KD = c.kv_dim();
    for (TensorOut& x : t) {
        const size_t n = x.data.size() / 4;
        const QuantBlock b = random_blocks(type, n, rng, x.ne.size() == 1 ? 1.0f : 0.0625f);
        x.type = type;
        x.data = b.bytes;
        // the model's copy of this tensor, by name
        float* dst = nullptr;
        const std::string& name = x.name;
        if (name == "token_embd.weight") dst = w.token_embedding.data();
        else if (name == "output.weight") dst = w.wcls.data();
        else if (name == "output_norm.weight") dst = w.rms_final.data();
        else {
            const size_t l = (size_t)std::stoi(name.substr(4));
            const std::string rest = name.substr(name.find('.', 4) + 1);
            if (rest == "attn_norm.weight") dst = w.rms_att.data() + l * D;
            else if (rest == "ffn_norm.weight") dst = w.rms_ffn.data() + l * D;
            else if (rest == "attn_q.weight") dst = w.wq.data() + l * QD * D;
            else if (rest == "attn_k.weight") dst = w.wk.data() + l * KD * D;
            else if (rest == "attn_v.weight") dst = w.wv.data() + l * KD * D;
            else if (rest == "attn_output.weight") dst = w.wo.data() + l * D * QD;
            else if (rest == "ffn_gate.weight") dst = w.w1.data() + l * H * D;
            else if (rest == "ffn_up.weight") dst = w.w3.data() + l * H * D;
            else if (rest == "ffn_down.weight") dst = w.w2.data() + l * D * H;
        }
        if (!dst || b.values.size() != n) FAIL("requantized_tensors: tensor " << name);
        std::memcpy(dst, b.values.data(), n * sizeof(float));
    }
    return t;
}

// A small byte-level tokenizer's metadata for a vocabulary of `vocab` tokens.
inline std::vector<Kv> tokenizer_keys(int vocab) {
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    std::vector<float> scores;
    for (int i = 0; i < vocab; i++) {
        tokens.push_back(i == 0 ? "<|endoftext|>" : i == 1 ? "<|im_start|>" : i == 2 ? "<|im_end|>" : "t" + std::to_string(i));
        types.push_back(i < 3 ? 3 : 1);
        scores.push_back(-(float)i);
    }
    return {kv_str("tokenizer.ggml.model", "gpt2"), kv_str("tokenizer.ggml.pre", "smollm"), kv_strings("tokenizer.ggml.tokens", tokens),
            kv_ints("tokenizer.ggml.token_type", types), kv_floats("tokenizer.ggml.scores", scores),
            kv_strings("tokenizer.ggml.merges", {"t 1", "\xC4\xA0 t", "t1 0"}), kv_u32("tokenizer.ggml.bos_token_id", 1),
            kv_u32("tokenizer.ggml.eos_token_id", 2), kv_u32("tokenizer.ggml.unknown_token_id", 0),
            kv_u32("tokenizer.ggml.padding_token_id", 2), kv_bool("tokenizer.ggml.add_bos_token", false),
            kv_str("tokenizer.chat_template", "{% for message in messages %}<|im_start|>{{ message['content'] }}{% endfor %}")};
}

// A small valid file: dim 32, 1 layer, vocab 8, Q4_1 matrices, Q8_0 embedding, F32 norms,
// a tokenizer: SmolLM2's mix in miniature.
struct SmallGguf {
    Model m;
    std::vector<Kv> keys;
    std::vector<TensorOut> tensors;
    SmallGguf() {
        Config c;
        c.dim = 32; c.hidden_dim = 64; c.n_layers = 1; c.n_heads = 2; c.n_kv_heads = 1; c.vocab_size = 8;
        c.max_seq_len = 16; c.shared_classifier = true;
        m = init_model(c, parse_plan("standard", 1), 4);
        keys = llama_keys(c);
        for (const Kv& kv : tokenizer_keys(8)) keys.push_back(kv);
        tensors = requantized_tensors(m, Q4_1, 2);
        Rng rng(8);
        const QuantBlock e = random_blocks(Q8_0, 8 * 32, rng, 0.0625f);
        tensors[0].type = Q8_0;
        tensors[0].data = e.bytes;
        const std::vector<TensorOut> f32 = llama_tensors(m);
        for (size_t i = 0; i < tensors.size(); i++)
            if (tensors[i].ne.size() == 1) tensors[i] = f32[i];
    }
    void set_key(const Kv& kv) {
        for (Kv& k : keys)
            if (k.key == kv.key) {
                k = kv;
                return;
            }
        keys.push_back(kv);
    }
    void drop_key(const std::string& key) {
        keys.erase(std::remove_if(keys.begin(), keys.end(), [&](const Kv& k) { return k.key == key; }), keys.end());
    }
    TensorOut& tensor(const std::string& name) {
        for (TensorOut& t : tensors)
            if (t.name == name) return t;
        FAIL("no tensor " << name);
        return tensors[0];
    }
    GgufBytes bytes(uint32_t version = 3, uint32_t alignment = 32) const { return gguf_bytes(keys, tensors, version, alignment); }
};

}  // namespace gguf_test
