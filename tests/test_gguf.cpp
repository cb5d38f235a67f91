// GGUF files: each ggml block type dequantized on blocks worked out by hand, on blocks the
// tests pack from chosen codes, and on blocks the gguf Python package dequantized
// (tests/data/ggml_blocks.bin); a tiny Llama written as GGUF in every supported type
// against the same weights as a .kvs file (exact weights and logits); the metadata mapping
// to Config and TokenizerSpec; llama.cpp's q/k row order on a case worked by hand and
// against a Hugging Face folder; every way a file can be wrong, each with its message; and
// the real SmolLM2-135M-Instruct Q4_1 file ([smollm2]) when `make smollm2` has fetched it.
#include <catch2/catch.hpp>
#include "src/formats/checkpoint.h"
#include "src/formats/ggml_blocks.h"
#include "src/formats/gguf.h"
#include "src/formats/rope_layout.h"
#include "src/model/backend.h"
#include "src/commands/commands.h"
#include "src/text/chat_template.h"
#include "src/text/tokenizer.h"
#include "tests/tokenizer_data.h"
#include "tests/gguf_files.h"
#include "tests/hf_files.h"
#include <cfloat>
#include <climits>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace gguf_test;
using hf_test::read_bytes;
using hf_test::write_bytes;
namespace fs = std::filesystem;

namespace {

std::vector<float> all_logits(const Model& m, const std::vector<int>& tokens) {
    auto be = make_cpu_backend(m, 1, (int)tokens.size());
    PrefillOptions o;
    o.all_positions = true;
    be->prefill(tokens.data(), (int)tokens.size(), o);
    return std::vector<float>(be->logits(), be->logits() + tokens.size() * m.config.vocab_size);
}

// Bitwise equality (so -0 and 0 differ, and NaN equals itself).
bool same_bits(const float* a, const float* b, size_t n) { return n == 0 || std::memcmp(a, b, n * sizeof(float)) == 0; }

std::vector<float> dequantized(uint32_t type, const std::string& bytes, size_t n) {
    std::vector<float> out(n);
    dequantize((GgmlType)type, (const uint8_t*)bytes.data(), n, out.data());
    return out;
}

// The f16 bits of a few numbers used below.
const uint16_t kHalf = 0x3800, kOne = 0x3C00, kMinusOne = 0xBC00, kMinusTwo = 0xC000, kQuarter = 0x3400,
               kSmallestSubnormal = 0x0001, kLargest = 0x7BFF /* 65504 */, kMinusZero = 0x8000;

}  // namespace

// ---------------------------------------------------------------------------
// one dequantizer per block type, on blocks worked out by hand

TEST_CASE("Q8_0: x = d q, worked by hand", "[gguf][blocks]") {
    int8_t q[32] = {-128, 127, 0, 1, -1};
    float out[32];
    dequantize_q8_0((const uint8_t*)q8_0_block(kHalf, q).bytes.data(), out);
    CHECK(out[0] == -64.0f);
    CHECK(out[1] == 63.5f);
    CHECK(out[2] == 0.0f);
    CHECK(out[3] == 0.5f);
    CHECK(out[4] == -0.5f);
    // a subnormal scale is exact: 127 x 2^-24
    dequantize_q8_0((const uint8_t*)q8_0_block(kSmallestSubnormal, q).bytes.data(), out);
    CHECK(out[1] == std::ldexp(127.0f, -24));
    // the largest scale: 65504 x -128 stays finite
    dequantize_q8_0((const uint8_t*)q8_0_block(kLargest, q).bytes.data(), out);
    CHECK(out[0] == -65504.0f * 128);
    // the bytes as the format lays them out: d, then the codes
    const std::string raw = std::string("\x00\x38", 2) + std::string("\x80\x7f\x00\x01\xff", 5) + std::string(27, '\0');
    dequantize_q8_0((const uint8_t*)raw.data(), out);
    CHECK(out[0] == -64.0f);
    CHECK(out[4] == -0.5f);
}

TEST_CASE("Q4_0: x = d (q - 8), value j in the low nibble of byte j, value j + 16 in its high nibble", "[gguf][blocks]") {
    // d = -2; byte 0 = 0x0F: value 0 has code 15, value 16 code 0; byte 15 = 0x8A
    std::string raw = std::string("\x00\xC0", 2) + std::string(16, '\x88');
    raw[2] = '\x0F';
    raw[2 + 15] = '\x8A';
    float out[32];
    dequantize_q4_0((const uint8_t*)raw.data(), out);
    CHECK(out[0] == -14.0f);   // -2 x (15 - 8)
    CHECK(out[16] == 16.0f);   // -2 x (0 - 8)
    CHECK(out[15] == -4.0f);   // -2 x (10 - 8)
    CHECK(out[31] == -0.0f);   // -2 x (8 - 8)
    CHECK(std::signbit(out[31]));
    CHECK(out[1] == -0.0f);
}

TEST_CASE("Q4_1: x = d q + m, with a negative minimum", "[gguf][blocks]") {
    // d = 1, m = -1; byte 3 = 0xA5: value 3 has code 5, value 19 code 10
    std::string raw = std::string("\x00\x3C\x00\xBC", 4) + std::string(16, '\0');
    raw[4 + 3] = '\xA5';
    float out[32];
    dequantize_q4_1((const uint8_t*)raw.data(), out);
    CHECK(out[3] == 4.0f);
    CHECK(out[19] == 9.0f);
    CHECK(out[0] == -1.0f);  // code 0: the minimum itself
    // d = 0.25, m = 0.5: code 15 -> 4.25
    uint8_t q[32] = {15};
    const QuantBlock b = q4_block(true, kQuarter, kHalf, q);
    dequantize_q4_1((const uint8_t*)b.bytes.data(), out);
    CHECK(out[0] == 4.25f);
    CHECK(out[1] == 0.5f);
}

TEST_CASE("Q5_0: the fifth bit of value j is bit j of qh", "[gguf][blocks]") {
    // d = 1; qh = 0x80000001: values 0 and 31 have their fifth bit
    std::string raw = std::string("\x00\x3C", 2) + std::string("\x01\x00\x00\x80", 4) + std::string(16, '\0');
    raw[6 + 15] = '\xF0';  // value 15: code 0, value 31: code 15 (+16)
    float out[32];
    dequantize_q5_0((const uint8_t*)raw.data(), out);
    CHECK(out[0] == 0.0f);     // 16 - 16
    CHECK(out[16] == -16.0f);  // 0 - 16
    CHECK(out[15] == -16.0f);
    CHECK(out[31] == 15.0f);   // 31 - 16
}

TEST_CASE("Q5_1: x = d q + m with 5-bit codes", "[gguf][blocks]") {
    // d = 0.5, m = -8; value 17 gets code 31 (nibble 15 in byte 1's high half, qh bit 17)
    std::string raw = std::string("\x00\x38\x00\xC8", 4) + std::string("\x00\x00\x02\x00", 4) + std::string(16, '\0');
    raw[8 + 1] = '\xF0';
    float out[32];
    dequantize_q5_1((const uint8_t*)raw.data(), out);
    CHECK(out[17] == 7.5f);   // 0.5 x 31 - 8
    CHECK(out[1] == -8.0f);
    CHECK(out[0] == -8.0f);
}

TEST_CASE("Q4_K: 6-bit scales and minimums packed in 12 bytes, minimums subtracted", "[gguf][blocks]") {
    // d = 1, dmin = 0.5. Sub-block 1: sc = 3, m = 2 (bytes 1 and 5, low 6 bits). Sub-block 5:
    // sc = 0b110111 = 55: low 4 bits 7 from byte 9, top 2 bits 3 from byte 1's top bits;
    // m = 0b100001 = 33: low 4 bits 1 from byte 9's high nibble, top 2 bits 2 from byte 5's.
    uint8_t scales[12] = {};
    scales[1] = 3 | 3 << 6;
    scales[5] = 2 | 2 << 6;
    scales[9] = 7 | 1 << 4;
    std::string raw = std::string("\x00\x3C\x00\x38", 4) + std::string((const char*)scales, 12) + std::string(128, '\0');
    // sub-block 1 is the high nibbles of qs[0..31]; sub-block 5 the high nibbles of qs[64..95]
    raw[16 + 0] = '\x90';   // value 32 (sub-block 1, l = 0): code 9
    raw[16 + 64] = '\xF0';  // value 160 (sub-block 5, l = 0): code 15
    float out[256];
    dequantize_q4_k((const uint8_t*)raw.data(), out);
    CHECK(out[32] == 26.0f);         // 1 x 3 x 9 - 0.5 x 2
    CHECK(out[33] == -1.0f);         // code 0: -dmin x m
    CHECK(out[160] == 808.5f);       // 1 x 55 x 15 - 0.5 x 33
    CHECK(out[161] == -16.5f);
    CHECK(out[0] == 0.0f);           // sub-block 0: sc = 0, m = 0
    // a negative dmin adds
    raw[2] = '\x00';
    raw[3] = '\xB8';  // dmin = -0.5
    dequantize_q4_k((const uint8_t*)raw.data(), out);
    CHECK(out[33] == 1.0f);
    CHECK(out[160] == 841.5f);
}

TEST_CASE("Q5_K: the fifth bit of value l of sub-block s is bit s of qh[l]", "[gguf][blocks]") {
    uint8_t scales[12] = {};
    scales[7] = 1;       // sub-block 7 ... is s >= 4: sc from byte 11's low nibble, m its high nibble
    scales[11] = 2 | 1 << 4;  // sub-block 7: sc = 2, m = 1 (top bits from bytes 3 and 7: 0 for sc, 0 for m)
    scales[3] = 0;
    scales[7] = 0;
    std::string raw = std::string("\x00\x3C\x00\x3C", 4) + std::string((const char*)scales, 12) + std::string(32, '\0') +
                      std::string(128, '\0');
    raw[16 + 5] = (char)0x80;  // qh[5] bit 7: value 5 of sub-block 7 has its fifth bit
    raw[48 + 96 + 5] = '\x30'; // qs[96 + 5] high nibble: value 5 of sub-block 7 (values 224..255) has low bits 3
    float out[256];
    dequantize_q5_k((const uint8_t*)raw.data(), out);
    CHECK(out[224 + 5] == 37.0f);  // 1 x 2 x (3 + 16) - 1 x 1
    CHECK(out[224 + 4] == -1.0f);
    CHECK(out[192 + 5] == 0.0f);   // sub-block 6 reads the low nibble and bit 6: both 0
}

TEST_CASE("Q6_K: signed 8-bit scales per 16 values, codes minus 32, d at the end", "[gguf][blocks]") {
    std::string raw(210, '\0');
    raw[208] = '\x00';
    raw[209] = '\x34';  // d = 0.25
    raw[192 + 0] = (char)-3;  // values 0..15
    raw[192 + 2] = 4;         // values 32..47
    raw[192 + 12] = 2;        // values 192..207 (second half, group 2 -> scale index 8 + 4)
    raw[0] = '\x0F';          // ql[0] low nibble: value 0's low bits 15
    raw[128 + 0] = '\x03';    // qh[0] bits 0-1: value 0's top bits 3 -> code 63
    raw[32] = '\x01';         // ql[32] low nibble: value 32's low bits 1; top bits 0 -> code 1
    raw[64 + 0] = '\x50';     // second half: ql[64] high nibble -> value 128 + 64 = 192, low bits 5
    raw[128 + 32] = '\x20';   // qh[32] bits 4-5 = 2 -> value 192's top bits 2: code 37
    float out[256];
    dequantize_q6_k((const uint8_t*)raw.data(), out);
    CHECK(out[0] == -23.25f);  // 0.25 x -3 x (63 - 32)
    CHECK(out[32] == -31.0f);  // 0.25 x 4 x (1 - 32)
    CHECK(out[192] == 2.5f);   // 0.25 x 2 x (37 - 32)
    CHECK(out[1] == 24.0f);    // 0.25 x -3 x (0 - 32)
}

TEST_CASE("F16 and BF16 rows through dequantize, and a -0 scale", "[gguf][blocks]") {
    const std::string f16 = pod<uint16_t>(kOne) + pod<uint16_t>(kMinusTwo) + pod<uint16_t>(kSmallestSubnormal);
    const std::vector<float> a = dequantized(F16, f16, 3);
    CHECK(a == std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24)});
    const std::string bf16 = pod<uint16_t>(0x3F80) + pod<uint16_t>(0xC040);
    CHECK(dequantized(BF16, bf16, 2) == std::vector<float>{1.0f, -3.0f});
    int8_t q[32] = {5};
    const std::vector<float> z = dequantized(Q8_0, q8_0_block(kMinusZero, q).bytes, 32);
    CHECK(z[0] == 0.0f);
    CHECK(std::signbit(z[0]));  // -0 x 5
}

// ---------------------------------------------------------------------------
// the same on random codes packed by the tests, and on the gguf package's blocks

TEST_CASE("every block type: random codes packed by the tests dequantize to the values they mean", "[gguf][blocks]") {
    for (uint32_t type : all_types()) {
        INFO("type " << ggml_type_name(type));
        Rng rng(type + 1);
        const QuantBlock b = random_blocks(type, 4 * 256, rng, 0.25f);
        const std::vector<float> got = dequantized(type, b.bytes, b.values.size());
        CHECK(same_bits(got.data(), b.values.data(), got.size()));
        CHECK(b.bytes.size() == b.values.size() / block_values(type) * ggml_type_info(type)->bytes);
    }
}

TEST_CASE("every block type agrees bit for bit with the gguf package's dequantization", "[gguf][blocks]") {
    const std::string data = read_bytes("tests/data/ggml_blocks.bin");
    REQUIRE(data.size() > 1000);
    std::set<uint32_t> seen;
    size_t at = 0;
    while (at < data.size()) {
        uint32_t head[3];
        REQUIRE(at + 12 <= data.size());
        std::memcpy(head, data.data() + at, 12);
        const uint32_t type = head[0], n = head[1], bytes = head[2];
        INFO("type " << ggml_type_name(type) << ", " << n << " values");
        REQUIRE(at + 12 + bytes + 4 * (size_t)n <= data.size());
        const std::vector<float> got = dequantized(type, data.substr(at + 12, bytes), n);
        std::vector<float> want(n);
        std::memcpy(want.data(), data.data() + at + 12 + bytes, 4 * (size_t)n);
        size_t differ = 0;
        for (size_t i = 0; i < n; i++) differ += std::memcmp(&got[i], &want[i], 4) != 0;
        CHECK(differ == 0);
        seen.insert(type);
        at += 12 + bytes + 4 * (size_t)n;
    }
    CHECK(seen.size() == all_types().size());
}

// ---------------------------------------------------------------------------
// a tiny Llama in every type against the same weights as a .kvs file

namespace {

// dim and hidden multiples of 256, so every type's blocks fit every tensor
Config block_config(bool tied) {
    Config c;
    c.dim = 256; c.hidden_dim = 256; c.n_layers = 2; c.n_heads = 4; c.n_kv_heads = 2;
    c.vocab_size = 24; c.max_seq_len = 16; c.rope_theta = 10000.0f; c.norm_eps = 1e-5f; c.shared_classifier = tied;
    return c;
}

const std::vector<int> kIds = {1, 5, 9, 23, 0, 7};

std::string write_gguf(const std::string& name, const GgufBytes& g) {
    const std::string path = temp_path(name);
    write_bytes(path, g.bytes);
    return path;
}

void require_same_model(const Model& got, const Model& want) {
    CHECK(got.config.dim == want.config.dim);
    CHECK(got.config.vocab_size == want.config.vocab_size);
    CHECK(got.config.shared_classifier == want.config.shared_classifier);
    auto a = const_cast<Weights&>(got.weights).tensors(), b = const_cast<Weights&>(want.weights).tensors();
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); i++) {
        INFO("tensor " << i);
        REQUIRE(a[i]->size() == b[i]->size());
        CHECK(same_bits(a[i]->data(), b[i]->data(), a[i]->size()));
    }
}

}  // namespace

TEST_CASE("a GGUF of every tensor type loads the weights its blocks hold, as the .kvs file of them does", "[gguf]") {
    for (bool tied : {true, false}) {
        for (uint32_t type : all_types()) {
            INFO(ggml_type_name(type) << ", tied " << tied);
            Model m = init_model(block_config(tied), parse_plan("standard", 2), 5 + type);
            // F32: the random weights as they are; the others: every tensor re-encoded
            const std::vector<TensorOut> t = type == F32 ? llama_tensors(m) : requantized_tensors(m, type, 40 + type);
            const std::string gguf = write_gguf("every_type.gguf", gguf_bytes(llama_keys(m.config), t));
            const std::string kvs = temp_path("every_type.kvs");
            save_model(kvs, m);
            const Model loaded = load_model(gguf), want = load_model(kvs);
            require_same_model(loaded, want);
            CHECK(loaded.tokenizer_spec == nullptr);  // this file has no tokenizer
            const std::vector<float> a = all_logits(loaded, kIds), b = all_logits(want, kIds);
            CHECK(same_bits(a.data(), b.data(), a.size()));
            std::remove(gguf.c_str());
            std::remove(kvs.c_str());
        }
    }
}

TEST_CASE("a GGUF loads with any plan, which drops the K/V weights of layers that stop owning them", "[gguf]") {
    Model m = init_model(block_config(false), parse_plan("standard", 2), 3);
    const std::string path = write_gguf("plan.gguf", gguf_bytes(llama_keys(m.config), requantized_tensors(m, Q4_1, 9)));
    const Model shared = load_model(path, "cla:2");
    CHECK(shared.plan.n_kv_layers() == 1);
    CHECK(shared.weights.wk.size() == (size_t)m.config.kv_dim() * m.config.dim);
    CHECK(same_bits(shared.weights.wk.data(), m.weights.wk.data(), shared.weights.wk.size()));  // layer 0's
    std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// metadata

TEST_CASE("GGUF metadata: the llama.* keys give the Config, tokenizer.ggml.* the TokenizerSpec", "[gguf]") {
    Model m = init_model(block_config(true), parse_plan("standard", 2), 3);
    m.config.rope_theta = 100000.0f;
    m.config.norm_eps = 1e-6f;
    m.config.max_seq_len = 8192;
    std::vector<Kv> keys = llama_keys(m.config);
    for (const Kv& kv : tokenizer_keys(24)) keys.push_back(kv);
    keys.push_back(kv_u32("llama.vocab_size", 24));
    keys.push_back(kv_str("general.license", "apache-2.0"));
    keys.push_back(kv_u32("general.quantization_version", 2));
    const std::string path = write_gguf("meta.gguf", gguf_bytes(keys, llama_tensors(m)));
    const Model g = load_model(path);
    const Config& c = g.config;
    CHECK(c.dim == 256);
    CHECK(c.hidden_dim == 256);
    CHECK(c.n_layers == 2);
    CHECK(c.n_heads == 4);
    CHECK(c.n_kv_heads == 2);
    CHECK(c.vocab_size == 24);
    CHECK(c.max_seq_len == 8192);
    CHECK(c.rope_theta == 100000.0f);
    CHECK(c.norm_eps == 1e-6f);
    CHECK(c.shared_classifier);
    REQUIRE(g.tokenizer_spec);
    const TokenizerSpec& s = *g.tokenizer_spec;
    CHECK(s.model == "gpt2");
    CHECK(s.pre == "smollm");
    REQUIRE(s.tokens.size() == 24);
    CHECK(s.tokens[0] == "<|endoftext|>");
    CHECK(s.tokens[23] == "t23");
    REQUIRE(s.scores.size() == 24);
    CHECK(s.scores[7] == -7.0f);
    REQUIRE(s.token_types.size() == 24);
    CHECK(s.token_types[2] == 3);
    CHECK(s.token_types[3] == 1);
    CHECK(s.merges == std::vector<std::string>{"t 1", "\xC4\xA0 t", "t1 0"});
    CHECK(s.bos_id == 1);
    CHECK(s.eos_id == 2);
    CHECK(s.unk_id == 0);
    CHECK(s.pad_id == 2);
    CHECK_FALSE(s.add_bos);
    CHECK_FALSE(s.add_eos);
    CHECK(s.chat_template == "{% for message in messages %}<|im_start|>{{ message['content'] }}{% endfor %}");
    CHECK(s.source == path);
    std::remove(path.c_str());

    // the defaults: no head_count_kv (= head_count), no freq_base (10000), no ids, and a
    // "llama" vocabulary that does not say add_bos_token adds BOS
    Config mha = m.config;
    mha.n_kv_heads = mha.n_heads;
    m = init_model(mha, parse_plan("standard", 2), 4);
    keys = llama_keys(m.config);
    keys.erase(std::remove_if(keys.begin(), keys.end(), [](const Kv& kv) {
        return kv.key == "llama.attention.head_count_kv" || kv.key == "llama.rope.freq_base";
    }), keys.end());
    keys.push_back(kv_str("tokenizer.ggml.model", "llama"));
    std::vector<std::string> pieces;
    for (int i = 0; i < 24; i++) pieces.push_back("p" + std::to_string(i));
    keys.push_back(kv_strings("tokenizer.ggml.tokens", pieces));
    const std::string path2 = write_gguf("meta2.gguf", gguf_bytes(keys, llama_tensors(m)));
    const Model d = load_model(path2);
    CHECK(d.config.n_kv_heads == 4);
    CHECK(d.config.rope_theta == 10000.0f);
    REQUIRE(d.tokenizer_spec);
    CHECK(d.tokenizer_spec->add_bos);
    CHECK(d.tokenizer_spec->pre == "");
    CHECK(d.tokenizer_spec->bos_id == -1);
    CHECK(d.tokenizer_spec->eos_id == -1);
    CHECK(d.tokenizer_spec->scores.empty());
    CHECK(d.tokenizer_spec->merges.empty());
    std::remove(path2.c_str());
}

TEST_CASE("GGUF metadata of every value type, nested arrays, version 2 and another alignment", "[gguf]") {
    Model m = init_model(block_config(true), parse_plan("standard", 2), 3);
    std::vector<Kv> keys = llama_keys(m.config);
    keys.push_back({"test.u8", U8, pod<uint8_t>(200)});
    keys.push_back({"test.i8", I8, pod<int8_t>(-100)});
    keys.push_back({"test.u16", U16, pod<uint16_t>(60000)});
    keys.push_back({"test.i16", I16, pod<int16_t>(-30000)});
    keys.push_back(kv_u32("test.u32", 4000000000u));
    keys.push_back(kv_i32("test.i32", -2000000000));
    keys.push_back(kv_f32("test.f32", 1.5f));
    keys.push_back(kv_bool("test.bool", true));
    keys.push_back(kv_str("test.string", std::string("with a \0 inside", 15)));
    keys.push_back(kv_u64("test.u64", 1ull << 60));
    keys.push_back({"test.i64", I64, pod<int64_t>(-(1ll << 60))});
    keys.push_back({"test.f64", F64, pod<double>(0.1)});
    keys.push_back(kv_ints("test.ints", {3, -4, 5}));
    keys.push_back({"test.u16s", ARRAY, pod<uint32_t>(U16) + pod<uint64_t>(2) + pod<uint16_t>(7) + pod<uint16_t>(65535)});
    keys.push_back({"test.f64s", ARRAY, pod<uint32_t>(F64) + pod<uint64_t>(1) + pod<double>(-2.5)});
    keys.push_back(kv_strings("test.strings", {"", "b", "cc"}));
    keys.push_back({"test.empty", ARRAY, pod<uint32_t>(STRING) + pod<uint64_t>(0)});
    // an array of two arrays: [["x", "yz"], []] of strings
    keys.push_back({"test.nested", ARRAY, pod<uint32_t>(ARRAY) + pod<uint64_t>(2) + kv_strings("", {"x", "yz"}).payload +
                                              pod<uint32_t>(STRING) + pod<uint64_t>(0)});
    for (uint32_t version : {2u, 3u}) {
        for (uint32_t alignment : {32u, 64u, 1u, 4096u}) {
            INFO("version " << version << ", alignment " << alignment);
            const std::string path = write_gguf("types.gguf", gguf_bytes(keys, llama_tensors(m), version, alignment));
            const GgufFile g = GgufFile::open(path);
            CHECK(g.version() == version);
            CHECK(g.alignment() == alignment);
            CHECK(g.data_start() % alignment == 0);
            auto v = [&](const std::string& key) -> const GgufValue& {
                const GgufValue* p = g.find(key);
                REQUIRE(p);
                return *p;
            };
            CHECK(g.get_uint("u8", v("test.u8"), 255) == 200);
            CHECK(g.get_uint("u16", v("test.u16"), 65535) == 60000);
            CHECK(g.get_uint("u32", v("test.u32"), UINT32_MAX) == 4000000000u);
            CHECK(g.get_uint("u64", v("test.u64"), UINT64_MAX) == 1ull << 60);
            CHECK_THROWS_WITH(g.get_uint("i8", v("test.i8"), 100), Catch::Contains("is -100; it must not be negative"));
            CHECK_THROWS_WITH(g.get_uint("i16", v("test.i16"), 100), Catch::Contains("-30000"));
            CHECK_THROWS_WITH(g.get_uint("i32", v("test.i32"), 100), Catch::Contains("-2000000000"));
            CHECK_THROWS_WITH(g.get_uint("i64", v("test.i64"), 100), Catch::Contains("-1152921504606846976"));
            CHECK_THROWS_WITH(g.get_uint("u32", v("test.u32"), 100), Catch::Contains("more than kvshare accepts (100)"));
            CHECK(g.get_float("f32", v("test.f32")) == 1.5);
            CHECK(g.get_float("f64", v("test.f64")) == 0.1);
            CHECK(g.get_bool("bool", v("test.bool")));
            CHECK(g.get_string("string", v("test.string")) == std::string("with a \0 inside", 15));
            CHECK(g.get_ints("ints", v("test.ints")) == std::vector<int>{3, -4, 5});
            CHECK(g.get_ints("u16s", v("test.u16s")) == std::vector<int>{7, 65535});
            CHECK(g.get_floats("f64s", v("test.f64s")) == std::vector<float>{-2.5f});
            CHECK(g.get_strings("strings", v("test.strings")) == std::vector<std::string>{"", "b", "cc"});
            CHECK(g.get_strings("empty", v("test.empty")).empty());
            CHECK(v("test.nested").item_type == GgufValueType::ARRAY);
            CHECK(v("test.nested").count == 2);
            CHECK_THROWS_WITH(g.get_strings("test.nested", v("test.nested")), Catch::Contains("holds an array of array, not an array of strings"));
            CHECK_THROWS_WITH(g.get_string("test.u8", v("test.u8")), Catch::Contains("test.u8 holds u8, not a string"));
            CHECK_THROWS_WITH(g.get_float("test.i32", v("test.i32")), Catch::Contains("not a float"));
            CHECK_THROWS_WITH(g.get_bool("test.u8", v("test.u8")), Catch::Contains("not a bool"));
            CHECK_THROWS_WITH(g.get_ints("test.strings", v("test.strings")), Catch::Contains("not an array of integers"));
            // keys in file order, tensors found by name
            CHECK(g.keys().front() == (alignment == 32 ? "general.architecture" : "general.alignment"));
            REQUIRE(g.find_tensor("blk.1.attn_q.weight"));
            CHECK(g.find_tensor("blk.1.attn_q.weight")->ne == std::vector<uint64_t>{256, 256});
            // and the model loads, the test.* keys ignored
            const Model loaded = load_model(path);
            CHECK(same_bits(loaded.weights.wq.data(), m.weights.wq.data(), m.weights.wq.size()));
            std::remove(path.c_str());
        }
    }
}

TEST_CASE("gguf_summary counts the tensor types", "[gguf]") {
    Model m = init_model(block_config(true), parse_plan("standard", 2), 3);
    std::vector<TensorOut> t = requantized_tensors(m, Q4_K, 1);
    t[0] = llama_tensors(m)[0];  // token_embd as F32
    t[0].type = F32;
    const std::string path = write_gguf("summary.gguf", gguf_bytes(llama_keys(m.config), t, 2));
    CHECK(gguf_summary(GgufFile::open(path)) == "GGUF v2, 20 tensors: 19 Q4_K, 1 F32");
    std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// RoPE row order

// llama.cpp's converter, as its Python writes it for q and k: rows viewed as
// (heads, 2, head_size / 2, cols), the two middle axes swapped, viewed back.
static std::vector<float> llama_cpp_permute(const std::vector<float>& hf, int heads, int head_size, int cols) {
    std::vector<float> out(hf.size());
    const int half = head_size / 2;
    for (int h = 0; h < heads; h++)
        for (int a = 0; a < 2; a++)
            for (int i = 0; i < half; i++)  // element (h, a, i) goes to (h, i, a)
                std::memcpy(&out[((size_t)h * head_size + 2 * i + a) * cols], &hf[((size_t)h * head_size + a * half + i) * cols],
                            cols * sizeof(float));
    return out;
}

TEST_CASE("RoPE rows: llama.cpp stores q/k in adjacent pairs, kvshare's order, worked by hand", "[gguf]") {
    // One head of size 4 over 4 columns. Hugging Face's rows a b c d pair (a, c) and (b, d)
    // (element i with i + 2). llama.cpp's converter writes them as a c b d; kvshare's
    // adjacent pairs (0, 1), (2, 3) are then (a, c) and (b, d): the same pairs, no conversion.
    const std::vector<float> a = {1, 0, 0, 0}, b = {0, 2, 0, 0}, c = {0, 0, 3, 0}, d = {0, 0, 0, 4};
    std::vector<float> hf;
    for (const auto* row : {&a, &b, &c, &d}) hf.insert(hf.end(), row->begin(), row->end());
    std::vector<float> stored;
    for (const auto* row : {&a, &c, &b, &d}) stored.insert(stored.end(), row->begin(), row->end());
    CHECK(llama_cpp_permute(hf, 1, 4, 4) == stored);
    // kvshare's conversion of a Hugging Face checkpoint gives the same rows
    std::vector<float> converted = hf;
    half_split_to_adjacent(converted.data(), 1, 4, 4);
    CHECK(converted == stored);

    // a 1-head model of dim 4: the GGUF of those rows loads them as stored
    Config cfg;
    cfg.dim = 4; cfg.hidden_dim = 8; cfg.n_layers = 1; cfg.n_heads = 1; cfg.n_kv_heads = 1; cfg.vocab_size = 6;
    cfg.max_seq_len = 8; cfg.shared_classifier = true;
    Model m = init_model(cfg, parse_plan("standard", 1), 2);
    std::vector<TensorOut> t = llama_tensors(m);
    for (TensorOut& x : t)
        if (x.name == "blk.0.attn_q.weight" || x.name == "blk.0.attn_k.weight") x.data = std::string((const char*)stored.data(), 64);
    const std::string path = write_gguf("rope.gguf", gguf_bytes(llama_keys(cfg), t));
    const Model g = load_model(path);
    CHECK(std::vector<float>(g.weights.wq.begin(), g.weights.wq.end()) == stored);
    CHECK(std::vector<float>(g.weights.wk.begin(), g.weights.wk.end()) == stored);
    std::remove(path.c_str());
}

TEST_CASE("RoPE rows: a GGUF made as llama.cpp's converter makes it computes what the Hugging Face folder does", "[gguf]") {
    // The folder's q/k rows in Hugging Face's order; the GGUF's from them by the converter's
    // permutation; the two load to the same model and the same logits, bit for bit.
    Model m = hf_test::grid_model("standard", false, 11, 2);
    const Config& c = m.config;
    for (auto* w : {&m.weights.wq, &m.weights.wk})
        for (float& x : *w) x *= 8.0f;  // attention far from uniform, so a wrong pairing shows
    const std::string dir = hf_test::fresh_dir("gguf_vs_hf");
    hf_test::write_folder(dir, m, "F32", hf_test::config_json(c));
    std::vector<TensorOut> t = llama_tensors(m);
    const size_t D = c.dim, QD = c.q_dim(), KD = c.kv_dim();
    for (TensorOut& x : t)
        for (int l = 0; l < c.n_layers; l++) {
            const bool q = x.name == "blk." + std::to_string(l) + ".attn_q.weight", k = x.name == "blk." + std::to_string(l) + ".attn_k.weight";
            if (!q && !k) continue;
            const float* rows = q ? m.weights.wq.data() + l * QD * D : m.weights.wk.data() + l * KD * D;
            const int heads = q ? c.n_heads : c.n_kv_heads;
            const std::vector<float> hf = hf_test::to_hf_rows(rows, heads, c.head_size(), c.dim);  // as the folder has them
            const std::vector<float> converted = llama_cpp_permute(hf, heads, c.head_size(), c.dim);
            x.data = std::string((const char*)converted.data(), converted.size() * 4);
        }
    const std::string path = write_gguf("converted.gguf", gguf_bytes(llama_keys(c), t));
    const Model from_gguf = load_model(path), from_hf = load_model(dir);
    require_same_model(from_gguf, from_hf);
    const std::vector<int> ids = {1, 72, 101, 108, 108, 111};
    const std::vector<float> a = all_logits(from_gguf, ids), b = all_logits(from_hf, ids);
    CHECK(same_bits(a.data(), b.data(), a.size()));
    fs::remove_all(dir);
    std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// what a file can get wrong: one clear error each

namespace {

// "ok", or the error of loading these bytes.
std::string load_error(const std::string& bytes) {
    const std::string path = temp_path("bad.gguf");
    write_bytes(path, bytes);
    std::string what = "ok";
    try {
        load_model(path);
    } catch (const std::runtime_error& e) {
        what = e.what();
        if (what.find(path) == std::string::npos) what = "an error that does not name the file: " + what;
    }
    std::remove(path.c_str());
    return what;
}
std::string load_error(const SmallGguf& s) { return load_error(s.bytes().bytes); }

// The bytes with the field called `what` overwritten by `value`.
std::string patched(const GgufBytes& g, const std::string& what, const std::string& value) {
    for (const Field& f : g.fields)
        if (f.what == what) {
            std::string b = g.bytes;
            REQUIRE(value.size() == f.bytes);
            b.replace(f.offset, f.bytes, value);
            return b;
        }
    FAIL("no field " << what);
    return "";
}

}  // namespace

TEST_CASE("GGUF: the small test file loads", "[gguf]") {
    SmallGguf s;
    CHECK(load_error(s) == "ok");
}

TEST_CASE("GGUF errors in the header, the metadata and the tensor table", "[gguf]") {
    const SmallGguf s;
    const GgufBytes g = s.bytes();
    auto u32 = [](uint32_t v) { return pod(v); };
    auto u64 = [](uint64_t v) { return pod(v); };
    CHECK_THAT(load_error(patched(g, "version", u32(1))), Catch::Contains("GGUF version 1"));
    CHECK_THAT(load_error(patched(g, "version", u32(4))), Catch::Contains("GGUF version 4; kvshare reads versions 2 and 3"));
    CHECK_THAT(load_error(patched(g, "version", u32(0x03000000))), Catch::Contains("big-endian"));
    CHECK_THAT(load_error(patched(g, "metadata count", u64(1ull << 40))), Catch::Contains("metadata entries, more than"));
    CHECK_THAT(load_error(patched(g, "tensor count", u64(1ull << 40))), Catch::Contains("tensors, more than"));
    CHECK_THAT(load_error(patched(g, "general.name string length", u64(~0ull))), Catch::Contains("claims a string of 18446744073709551615 bytes"));
    CHECK_THAT(load_error(patched(g, "general.name key length", u64(1ull << 62))), Catch::Contains("claims a string"));
    CHECK_THAT(load_error(patched(g, "general.name type", u32(13))), Catch::Contains("value type 13"));
    CHECK_THAT(load_error(patched(g, "tokenizer.ggml.tokens element count", u64(1ull << 61))), Catch::Contains("claims 2305843009213693952 elements"));
    CHECK_THAT(load_error(patched(g, "tokenizer.ggml.scores element count", u64(1ull << 60))), Catch::Contains("elements of f32"));
    CHECK_THAT(load_error(patched(g, "tokenizer.ggml.scores element type", u32(77))), Catch::Contains("value type 77"));
    CHECK_THAT(load_error(patched(g, "token_embd.weight dimension count", u32(5))), Catch::Contains("has 5 dimensions"));
    CHECK_THAT(load_error(patched(g, "token_embd.weight dimension count", u32(0))), Catch::Contains("has 0 dimensions"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight dimension", u64(0))), Catch::Contains("has dimension 0"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight dimension", u64(1ull << 40))), Catch::Contains("has dimension 1099511627776"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight dimension", u64(1ull << 14))), Catch::Contains("more than the file's"));
    CHECK_THAT(load_error(patched(g, "token_embd.weight type", u32(99))), Catch::Contains("has type type 99; kvshare reads F32, F16, BF16, Q8_0"));
    CHECK_THAT(load_error(patched(g, "token_embd.weight type", u32(16))), Catch::Contains("has type IQ2_XXS"));
    CHECK_THAT(load_error(patched(g, "token_embd.weight type", u32(10))), Catch::Contains("has type Q2_K"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight offset", u64(4))), Catch::Contains("not a multiple of the alignment 32"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight offset", u64(1ull << 50))), Catch::Contains("past the end of the file"));
    CHECK_THAT(load_error(patched(g, "output_norm.weight offset", u64(g.bytes.size() - 32))), Catch::Contains("ends past the end"));
    CHECK_THAT(load_error(patched(g, "blk.0.attn_norm.weight offset", u64(0))), Catch::Contains("overlap"));
    // a Q4_1 tensor whose rows are not whole blocks
    CHECK_THAT(load_error(patched(g, "blk.0.ffn_down.weight dimension", u64(48))), Catch::Contains("rows of 48 values, not a multiple of its 32-value blocks"));
    // bad magic: not taken for GGUF (so llama2.c's reader says what it sees); GgufFile names it
    std::string wrong = g.bytes;
    wrong[3] = 'X';
    const std::string path = temp_path("magic.gguf");
    write_bytes(path, wrong);
    CHECK_THROWS_WITH(GgufFile::open(path), Catch::Contains("does not start with \"GGUF\""));
    CHECK_THROWS_WITH(load_model(path), Catch::Contains(path));
    std::remove(path.c_str());
}

TEST_CASE("GGUF errors in alignment, duplicates, nesting and every truncation point of the header", "[gguf]") {
    SmallGguf s;
    CHECK(load_error(s.bytes(3, 64).bytes) == "ok");
    {
        SmallGguf a = s;
        a.keys.insert(a.keys.begin(), kv_u32("general.alignment", 48));
        CHECK_THAT(load_error(a), Catch::Contains("general.alignment 48 is not a power of two"));
        a.keys[0] = kv_u32("general.alignment", 0);
        CHECK_THAT(load_error(a), Catch::Contains("general.alignment 0"));
        a.keys[0] = kv_u64("general.alignment", 32);
        CHECK_THAT(load_error(a), Catch::Contains("general.alignment is a u64, not a u32"));
    }
    {
        SmallGguf a = s;
        a.keys.push_back(kv_str("general.name", "again"));
        CHECK_THAT(load_error(a), Catch::Contains("the key 'general.name' appears twice"));
    }
    {
        SmallGguf a = s;
        a.tensors.push_back(a.tensors[1]);
        CHECK_THAT(load_error(a), Catch::Contains("two tensors are called 'blk.0.attn_norm.weight'"));
    }
    {
        // 17 levels of arrays, each holding one array
        std::string v = pod<uint32_t>(STRING) + pod<uint64_t>(0);
        for (int i = 0; i < 16; i++) v = pod<uint32_t>(ARRAY) + pod<uint64_t>(1) + v;
        SmallGguf a = s;
        a.keys.push_back({"test.deep", ARRAY, v});
        CHECK_THAT(load_error(a), Catch::Contains("nests arrays more than 16 deep"));
        a.keys.back().payload = v.substr(12);  // 16 levels: allowed
        CHECK(load_error(a) == "ok");
    }
    // cut at every field boundary: a "truncated" error (or "too small") naming the file
    const GgufBytes g = s.bytes();
    for (const Field& f : g.fields)
        for (size_t cut : {f.offset, f.offset + f.bytes / 2}) {
            const std::string e = load_error(g.bytes.substr(0, cut));
            INFO("cut at byte " << cut << " (" << f.what << "): " << e);
            CHECK((e.find("truncated") != std::string::npos || e.find("too small") != std::string::npos));
        }
}

TEST_CASE("GGUF errors in what the metadata says about the model", "[gguf]") {
    auto with = [](const Kv& kv) {
        SmallGguf s;
        s.set_key(kv);
        return load_error(s);
    };
    auto without = [](const std::string& key) {
        SmallGguf s;
        s.drop_key(key);
        return load_error(s);
    };
    CHECK_THAT(with(kv_str("general.architecture", "qwen2")), Catch::Contains("is a 'qwen2' model (general.architecture); kvshare reads Llama-architecture GGUF files (\"llama\") only"));
    CHECK_THAT(without("general.architecture"), Catch::Contains("has no general.architecture"));
    for (const char* key : {"llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
                            "llama.attention.head_count", "llama.attention.layer_norm_rms_epsilon"})
        CHECK_THAT(without(key), Catch::Contains(std::string("has no ") + key));
    CHECK_THAT(with(kv_u32("llama.rope.dimension_count", 8)), Catch::Contains("llama.rope.dimension_count is 8, not the head size 16"));
    CHECK_THAT(with(kv_u32("llama.attention.key_length", 32)), Catch::Contains("not the head size"));
    CHECK_THAT(with(kv_str("llama.rope.scaling.type", "linear")), Catch::Contains("llama.rope.scaling.type is set; kvshare implements plain RoPE only"));
    CHECK_THAT(with(kv_f32("llama.rope.scaling.factor", 8)), Catch::Contains("RoPE scaling"));
    CHECK_THAT(with(kv_f32("llama.rope.scale_linear", 2)), Catch::Contains("RoPE scaling"));
    CHECK(with(kv_str("llama.rope.scaling.type", "none")) == "ok");
    CHECK(with(kv_str("llama.tensor_data_layout", "Meta AI original pth")) == "ok");
    CHECK_THAT(with(kv_f32("llama.attention.clamp_kqv", 8)), Catch::Contains("key 'llama.attention.clamp_kqv' is not one kvshare knows"));
    CHECK_THAT(with(kv_u32("llama.expert_count", 8)), Catch::Contains("mixture-of-experts"));
    CHECK(with(kv_u32("llama.expert_count", 0)) == "ok");
    CHECK_THAT(with(kv_u32("split.count", 3)), Catch::Contains("split GGUF"));
    CHECK_THAT(with(kv_str("llama.context_length", "16")), Catch::Contains("llama.context_length holds string, not an integer"));
    CHECK_THAT(with(kv_u32("llama.context_length", 0)), Catch::Contains("max_seq_len 0"));
    CHECK_THAT(with(kv_u64("llama.context_length", 1ull << 40)), Catch::Contains("more than kvshare accepts"));
    CHECK_THAT(with(kv_i32("llama.block_count", -1)), Catch::Contains("llama.block_count is -1; it must not be negative"));
    CHECK_THAT(with(kv_u32("llama.attention.head_count", 3)), Catch::Contains("n_heads 3 must divide dim 32"));
    CHECK_THAT(with(kv_u32("llama.attention.head_count_kv", 3)), Catch::Contains("n_kv_heads 3"));
    CHECK_THAT(with(kv_f32("llama.attention.layer_norm_rms_epsilon", NAN)), Catch::Contains("not a finite float"));
    CHECK_THAT(with(kv_f32("llama.attention.layer_norm_rms_epsilon", 0)), Catch::Contains("norm_eps"));
    CHECK_THAT(with(kv_f32("llama.rope.freq_base", INFINITY)), Catch::Contains("llama.rope.freq_base"));
    CHECK_THAT(with(kv_u32("llama.vocab_size", 9)), Catch::Contains("llama.vocab_size is 9, but token_embd.weight has 8 rows"));
    CHECK_THAT(with(kv_u32("llama.feed_forward_length", 32)), Catch::Contains("tensor 'blk.0.ffn_gate.weight' has shape {32, 64}, but the llama.* keys imply {32, 32}"));
    CHECK_THAT(with(kv_u32("llama.block_count", 2)), Catch::Contains("lacks tensor 'blk.1.attn_norm.weight'"));
}

TEST_CASE("GGUF errors in the tokenizer metadata", "[gguf]") {
    auto with = [](const Kv& kv) {
        SmallGguf s;
        s.set_key(kv);
        return load_error(s);
    };
    CHECK_THAT(with(kv_strings("tokenizer.ggml.tokens", {"a", "b"})), Catch::Contains("tokenizer.ggml.tokens has 2 tokens, but token_embd.weight has 8 rows"));
    CHECK_THAT(with(kv_floats("tokenizer.ggml.scores", {1, 2, 3})), Catch::Contains("tokenizer.ggml.scores has 3 entries for 8 tokens"));
    CHECK_THAT(with(kv_ints("tokenizer.ggml.token_type", {1, 1})), Catch::Contains("token_type has 2 entries for 8 tokens"));
    CHECK_THAT(with(kv_ints("tokenizer.ggml.token_type", {1, 1, 1, 1, 9, 1, 1, 1})), Catch::Contains("token_type of token 4 is 9"));
    CHECK_THAT(with(kv_u32("tokenizer.ggml.eos_token_id", 8)), Catch::Contains("tokenizer.ggml.eos_token_id is 8, but the vocabulary has 8 tokens"));
    CHECK_THAT(with(kv_u32("tokenizer.ggml.padding_token_id", 0xFFFFFFFFu)), Catch::Contains("padding_token_id is 4294967295"));
    CHECK_THAT(with(kv_u32("tokenizer.ggml.add_bos_token", 1)), Catch::Contains("add_bos_token holds u32, not a bool"));
    CHECK_THAT(with({"tokenizer.ggml.add_bos_token", BOOL, std::string(1, '\x02')}), Catch::Contains("a bool of value 2, not 0 or 1"));
    CHECK_THAT(with(kv_u32("tokenizer.ggml.tokens", 3)), Catch::Contains("tokenizer.ggml.tokens holds u32, not an array of strings"));
    CHECK_THAT(with(kv_ints("tokenizer.ggml.merges", {1})), Catch::Contains("merges holds an array of i32, not an array of strings"));
    CHECK_THAT(with(kv_u32("tokenizer.chat_template", 1)), Catch::Contains("tokenizer.chat_template holds u32, not a string"));
    SmallGguf s;
    s.drop_key("tokenizer.ggml.model");
    CHECK_THAT(load_error(s), Catch::Contains("has tokenizer.ggml.tokens but no tokenizer.ggml.model"));
    s.drop_key("tokenizer.ggml.tokens");  // no tokenizer at all: loads, without a spec
    CHECK(load_error(s) == "ok");
    SmallGguf t;
    t.drop_key("tokenizer.ggml.tokens");
    CHECK_THAT(load_error(t), Catch::Contains("has no tokenizer.ggml.tokens"));
}

TEST_CASE("GGUF errors in the tensors: missing, misshapen, extra, not finite", "[gguf]") {
    {
        SmallGguf s;
        s.tensors.erase(s.tensors.begin() + 3);
        CHECK_THAT(load_error(s), Catch::Contains("lacks tensor 'blk.0.ffn_gate.weight'"));
    }
    {
        SmallGguf s;
        s.tensor("blk.0.attn_q.weight").ne = {64, 16};
        CHECK_THAT(load_error(s), Catch::Contains("tensor 'blk.0.attn_q.weight' has shape {64, 16}, but the llama.* keys imply {32, 32}"));
        s.tensor("blk.0.attn_q.weight").ne = {32, 32, 1};
        CHECK_THAT(load_error(s), Catch::Contains("has shape {32, 32, 1}"));
    }
    {
        SmallGguf s;
        s.tensors.push_back({"blk.0.attn_q.bias", {32}, F32, std::string(128, '\0')});
        CHECK_THAT(load_error(s), Catch::Contains("holds tensor 'blk.0.attn_q.bias', which kvshare's Llama has no place for"));
        s.tensors.back().name = "rope_freqs.weight";
        CHECK_THAT(load_error(s), Catch::Contains("rope_freqs.weight (Llama 3.1-style RoPE scaling)"));
    }
    {
        SmallGguf s;
        s.tensor("token_embd.weight").ne = {64, 4};
        CHECK_THAT(load_error(s), Catch::Contains("tensor 'token_embd.weight' has shape {64, 4}, but embedding_length 32 implies {32, vocab}"));
        s.tensor("token_embd.weight").ne = {256};
        CHECK_THAT(load_error(s), Catch::Contains("has shape {256}"));
    }
    {
        // an output.weight of the wrong shape: the classifier is untied, so it is checked
        SmallGguf s;
        s.tensors.push_back({"output.weight", {32, 7}, F32, std::string(32 * 7 * 4, '\0')});
        CHECK_THAT(load_error(s), Catch::Contains("tensor 'output.weight' has shape {32, 7}"));
    }
    // NaN and Inf scales and values: an error naming the tensor, at load
    for (uint16_t bad : {(uint16_t)0x7C00, (uint16_t)0xFC00, (uint16_t)0x7E00}) {
        INFO("f16 bits " << bad);
        SmallGguf s;
        std::memcpy(&s.tensor("token_embd.weight").data[34 * 3], &bad, 2);  // block 3's d (Q8_0)
        CHECK_THAT(load_error(s), Catch::Contains("tensor 'token_embd.weight' (Q8_0) holds NaN or Inf at value 96 (a block's scale or minimum is NaN or Inf)"));
        SmallGguf t;
        std::memcpy(&t.tensor("blk.0.ffn_up.weight").data[20 + 2], &bad, 2);  // block 1's minimum (Q4_1)
        CHECK_THAT(load_error(t), Catch::Contains("tensor 'blk.0.ffn_up.weight' (Q4_1) holds NaN or Inf at value 32"));
    }
    SmallGguf s;
    const float nan = NAN;
    std::memcpy(&s.tensor("output_norm.weight").data[8], &nan, 4);
    CHECK_THAT(load_error(s), Catch::Contains("tensor 'output_norm.weight' (F32) holds NaN or Inf at value 2"));
}

// ---------------------------------------------------------------------------
// the real SmolLM2-135M-Instruct Q4_1 file (make smollm2)

namespace {

const std::string kSmolLM2 = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

bool have_smollm2(const std::string& test) {
    if (access(kSmolLM2.c_str(), R_OK) == 0) return true;
    WARN("SKIPPED: " << test << ": " << kSmolLM2 << " is absent (`make smollm2` fetches it)");
    return false;
}

// tests/data/smollm2_reference.txt, made by tests/data/smollm2_reference.py
struct SmolReference {
    std::map<std::string, std::pair<double, double>> sums;  // tensor -> sum, sum of squares
    std::map<std::string, size_t> counts;
    std::vector<int> ids;
    std::vector<std::vector<std::pair<int, double>>> logits;  // per position: (id, logit), top 5 first
};

SmolReference read_reference() {
    std::ifstream f("tests/data/smollm2_reference.txt");
    REQUIRE(f.good());
    SmolReference r;
    std::string line;
    while (std::getline(f, line)) {
        std::istringstream in(line);
        std::string kind;
        in >> kind;
        if (kind == "sum") {
            std::string name, type;
            size_t n;
            double s, ss;
            in >> name >> type >> n >> s >> ss;
            r.sums[name] = {s, ss};
            r.counts[name] = n;
        } else if (kind == "ids") {
            int id;
            while (in >> id) r.ids.push_back(id);
        } else if (kind == "logits") {
            int pos;
            in >> pos;
            std::vector<std::pair<int, double>> row;
            std::string pair;
            while (in >> pair) row.push_back({std::stoi(pair.substr(0, pair.find(':'))), std::stod(pair.substr(pair.find(':') + 1))});
            r.logits.push_back(row);
        }
    }
    return r;
}

}  // namespace

TEST_CASE("SmolLM2 GGUF: its config, tensors and tokenizer", "[gguf][smollm2]") {
    if (!have_smollm2("SmolLM2 GGUF: its config, tensors and tokenizer")) return;
    const GgufFile g = GgufFile::open(kSmolLM2);
    CHECK(g.version() == 3);
    CHECK(g.tensors().size() == 272);
    CHECK(gguf_summary(g) == "GGUF v3, 272 tensors: 210 Q4_1, 61 F32, 1 Q8_0");
    const Model m = load_model(kSmolLM2);
    const Config& c = m.config;
    CHECK(c.dim == 576);
    CHECK(c.hidden_dim == 1536);
    CHECK(c.n_layers == 30);
    CHECK(c.n_heads == 9);
    CHECK(c.n_kv_heads == 3);
    CHECK(c.head_size() == 64);
    CHECK(c.vocab_size == 49152);
    CHECK(c.max_seq_len == 8192);
    CHECK(c.rope_theta == 100000.0f);
    CHECK(c.norm_eps == 1e-5f);
    CHECK(c.shared_classifier);
    CHECK(m.n_params() == 134515008);
    REQUIRE(m.tokenizer_spec);
    const TokenizerSpec& s = *m.tokenizer_spec;
    CHECK(s.model == "gpt2");
    CHECK(s.pre == "smollm");
    CHECK(s.tokens.size() == 49152);
    CHECK(s.merges.size() == 48900);
    CHECK(s.token_types.size() == 49152);
    CHECK(s.scores.empty());
    CHECK(s.tokens[0] == "<|endoftext|>");
    CHECK(s.tokens[1] == "<|im_start|>");
    CHECK(s.tokens[2] == "<|im_end|>");
    CHECK(s.tokens[7042] == "\xC4\xA0Paris");  // "Ġ" is the byte-level space
    CHECK(s.merges[0] == "\xC4\xA0 t");
    CHECK(s.bos_id == 1);
    CHECK(s.eos_id == 2);
    CHECK(s.unk_id == 0);
    CHECK(s.pad_id == 2);
    CHECK_FALSE(s.add_bos);
    CHECK_FALSE(s.add_eos);
    CHECK(starts_with(s.chat_template, "{% for message in messages %}"));
    CHECK(s.chat_template.find("<|im_start|>") != std::string::npos);
    // with a plan: 15 KV layers of 30
    CHECK(load_model(kSmolLM2, "cla:2").plan.n_kv_layers() == 15);
}

TEST_CASE("SmolLM2 GGUF: every tensor dequantizes to the gguf package's values (sums)", "[gguf][smollm2]") {
    if (!have_smollm2("SmolLM2 GGUF: every tensor dequantizes to the gguf package's values (sums)")) return;
    const SmolReference ref = read_reference();
    const GgufFile g = GgufFile::open(kSmolLM2);
    REQUIRE(ref.sums.size() == g.tensors().size());
    for (const GgufTensor& t : g.tensors()) {
        INFO(t.name);
        REQUIRE(ref.sums.count(t.name));
        CHECK(ref.counts.at(t.name) == t.elements);
        std::vector<float> v(t.elements);
        g.read_f32(t, v.data());
        double s = 0, ss = 0, abs_sum = 0;
        for (float x : v) {
            s += x;
            ss += (double)x * x;
            abs_sum += std::fabs(x);
        }
        // both sums in double over the same fp32 values, in different orders: they differ by
        // at most n x 2^-53 x sum |x| (sum of squares: x sum x^2)
        const double n_eps = (double)t.elements * std::ldexp(1.0, -53);
        CHECK(std::fabs(s - ref.sums.at(t.name).first) <= n_eps * abs_sum);
        CHECK(std::fabs(ss - ref.sums.at(t.name).second) <= n_eps * ss);
    }
}

TEST_CASE("SmolLM2 GGUF: logits of \"The capital of France is\" match a float64 forward of the file's tensors", "[gguf][smollm2]") {
    if (!have_smollm2("SmolLM2 GGUF: logits of \"The capital of France is\" match a float64 forward of the file's tensors")) return;
    const SmolReference ref = read_reference();
    const Model m = load_model(kSmolLM2);
    REQUIRE(ref.ids.size() == 5);
    REQUIRE(ref.logits.size() == ref.ids.size());
    const std::vector<float> logits = all_logits(m, ref.ids);
    const int V = m.config.vocab_size;
    double worst = 0;
    for (size_t p = 0; p < ref.ids.size(); p++) {
        INFO("position " << p);
        const float* row = logits.data() + p * V;
        for (const auto& [id, want] : ref.logits[p]) worst = std::max(worst, std::fabs(row[id] - want));
        // the same greedy choice (the reference's top two are far apart at every position)
        const int top = (int)(std::max_element(row, row + V) - row);
        CHECK(top == ref.logits[p][0].first);
    }
    // fp32 through 30 layers against float64: 2.4e-5 at most, measured here, on logits of size ~20
    CHECK(worst < 2e-4);
    CHECK(ref.logits.back()[0].first == 7042);  // " Paris"
}

TEST_CASE("SmolLM2 GGUF: the tokenizer in its metadata is its tokenizer.json, and encodes the corpus as Hugging Face does", "[gguf][smollm2]") {
    if (!have_smollm2("SmolLM2 GGUF: the tokenizer in its metadata is its tokenizer.json, and encodes the corpus as Hugging Face does")) return;
    const Model m = load_model(kSmolLM2);
    REQUIRE(m.tokenizer_spec);
    const TokenizerSpec& from_gguf = *m.tokenizer_spec;
    const TokenizerSpec from_json = load_tokenizer_json(tokenizer_test::kSmolLM2);
    CHECK(from_gguf.tokens == from_json.tokens);
    CHECK(from_gguf.merges == from_json.merges);
    CHECK(from_gguf.token_types == from_json.token_types);
    CHECK(from_gguf.add_bos == from_json.add_bos);  // (EOS is not in a tokenizer.json: its folder's other files name it)
    // the tokenizer generate and chat use for the file: no -z, so the metadata's
    const Tokenizer tok = tokenizer_for("", m);
    CHECK(tok.eos_id == 2);
    CHECK_FALSE(tok.add_bos);
    const ChatTemplate chat = recognise_chat_template(tok.chat_template, kSmolLM2);
    CHECK(chat.format == ChatFormat::ChatML);
    CHECK(chat.default_system.find("SmolLM") != std::string::npos);
    const Json corpus = tokenizer_test::read_json(tokenizer_test::kDataDir + "corpus.json");
    REQUIRE(corpus.items.size() >= 100);
    for (const Json& e : corpus.items) {
        const std::string& text = e.find("text")->text;
        INFO("text: '" << text << "'");
        CHECK(tok.encode(text, false, false) == tokenizer_test::ids_of(*e.find("smollm2")));
    }
}
