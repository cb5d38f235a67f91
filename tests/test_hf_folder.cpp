// Hugging Face checkpoints: safetensors read and written, half-precision conversions worked
// by hand, the RoPE row conversion on a case worked by hand and against a forward pass that
// rotates half-split pairs as Hugging Face does, folders of every dtype (tied and untied
// classifier, grouped-query heads) against the same weights through the llama2.c path and
// the project format, LCKV configs, sharded indexes, export round trips, and bad input.
#include <catch2/catch.hpp>
#include "reference/forward.h"
#include "reference/ops.h"
#include "src/formats/checkpoint.h"
#include "src/formats/hf_config.h"
#include "src/formats/hf_folder.h"
#include "src/formats/rope_layout.h"
#include "src/formats/safetensors.h"
#include "src/model/backend.h"
#include "src/text/sentencepiece.h"
#include "tests/hf_files.h"
#include "tests/skip_without_gpu.h"
#include <filesystem>

using namespace hf_test;
namespace fs = std::filesystem;

static std::vector<float> all_logits(const Model& m, const std::vector<int>& tokens) {
    auto be = make_cpu_backend(m, 1, (int)tokens.size());
    PrefillOptions o;
    o.all_positions = true;
    be->prefill(tokens.data(), (int)tokens.size(), o);
    return std::vector<float>(be->logits(), be->logits() + tokens.size() * m.config.vocab_size);
}

static const std::vector<int> kTokens = {1, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33};

static void require_same_weights(Model& a, Model& b) {
    auto ta = a.weights.tensors(), tb = b.weights.tensors();
    for (size_t i = 0; i < ta.size(); i++) {
        INFO("tensor " << i);
        CHECK(*ta[i] == *tb[i]);
    }
}

// ---------------------------------------------------------------------------
// safetensors

TEST_CASE("safetensors: F16 and BF16 to fp32 and back, worked out by hand", "[safetensors]") {
    CHECK(f16_to_f32(0x3C00) == 1.0f);
    CHECK(f16_to_f32(0xC000) == -2.0f);
    CHECK(f16_to_f32(0x3555) == 0x1.554p-2f);       // 0.333251953125
    CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));  // the smallest subnormal
    CHECK(f16_to_f32(0x03FF) == std::ldexp(1023.0f, -24));
    CHECK(f16_to_f32(0x0400) == std::ldexp(1.0f, -14));  // the smallest normal
    CHECK(f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(f16_to_f32(0x7C00) == INFINITY);
    CHECK(f16_to_f32(0xFC00) == -INFINITY);
    CHECK(std::isnan(f16_to_f32(0x7E00)));
    CHECK(std::signbit(f16_to_f32(0x8000)));
    CHECK(bf16_to_f32(0x3F80) == 1.0f);
    CHECK(bf16_to_f32(0xC040) == -3.0f);
    CHECK(bf16_to_f32(0x7F80) == INFINITY);
    CHECK(f32_to_bf16(1.0f) == 0x3F80);
    CHECK(f32_to_bf16(-3.0f) == 0xC040);
    CHECK(f32_to_bf16(1.0f + 0x1p-8f) == 0x3F80);            // halfway: to the even 0x3F80
    CHECK(f32_to_bf16(1.0f + 0x3p-8f) == 0x3F82);            // halfway: to the even 0x3F82
    CHECK(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 0x3F81); // past halfway: up
    CHECK(f32_to_bf16(1.0f + 0x1p-8f - 0x1p-20f) == 0x3F80); // short of halfway: down
    CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST_CASE("safetensors: a file reads back tensor by tensor, in every float dtype", "[safetensors]") {
    const std::vector<float> a = {1.0f, -2.0f, 0.5f, 0.25f, -0.125f, 3.0f};
    const std::string path = temp_path("good.safetensors");
    write_bytes(path, safetensors_bytes({{"a32", "F32", {2, 3}, as_dtype(a.data(), 6, "F32")},
                                         {"a16", "F16", {3, 2}, as_dtype(a.data(), 6, "F16")},
                                         {"ab16", "BF16", {6}, as_dtype(a.data(), 6, "BF16")},
                                         {"ints", "I64", {1}, std::string(8, '\0')}}));
    const SafetensorsFile f = SafetensorsFile::open(path);
    REQUIRE(f.tensors().size() == 4);
    for (const char* name : {"a32", "a16", "ab16"}) {
        INFO(name);
        const SafeTensor* t = f.find(name);
        REQUIRE(t);
        CHECK(t->count == 6);
        std::vector<float> out(6, NAN);
        f.read_f32(*t, out.data());
        CHECK(out == a);
    }
    CHECK(f.find("a16")->shape == std::vector<int64_t>{3, 2});
    CHECK(f.find("nope") == nullptr);
    std::vector<float> out(1);
    CHECK_THROWS_WITH(f.read_f32(*f.find("ints"), out.data()), Catch::Contains("dtype I64") && Catch::Contains("F32, F16 and BF16"));
    std::remove(path.c_str());
}

TEST_CASE("safetensors: the writer's files read back, F32 exactly and BF16 rounded", "[safetensors]") {
    const std::vector<float> x = random_vector(37, 5), y = random_vector(12, 6);
    for (DType dtype : {DType::F32, DType::BF16}) {
        const std::string path = temp_path("written.safetensors");
        {
            OutputFile out(path);
            write_safetensors(out, {{"x", {37}, x.data()}, {"y.weight", {3, 4}, y.data()}}, dtype, Json::object().set("format", Json::of("pt")));
            out.commit();
        }
        const std::string bytes = read_bytes(path);
        uint64_t n;
        std::memcpy(&n, bytes.data(), 8);
        CHECK(n % 8 == 0);  // the data starts aligned
        const SafetensorsFile f = SafetensorsFile::open(path);
        std::vector<float> rx(37), ry(12);
        f.read_f32(*f.find("x"), rx.data());
        f.read_f32(*f.find("y.weight"), ry.data());
        CHECK(f.find("y.weight")->shape == std::vector<int64_t>{3, 4});
        for (size_t i = 0; i < 37; i++) CHECK(rx[i] == (dtype == DType::F32 ? x[i] : bf16_to_f32(f32_to_bf16(x[i]))));
        CHECK(compare(ry, y).rel_l2 < (dtype == DType::F32 ? 1e-30 : 4e-3));
        std::remove(path.c_str());
    }
}

TEST_CASE("safetensors: every fault in the header is one clear error", "[safetensors]") {
    const std::string path = temp_path("bad.safetensors");
    const std::string four(16, '\x01');
    auto header_only = [&](const std::string& json, const std::string& data) {
        std::string h = json;
        const uint64_t n = h.size();
        return std::string((const char*)&n, 8) + h + data;
    };
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"short", "shorter than its 8-byte header"},
        {header_only("{}", "").substr(0, 8) + "{", "runs past the end"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}", ""), "not valid JSON"},
        {header_only("[]", ""), "not an object"},
        {header_only("{\"t\": {\"dtype\": \"Q4\", \"shape\": [2], \"data_offsets\": [0, 8]}}", std::string(8, 'x')), "unknown dtype 'Q4'"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [3], \"data_offsets\": [0, 8]}}", std::string(8, 'x')), "its shape and dtype need 12"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 16]}}", std::string(8, 'x')), "outside the 8 bytes"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 0]}}", std::string(8, 'x')), "outside"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [-2], \"data_offsets\": [0, 8]}}", std::string(8, 'x')), "non-negative"},
        {header_only("{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", ""), "needs exactly dtype, shape and data_offsets"},
        {header_only("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
                     "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", std::string(12, 'x')), "overlaps"},
        {header_only("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                     "\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}}", std::string(12, 'x')), "a gap"},
        {header_only("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", std::string(8, 'x')), "belong to none"},
        {header_only("{\"a\": {\"dtype\": \"F32\", \"shape\": [1099511627776, 1099511627776], \"data_offsets\": [0, 4]}}", four), "absurd shape"},
        {header_only("{\"__metadata__\": {\"format\": 1}}", ""), "must be a string"},
        {header_only("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
                     "\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}", std::string(8, 'x')), "duplicate key"},
    };
    for (const auto& [bytes, why] : bad) {
        INFO("expecting: " << why);
        write_bytes(path, bytes);
        CHECK_THROWS_WITH(SafetensorsFile::open(path), Catch::Contains(why) && Catch::Contains(path));
    }
    std::remove(path.c_str());
}

// ---------------------------------------------------------------------------
// RoPE: half-split rows to adjacent rows

TEST_CASE("RoPE conversion: a head of 4 worked out by hand", "[hf]") {
    // One head of size 4 whose W_q is the identity, so q = x = (1, 2, 3, 4), at position 1,
    // theta 10000: pair 0 turns by 1 rad, pair 1 by 10000^(-2/4) = 0.01 rad.
    // Hugging Face pairs (0, 2) and (1, 3):
    //   q0 = 1 cos 1 - 3 sin 1 = -1.98411065    q2 = 3 cos 1 + 1 sin 1 = 2.46237790
    //   q1 = 2 cos .01 - 4 sin .01 = 1.95990067  q3 = 4 cos .01 + 2 sin .01 = 4.01979967
    const std::vector<float> hf_expected = {-1.98411065f, 1.95990067f, 2.46237790f, 4.01979967f};
    const std::vector<float> x = {1, 2, 3, 4};
    std::vector<float> w(16, 0.0f);
    for (int i = 0; i < 4; i++) w[i * 4 + i] = 1.0f;
    const int pos[1] = {1};

    std::vector<float> q_hf(4);
    matmul(q_hf.data(), x.data(), w.data(), 1, 4, 4);
    rope(q_hf.data(), pos, 1, 1, 4, 10000.0f, RopeStyle::HalfSplit);
    for (int i = 0; i < 4; i++) CHECK(q_hf[i] == Approx(hf_expected[i]).epsilon(1e-6));

    // kvshare's rows: adjacent row 2i = HF row i, 2i + 1 = HF row i + 2, so rows (0, 2, 1, 3)
    half_split_to_adjacent(w.data(), 1, 4, 4);
    CHECK(w == std::vector<float>{1, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1});
    std::vector<float> q(4);
    matmul(q.data(), x.data(), w.data(), 1, 4, 4);
    CHECK(q == std::vector<float>{1, 3, 2, 4});
    rope(q.data(), pos, 1, 1, 4, 10000.0f, RopeStyle::Adjacent);
    // the same four numbers, in kvshare's order: pair 0 is (q0, q2), pair 1 is (q1, q3)
    CHECK(q[0] == Approx(hf_expected[0]).epsilon(1e-6));
    CHECK(q[1] == Approx(hf_expected[2]).epsilon(1e-6));
    CHECK(q[2] == Approx(hf_expected[1]).epsilon(1e-6));
    CHECK(q[3] == Approx(hf_expected[3]).epsilon(1e-6));
    // and back
    adjacent_to_half_split(w.data(), 1, 4, 4);
    for (int i = 0; i < 16; i++) CHECK(w[i] == (i % 5 == 0 ? 1.0f : 0.0f));
}

// Hugging Face's Llama forward for one sequence of a standard-plan folder, straight from the
// file's tensors: half-split RoPE on the rows as stored. The ground truth for the loader.
static std::vector<float> hf_style_logits(const std::string& dir, const Config& c, const std::vector<int>& tokens) {
    const SafetensorsFile f = SafetensorsFile::open(dir + "/model.safetensors");
    auto get = [&](const std::string& name) {
        const SafeTensor* t = f.find(name);
        REQUIRE(t);
        std::vector<float> v(t->count);
        f.read_f32(*t, v.data());
        return v;
    };
    auto layer = [](int l, const std::string& rest) { return "model.layers." + std::to_string(l) + "." + rest + ".weight"; };
    const int n = (int)tokens.size(), D = c.dim, QD = c.q_dim(), KD = c.kv_dim(), H = c.hidden_dim, hs = c.head_size();
    std::vector<int> pos(n);
    for (int i = 0; i < n; i++) pos[i] = i;
    const std::vector<float> emb = get("model.embed_tokens.weight");
    std::vector<float> x((size_t)n * D), xb(x.size()), q((size_t)n * QD), k((size_t)n * KD), v(k.size()), att(q.size()),
        h1((size_t)n * H), h3(h1.size()), out(x.size());
    embedding(x.data(), emb.data(), tokens.data(), n, D);
    for (int l = 0; l < c.n_layers; l++) {
        rmsnorm(xb.data(), x.data(), get(layer(l, "input_layernorm")).data(), n, D, c.norm_eps);
        matmul(q.data(), xb.data(), get(layer(l, "self_attn.q_proj")).data(), n, D, QD);
        matmul(k.data(), xb.data(), get(layer(l, "self_attn.k_proj")).data(), n, D, KD);
        matmul(v.data(), xb.data(), get(layer(l, "self_attn.v_proj")).data(), n, D, KD);
        rope(q.data(), pos.data(), n, c.n_heads, hs, c.rope_theta, RopeStyle::HalfSplit);
        rope(k.data(), pos.data(), n, c.n_kv_heads, hs, c.rope_theta, RopeStyle::HalfSplit);
        attention(att.data(), q.data(), k.data(), v.data(), n, 0, false, c.n_heads, c.n_kv_heads, hs);
        matmul(out.data(), att.data(), get(layer(l, "self_attn.o_proj")).data(), n, QD, D);
        residual_add(x.data(), out.data(), x.size());
        rmsnorm(xb.data(), x.data(), get(layer(l, "post_attention_layernorm")).data(), n, D, c.norm_eps);
        matmul(h1.data(), xb.data(), get(layer(l, "mlp.gate_proj")).data(), n, D, H);
        matmul(h3.data(), xb.data(), get(layer(l, "mlp.up_proj")).data(), n, D, H);
        swiglu(h1.data(), h3.data(), h1.size());
        matmul(out.data(), h1.data(), get(layer(l, "mlp.down_proj")).data(), n, H, D);
        residual_add(x.data(), out.data(), x.size());
    }
    rmsnorm(xb.data(), x.data(), get("model.norm.weight").data(), n, D, c.norm_eps);
    std::vector<float> logits((size_t)n * c.vocab_size);
    matmul(logits.data(), xb.data(), get(c.shared_classifier ? "model.embed_tokens.weight" : "lm_head.weight").data(), n, D, c.vocab_size);
    return logits;
}

TEST_CASE("a Hugging Face folder's logits match its forward with half-split RoPE", "[hf]") {
    for (bool tied : {true, false}) {
        INFO("tied " << tied);
        Config c = preset_config("tiny");  // 4 query heads on 2 KV heads
        c.n_layers = 3;
        c.shared_classifier = tied;
        Model m = init_model(c, parse_plan("standard", 3), 21);
        for (auto* t : {&m.weights.wq, &m.weights.wk, &m.weights.wv, &m.weights.wo})
            for (float& x : *t) x *= 8.0f;  // attention far from uniform, so a wrong pairing shows
        const std::string dir = fresh_dir("hf_rope");
        write_folder(dir, m, "F32", config_json(c));
        const std::vector<float> want = hf_style_logits(dir, c, kTokens);
        const Model loaded = load_model(dir);
        const ErrorStats e = compare(all_logits(loaded, kTokens), want);
        CHECK(e.finite);
        CHECK(e.rel_l2 < 1e-5);  // the same ops; only the order of the q.k sums differs
        CHECK(e.max_abs < 1e-4);
        fs::remove_all(dir);
    }
}

// ---------------------------------------------------------------------------
// folders against the llama2.c path and the project format

TEST_CASE("folders of F32, F16 and BF16 load the same weights as the llama2.c path", "[hf]") {
    for (bool tied : {true, false}) {
        const Model m = grid_model("standard", tied, 3);
        const std::string bin = temp_path("grid.bin");
        save_llama2c(bin, m);
        Model via_llama2c = load_model(bin);
        const std::vector<float> want = all_logits(via_llama2c, kTokens);
        for (const char* dtype : {"F32", "F16", "BF16"}) {
            INFO("dtype " << dtype << ", tied " << tied);
            const std::string dir = fresh_dir("hf_grid");
            write_folder(dir, m, dtype, config_json(m.config));
            Model loaded = load_model(dir);
            CHECK(loaded.config.shared_classifier == tied);
            CHECK(loaded.config.n_kv_heads == 2);
            CHECK(loaded.config.norm_eps == 1e-5f);
            CHECK(loaded.plan.n_kv_layers() == 4);
            CHECK_FALSE(loaded.weights.wq.borrowed());  // converted once into owned memory
            require_same_weights(loaded, via_llama2c);
            CHECK(compare(all_logits(loaded, kTokens), want).max_abs == 0.0);
            fs::remove_all(dir);
        }
        std::remove(bin.c_str());
    }
}

TEST_CASE("an LCKV folder: layer_types, force_nodiag and the passes become the plan and prefill", "[hf]") {
    // layers 1 and 2 read layer 3 (upward), layer 0 is its own: no k_proj/v_proj for 1 and 2
    const Model m = grid_model("0,3,3,3", false, 4);
    const std::string dir = fresh_dir("hf_lckv");
    write_folder(dir, m, "BF16", config_json(m.config, "lckv-llama",
                                            ",\n  \"layer_types\": \"0_3_3_3\",\n  \"forward_passes\": 3,\n  \"backward_passes\": 1,"
                                            "\n  \"force_nodiag\": true,\n  \"sliding_window\": 4096,\n  \"use_sequential\": false"));
    Model loaded = load_model(dir);
    CHECK(loaded.plan.source == std::vector<int>{0, 3, 3, 3});
    CHECK(loaded.plan.diag_all);
    CHECK(loaded.plan.n_kv_layers() == 2);
    CHECK(loaded.weights.wk.size() == 2 * (size_t)m.config.kv_dim() * m.config.dim);
    CHECK(parse_prefill("", loaded).iterations == 4);
    CHECK_FALSE(parse_prefill("", loaded).sequential);
    CHECK(parse_prefill("iterations:2", loaded).iterations == 2);
    // the same weights and plan through the project's format give the same logits
    Model with_diag = m;
    with_diag.plan = parse_plan("0,3,3,3,diag=all", 4);
    const std::string kvs = temp_path("lckv.kvs");
    save_model(kvs, with_diag);
    Model via_kvs = load_model(kvs);
    require_same_weights(loaded, via_kvs);
    CHECK(compare(all_logits(loaded, kTokens), all_logits(via_kvs, kTokens)).max_abs == 0.0);
    // use_sequential: token by token unless --prefill says otherwise
    write_bytes(dir + "/config.json", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"0_3_3_3\",\n  \"use_sequential\": true"));
    loaded = load_model(dir);
    CHECK_FALSE(loaded.plan.diag_all);
    CHECK(parse_prefill("", loaded).sequential);
    CHECK_FALSE(parse_prefill("parallel", loaded).sequential);
    CHECK(parse_prefill("parallel", loaded).iterations == 9);  // LCKV's defaults, 7 + 2
    fs::remove_all(dir);
    std::remove(kvs.c_str());
}

TEST_CASE("a sharded folder loads as the single file does", "[hf]") {
    const Model m = grid_model("standard", false, 5);
    const std::string one = fresh_dir("hf_one"), three = fresh_dir("hf_three");
    write_folder(one, m, "F16", config_json(m.config));
    write_folder(three, m, "F16", config_json(m.config), 3);
    CHECK(fs::exists(three + "/model-00003-of-00003.safetensors"));
    CHECK_FALSE(fs::exists(three + "/model.safetensors"));
    Model a = load_model(one), b = load_model(three);
    require_same_weights(a, b);
    fs::remove(three + "/model-00002-of-00003.safetensors");
    CHECK_THROWS_WITH(load_model(three), Catch::Contains("model-00002-of-00003.safetensors' is missing"));
    fs::remove_all(one);
    fs::remove_all(three);
}

// ---------------------------------------------------------------------------
// export

TEST_CASE("export: a folder that loads back bit for bit in F32, and rounded in BF16", "[hf]") {
    for (std::string plan : {"standard", "cla:2", "0,3,3,3,diag=all"}) {
        for (bool tied : {true, false}) {
            INFO("plan " << plan << ", tied " << tied);
            Config c = preset_config("tiny");
            c.n_layers = 4;
            c.shared_classifier = tied;
            Model m = init_model(c, parse_plan(plan, 4), 8);
            m.forward_passes = 5;
            m.backward_passes = 3;
            const std::string dir = temp_path("export");
            fs::remove_all(dir);
            save_hf_folder(dir, m, DType::F32, sentencepiece_model_bytes(Tokenizer::bytes()));
            const Json config = parse_json(read_bytes(dir + "/config.json"), "config");
            const bool lckv = plan != "standard";
            CHECK(config.find("model_type")->text == (lckv ? "lckv-llama" : "llama"));
            CHECK((config.find("layer_types") != nullptr) == lckv);
            // what AutoTokenizer and generate() read: the tokenizer class, BOS and EOS
            CHECK(config.find("tokenizer_class")->text == "LlamaTokenizer");
            const Json generation = parse_json(read_bytes(dir + "/generation_config.json"), "generation_config");
            CHECK(generation.find("bos_token_id")->text == "1");
            CHECK(generation.find("eos_token_id")->text == "2");
            Model r = load_model(dir);
            CHECK(r.plan.source == m.plan.source);
            CHECK(r.plan.diag_all == m.plan.diag_all);
            if (lckv) CHECK(r.forward_passes + r.backward_passes == 8);
            require_same_weights(r, m);
            CHECK(compare(all_logits(r, kTokens), all_logits(m, kTokens)).max_abs == 0.0);
            CHECK(r.tokenizer_path == dir + "/tokenizer.model");
            CHECK(load_tokenizer_file(r.tokenizer_path, 259).pieces == Tokenizer::bytes().pieces);
            // BF16: every weight is its fp32 rounded to bf16
            fs::remove_all(dir);
            save_hf_folder(dir, m, DType::BF16, sentencepiece_model_bytes(Tokenizer::bytes()));
            Model h = load_model(dir);
            auto th = h.weights.tensors(), tm = m.weights.tensors();
            for (size_t i = 0; i < th.size(); i++)
                for (size_t j = 0; j < th[i]->size(); j++)
                    if ((*th[i])[j] != bf16_to_f32(f32_to_bf16((*tm[i])[j]))) FAIL("tensor " << i << " element " << j);
            CHECK(compare(all_logits(h, kTokens), all_logits(m, kTokens)).rel_l2 < 0.05);
            fs::remove_all(dir);
        }
    }
}

TEST_CASE("export writes all or nothing", "[hf]") {
    const Model m = init_model(preset_config("tiny"), parse_plan("standard", 8), 9);
    // config.json has no number for an infinite rope_theta: the export fails after the
    // weights are written
    Model broken = init_model(preset_config("tiny"), parse_plan("cla:2", 8), 10);
    broken.config.rope_theta = INFINITY;
    const std::string dir = temp_path("export_atomic"), temp = dir + ".tmp-" + std::to_string(getpid());
    fs::remove_all(dir);
    CHECK_THROWS_WITH(save_hf_folder(dir, broken, DType::F32, "tok"), Catch::Contains("JSON has no number"));
    CHECK_FALSE(fs::exists(dir));  // a new folder appears only once complete
    CHECK_FALSE(fs::exists(temp));
    save_hf_folder(dir, m, DType::F32, "tok");
    const std::string config = read_bytes(dir + "/config.json"), weights = read_bytes(dir + "/model.safetensors");
    CHECK_THROWS(save_hf_folder(dir, broken, DType::F32, "other"));
    CHECK(read_bytes(dir + "/config.json") == config);  // an existing folder keeps its files
    CHECK(read_bytes(dir + "/model.safetensors") == weights);
    CHECK(read_bytes(dir + "/tokenizer.model") == "tok");
    size_t files = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
        files++;
    }
    CHECK(files == 4);
    write_bytes(temp, "a file where the temporary folder would go");
    fs::remove_all(dir);
    CHECK_THROWS_WITH(save_hf_folder(dir, m, DType::F32, "tok"), Catch::Contains("cannot create folder"));
    CHECK_FALSE(fs::exists(dir));
    fs::remove(temp);
}

TEST_CASE("config.json as SmolLM2's authors publish it: keys that change nothing load, rope_interleaved true is refused", "[hf]") {
    const Model m = grid_model("standard", true, 8, 2);
    const std::string dir = fresh_dir("hf_smollm2_config");
    // SmolLM2-135M-Instruct's keys besides the ones config_json writes (values as published)
    const std::string published =
        ",\n  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n  \"initializer_range\": 0.041666666666666664,"
        "\n  \"is_llama_config\": true,\n  \"mlp_bias\": false,\n  \"pad_token_id\": 2,\n  \"pretraining_tp\": 1,"
        "\n  \"rope_interleaved\": false,"
        "\n  \"transformers.js_config\": {\"kv_cache_dtype\": {\"q4f16\": \"float16\", \"fp16\": \"float16\"}}";
    write_folder(dir, m, "F32", config_json(m.config));
    const std::vector<float> want = all_logits(load_model(dir), kTokens);
    std::string tp2 = config_json(m.config, "llama", published);
    tp2.replace(tp2.find("\"pretraining_tp\": 1"), 19, "\"pretraining_tp\": 2");
    for (const std::string& config : {config_json(m.config, "llama", published), tp2}) {
        write_bytes(dir + "/config.json", config);
        CHECK(compare(all_logits(load_model(dir), kTokens), want).max_abs == 0.0);
    }
    std::string interleaved = config_json(m.config, "llama", published);
    interleaved.replace(interleaved.find("\"rope_interleaved\": false"), 25, "\"rope_interleaved\": true");
    write_bytes(dir + "/config.json", interleaved);
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("rope_interleaved is true"));
    interleaved.replace(interleaved.find("\"rope_interleaved\": true"), 24, "\"rope_interleaved\": 1");
    write_bytes(dir + "/config.json", interleaved);
    CHECK_THROWS_WITH(load_model(dir), Catch::Contains("rope_interleaved"));
    fs::remove_all(dir);
}

// ---------------------------------------------------------------------------
// bad folders

TEST_CASE("bad folders and configs give one clear error each", "[hf]") {
    const Model m = grid_model("standard", true, 6, 2);
    const std::string dir = fresh_dir("hf_bad");
    auto reset = [&] {
        fs::remove_all(dir);
        fs::create_directories(dir);
        write_folder(dir, m, "F32", config_json(m.config));
    };
    auto expect = [&](const std::string& why) {
        INFO("expecting: " << why);
        CHECK_THROWS_WITH(load_model(dir), Catch::Contains(why));
        reset();
    };
    reset();
    REQUIRE_NOTHROW(load_model(dir));
    const std::string good = config_json(m.config);
    auto with = [&](const std::string& extra) { return config_json(m.config, "llama", extra); };

    write_bytes(dir + "/config.json", good.substr(0, good.size() / 2));
    expect("is not valid JSON");
    write_bytes(dir + "/config.json", with(",\n  \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}"));
    expect("rope_scaling");
    write_bytes(dir + "/config.json", with(",\n  \"attention_bias\": true"));
    expect("attention_bias is true");
    write_bytes(dir + "/config.json", with(",\n  \"mlp_bias\": true"));
    expect("mlp_bias is true");
    std::string gelu = good;
    gelu.replace(gelu.find("\"silu\""), 6, "\"gelu\"");
    write_bytes(dir + "/config.json", gelu);
    expect("hidden_act is 'gelu'");
    write_bytes(dir + "/config.json", with(",\n  \"head_dim\": 16"));
    expect("head_dim 16");
    write_bytes(dir + "/config.json", with(",\n  \"frobnicate\": 1"));
    expect("key 'frobnicate' is not one kvshare knows");
    write_bytes(dir + "/config.json", with(",\n  \"layer_types\": \"0_1\""));
    expect("for model_type \"llama\"");
    write_bytes(dir + "/config.json", config_json(m.config, "mistral"));
    expect("model_type 'mistral'");
    write_bytes(dir + "/config.json", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"0_1s\""));
    expect("sliding-window");
    write_bytes(dir + "/config.json", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"0_1_1\""));
    expect("names 3 layers");
    write_bytes(dir + "/config.json", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"1_0\""));
    expect("layer 0 reads layer 1, which reads layer 0. In the LCKV authors' code layer 1 then computes K/V of its own");
    write_bytes(dir + "/config.json", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"2_0\""));
    expect("reads layer 2, but the model has layers 0..1");
    std::string huge = good;
    huge.replace(huge.find("\"hidden_size\": 48"), 17, "\"hidden_size\": 4800000000");
    write_bytes(dir + "/config.json", huge);
    expect("out of range");
    std::string inf_theta = good;
    inf_theta.replace(inf_theta.find("10000.0"), 7, "1e39");
    write_bytes(dir + "/config.json", inf_theta);
    expect("rope_theta 1e39 does not fit a float");
    std::string no_layers = good;
    no_layers.replace(no_layers.find("\"num_hidden_layers\""), 19, "\"num_hidden_layerz\"");
    write_bytes(dir + "/config.json", no_layers);
    expect("num_hidden_layerz");
    fs::remove(dir + "/config.json");
    expect("without config.json");
    fs::remove(dir + "/model.safetensors");
    expect("neither model.safetensors nor model.safetensors.index.json");

    // tensors: missing, misshapen, an extra one, a dtype kvshare does not compute with
    std::vector<RawTensor> t = hf_tensors(m, "F32");
    auto write_tensors = [&](const std::vector<RawTensor>& ts) { write_bytes(dir + "/model.safetensors", safetensors_bytes(ts)); };
    std::vector<RawTensor> missing = t;
    missing.erase(missing.begin() + 3);
    write_tensors(missing);
    expect("lacks tensor '" + t[3].name + "'");
    std::vector<RawTensor> misshapen = t;
    misshapen[2].shape = {48, 24};  // k_proj (24 x 48) transposed: the same bytes
    write_tensors(misshapen);
    expect("has shape [48, 24], but config.json implies [24, 48]");
    std::vector<RawTensor> extra = t;
    extra.push_back({"model.layers.0.self_attn.q_proj.bias", "F32", {48}, std::string(48 * 4, '\0')});
    write_tensors(extra);
    expect("holds tensor 'model.layers.0.self_attn.q_proj.bias'");
    std::vector<RawTensor> ints = t;
    ints[0].dtype = "I32";
    write_tensors(ints);
    expect("dtype I32");
    std::vector<RawTensor> with_table = t;  // a RoPE table some exports keep: ignored
    with_table.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {6}, std::string(24, '\0')});
    write_tensors(with_table);
    CHECK_NOTHROW(load_model(dir));
    // a bad shard index
    fs::remove(dir + "/model.safetensors");
    write_bytes(dir + "/model.safetensors.index.json", "{\"weight_map\": {\"model.norm.weight\": \"../escape.safetensors\"}}");
    expect("is not a file name in the folder");
    fs::remove(dir + "/model.safetensors");
    write_bytes(dir + "/model.safetensors.index.json", "{\"metadata\": {}}");
    expect("no weight_map");
    fs::remove(dir + "/model.safetensors");
    write_bytes(dir + "/pytorch_model.bin", "x");
    expect("PyTorch .bin weights");
    // the parts of a folder given on their own
    CHECK_THROWS_WITH(load_model(dir + "/model.safetensors"), Catch::Contains("is a safetensors file; give the folder"));
    CHECK_THROWS_WITH(load_model(dir + "/config.json"), Catch::Contains("is a JSON file"));
    fs::remove_all(dir);
}

// ---------------------------------------------------------------------------
// the CUDA path on loaded checkpoints (a GPU, or the CPU emulator)

TEST_CASE("the CUDA forward runs on a mapped llama2.c file and on a converted folder", "[cuda][hf]") {
    SKIP_WITHOUT_GPU();
    const Model m = grid_model("standard", false, 12, 2);
    const std::string bin = temp_path("cuda.bin"), dir = fresh_dir("hf_cuda");
    save_llama2c(bin, m);
    write_folder(dir, m, "BF16", config_json(m.config, "lckv-llama", ",\n  \"layer_types\": \"1_1\""));  // layer 0 reads layer 1
    const std::vector<int> tokens = {1, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49};  // 11 > 9: iterates
    for (const std::string& path : {bin, dir}) {
        INFO(path);
        const Model loaded = load_model(path);
        CHECK(loaded.weights.wq.borrowed() == (path == bin));
        const std::vector<float> cpu = all_logits(loaded, tokens);
        auto gpu = make_cuda_backend(loaded, 1, (int)tokens.size());
        PrefillOptions o;
        o.all_positions = true;
        std::vector<float> out(cpu.size(), NAN);
        gpu->prefill(tokens.data(), (int)tokens.size(), o);
        std::copy(gpu->logits(), gpu->logits() + out.size(), out.begin());
        const ErrorStats e = compare(out, cpu);
        CHECK(e.finite);
        CHECK(e.rel_l2 < 1e-4);
    }
    std::remove(bin.c_str());
    fs::remove_all(dir);
}

TEST_CASE("the project's format and llama2.c files are used in place, not copied", "[model][hf]") {
    const Model m = grid_model("standard", false, 13, 2);
    const std::string kvs = temp_path("inplace.kvs"), bin = temp_path("inplace.bin");
    save_model(kvs, m);
    save_llama2c(bin, m);
    for (const std::string& path : {kvs, bin}) {
        INFO(path);
        Model r = load_model(path);
        for (Tensor* t : r.weights.tensors()) CHECK((t->borrowed() || t->empty()));
        // a plan with the same KV layers moves every tensor through; another one copies only W_K, W_V
        Model same = load_model(path, "standard");
        CHECK(same.weights.wk.borrowed());
        Model fewer = load_model(path, "cla:2");
        CHECK(fewer.weights.wq.borrowed());
        CHECK_FALSE(fewer.weights.wk.borrowed());
        // a copy owns its floats, and writing through a loaded model never reaches the file
        Model copy = r;
        CHECK_FALSE(copy.weights.wq.borrowed());
        CHECK(copy.weights.wq == r.weights.wq);
        const std::string before = read_bytes(path);
        r.weights.wq[0] += 1.0f;
        CHECK(read_bytes(path) == before);
        CHECK(load_model(path).weights.wq[0] == m.weights.wq[0]);
    }
    std::remove(kvs.c_str());
    std::remove(bin.c_str());
}
