// A Llama model from a GGUF file (src/formats/gguf.h): the llama.* keys give the Config, the
// tokenizer.ggml.* keys a TokenizerSpec, and the tensors are converted to fp32 once, into the
// model's stacked layout.
//
// RoPE rows: llama.cpp's converter reorders each q/k head of a Hugging Face checkpoint from
// half-split pairs (i, i + head_size/2) back to adjacent pairs (2i, 2i + 1), the order of
// Meta's original weights (row 2i = HF row i, row 2i + 1 = HF row i + head_size/2), and
// llama.cpp rotates adjacent pairs for "llama". That is kvshare's order
// (src/formats/rope_layout.h), so W_q and W_k are used as stored.
//
// Tensor names (ne lists the fastest dimension first), per layer i:
//   token_embd.weight         {dim, vocab}     token_embedding
//   blk.i.attn_norm.weight    {dim}            rms_att
//   blk.i.attn_{q,k,v}.weight {dim, q|kv dim}  wq, wk, wv
//   blk.i.attn_output.weight  {q dim, dim}     wo
//   blk.i.ffn_norm.weight     {dim}            rms_ffn
//   blk.i.ffn_{gate,up}.weight {dim, hidden}   w1, w3
//   blk.i.ffn_down.weight     {hidden, dim}    w2
//   output_norm.weight        {dim}            rms_final
//   output.weight             {dim, vocab}     wcls (absent: tied to token_embd)
#include "src/formats/checkpoint.h"
#include "src/formats/gguf.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <cmath>
#include <set>

namespace {

// llama.* keys: those read into the Config, and those accepted because they change nothing
// kvshare computes. Any other llama.* key might change the model, so it stops the load.
const std::set<std::string> kLlamaKeys = {
    "context_length", "embedding_length", "block_count", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "rope.freq_base", "attention.layer_norm_rms_epsilon", "rope.dimension_count", "vocab_size",
    "attention.key_length", "attention.value_length", "expert_count", "expert_used_count",
    "tensor_data_layout",  // old converters' note that q/k rows are in Meta's order, as they are
};

struct Keys {
    const GgufFile& g;
    std::string where;  // "'path'"

    const GgufValue* find(const std::string& key) const { return g.find(key); }
    const GgufValue& need(const std::string& key) const {
        const GgufValue* v = g.find(key);
        if (!v) fail(where + " has no " + key);
        return *v;
    }
    int int_value(const std::string& key, int max) const { return (int)g.get_uint(key, need(key), (uint64_t)max); }
    int int_or(const std::string& key, int max, int fallback) const {
        return find(key) ? int_value(key, max) : fallback;
    }
    float float_value(const std::string& key) const {
        const double x = g.get_float(key, need(key));
        if (!std::isfinite((float)x)) fail(where + ": " + key + " " + std::to_string(x) + " is not a finite float");
        return (float)x;
    }
};

// What the llama.* keys say, checked; the vocabulary comes from token_embd.
Config read_config(const Keys& k) {
    const std::string arch_key = "general.architecture";
    const std::string arch = k.g.get_string(arch_key, k.need(arch_key));
    if (arch != "llama")
        fail(k.where + " is a '" + printable(arch) + "' model (general.architecture); kvshare reads Llama-architecture GGUF files (\"llama\") only");
    for (const std::string& key : k.g.keys()) {
        if (key == "split.count" && k.g.get_uint(key, *k.find(key), UINT32_MAX) > 1)
            fail(k.where + " is one part of a split GGUF model (split.count); merge the parts into one file first (llama.cpp's gguf-split --merge)");
        if (!starts_with(key, "llama.")) continue;
        const std::string rest = key.substr(6);
        if (starts_with(rest, "rope.scal")) {
            if (rest == "rope.scaling.type" && k.g.get_string(key, *k.find(key)) == "none") continue;
            fail(k.where + ": " + printable(key) + " is set; kvshare implements plain RoPE only (no RoPE scaling)");
        }
        if (!kLlamaKeys.count(rest))
            fail(k.where + ": key '" + printable(key) + "' is not one kvshare knows; it might change the model, so kvshare stops");
    }
    if (k.int_or("llama.expert_count", INT32_MAX, 0) > 0)
        fail(k.where + " is a mixture-of-experts model (llama.expert_count); kvshare implements dense Llama only");

    Config c;
    c.max_seq_len = k.int_value("llama.context_length", 1 << 20);
    c.dim = k.int_value("llama.embedding_length", 1 << 16);
    c.n_layers = k.int_value("llama.block_count", 1024);
    c.hidden_dim = k.int_value("llama.feed_forward_length", 1 << 18);
    c.n_heads = k.int_value("llama.attention.head_count", 1 << 16);
    c.n_kv_heads = k.int_or("llama.attention.head_count_kv", 1 << 16, c.n_heads);
    c.rope_theta = k.find("llama.rope.freq_base") ? k.float_value("llama.rope.freq_base") : 10000.0f;
    c.norm_eps = k.float_value("llama.attention.layer_norm_rms_epsilon");
    c.shared_classifier = true;  // until output.weight is found
    c.vocab_size = 1;            // until token_embd is read
    try {
        validate_config(c);
    } catch (const std::runtime_error& e) {
        fail(k.where + ": " + e.what());
    }
    for (const char* key : {"llama.rope.dimension_count", "llama.attention.key_length", "llama.attention.value_length"})
        if (k.find(key) && k.int_value(key, 1 << 16) != c.head_size())
            fail(k.where + ": " + key + " is " + std::to_string(k.int_value(key, 1 << 16)) + ", not the head size " +
                 std::to_string(c.head_size()) + " (embedding_length / head_count); kvshare does not implement that");
    return c;
}

std::string shape_string(const std::vector<uint64_t>& ne) {
    std::string s = "{";
    for (size_t i = 0; i < ne.size(); i++) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "}";
}

// The vocabulary: token_embd's rows (and llama.vocab_size, when given, agrees).
int read_vocab(const Keys& k, int dim) {
    const GgufTensor* t = k.g.find_tensor("token_embd.weight");
    if (!t) fail(k.where + " lacks tensor 'token_embd.weight'");
    if (t->ne.size() != 2 || t->ne[0] != (uint64_t)dim)
        fail(k.where + ": tensor 'token_embd.weight' has shape " + shape_string(t->ne) + ", but embedding_length " + std::to_string(dim) +
             " implies {" + std::to_string(dim) + ", vocab}");
    if (t->ne[1] > (1u << 22)) fail(k.where + ": token_embd.weight has " + std::to_string(t->ne[1]) + " rows, more than kvshare's 4194304 tokens");
    const int vocab = (int)t->ne[1];
    if (k.find("llama.vocab_size") && k.int_value("llama.vocab_size", INT32_MAX) != vocab)
        fail(k.where + ": llama.vocab_size is " + std::to_string(k.int_value("llama.vocab_size", INT32_MAX)) + ", but token_embd.weight has " +
             std::to_string(vocab) + " rows");
    return vocab;
}

// The tokenizer.ggml.* keys, checked against the vocabulary; null when the file has none.
std::shared_ptr<TokenizerSpec> read_tokenizer(const Keys& k, int vocab) {
    const std::string T = "tokenizer.ggml.";
    if (!k.find(T + "model")) {
        if (k.find(T + "tokens")) fail(k.where + " has " + T + "tokens but no " + T + "model");
        return nullptr;
    }
    auto spec = std::make_shared<TokenizerSpec>();
    spec->source = k.g.path();
    spec->model = k.g.get_string(T + "model", k.need(T + "model"));
    if (k.find(T + "pre")) spec->pre = k.g.get_string(T + "pre", *k.find(T + "pre"));
    const GgufValue& tokens = k.need(T + "tokens");
    if (tokens.type == GgufValueType::ARRAY && tokens.count != (uint64_t)vocab)
        fail(k.where + ": " + T + "tokens has " + std::to_string(tokens.count) + " tokens, but token_embd.weight has " + std::to_string(vocab) + " rows");
    spec->tokens = k.g.get_strings(T + "tokens", tokens);
    // per-token arrays: as many entries as tokens
    auto per_token = [&](const std::string& key) -> const GgufValue* {
        const GgufValue* v = k.find(key);
        if (v && v->type == GgufValueType::ARRAY && v->count != (uint64_t)vocab)
            fail(k.where + ": " + key + " has " + std::to_string(v->count) + " entries for " + std::to_string(vocab) + " tokens");
        return v;
    };
    if (const GgufValue* v = per_token(T + "scores")) spec->scores = k.g.get_floats(T + "scores", *v);
    if (const GgufValue* v = per_token(T + "token_type")) {
        spec->token_types = k.g.get_ints(T + "token_type", *v);
        for (size_t i = 0; i < spec->token_types.size(); i++)
            if (spec->token_types[i] < 0 || spec->token_types[i] > 6)
                fail(k.where + ": " + T + "token_type of token " + std::to_string(i) + " is " + std::to_string(spec->token_types[i]) +
                     " (GGUF's token types are 0..6)");
    }
    if (const GgufValue* v = k.find(T + "merges")) spec->merges = k.g.get_strings(T + "merges", *v);
    for (auto [name, id] : {std::pair<const char*, int*>{"bos_token_id", &spec->bos_id}, {"eos_token_id", &spec->eos_id},
                            {"unknown_token_id", &spec->unk_id}, {"padding_token_id", &spec->pad_id}})
        if (const GgufValue* v = k.find(T + name)) {
            const uint64_t value = k.g.get_uint(T + name, *v, UINT64_MAX);
            if (value >= (uint64_t)vocab)
                fail(k.where + ": " + T + name + " is " + std::to_string(value) + ", but the vocabulary has " + std::to_string(vocab) + " tokens");
            *id = (int)value;
        }
    // when the file does not say: SentencePiece-style vocabularies begin with BOS (Llama 2),
    // byte-level ones (GPT-2's) do not
    spec->add_bos = k.find(T + "add_bos_token") ? k.g.get_bool(T + "add_bos_token", *k.find(T + "add_bos_token")) : spec->model == "llama";
    spec->add_eos = k.find(T + "add_eos_token") ? k.g.get_bool(T + "add_eos_token", *k.find(T + "add_eos_token")) : false;
    if (const GgufValue* v = k.find("tokenizer.chat_template")) spec->chat_template = k.g.get_string("tokenizer.chat_template", *v);
    return spec;
}

// One tensor the model needs: its GGUF name and shape, and where its floats go.
struct Needed {
    std::string name;
    std::vector<uint64_t> ne;
    Tensor* dst;
    size_t at;  // first float in dst
};

std::string blk(int layer, const char* rest) { return "blk." + std::to_string(layer) + "." + rest + ".weight"; }

std::vector<Needed> needed_tensors(Model& m) {
    const Config& c = m.config;
    Weights& w = m.weights;
    const uint64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, QD = c.q_dim(), KD = c.kv_dim();
    const size_t d = (size_t)D, h = (size_t)H, qd = (size_t)QD, kd = (size_t)KD;
    std::vector<Needed> n;
    n.push_back({"token_embd.weight", {D, V}, &w.token_embedding, 0});
    for (int l = 0; l < c.n_layers; l++) {
        n.push_back({blk(l, "attn_norm"), {D}, &w.rms_att, l * d});
        n.push_back({blk(l, "attn_q"), {D, QD}, &w.wq, l * qd * d});
        n.push_back({blk(l, "attn_k"), {D, KD}, &w.wk, l * kd * d});
        n.push_back({blk(l, "attn_v"), {D, KD}, &w.wv, l * kd * d});
        n.push_back({blk(l, "attn_output"), {QD, D}, &w.wo, l * d * qd});
        n.push_back({blk(l, "ffn_norm"), {D}, &w.rms_ffn, l * d});
        n.push_back({blk(l, "ffn_gate"), {D, H}, &w.w1, l * h * d});
        n.push_back({blk(l, "ffn_down"), {H, D}, &w.w2, l * d * h});
        n.push_back({blk(l, "ffn_up"), {D, H}, &w.w3, l * h * d});
    }
    n.push_back({"output_norm.weight", {D}, &w.rms_final, 0});
    if (!c.shared_classifier) n.push_back({"output.weight", {D, V}, &w.wcls, 0});
    return n;
}

}  // namespace

Model load_gguf(const std::shared_ptr<MappedFile>& file) {
    const GgufFile g = GgufFile::parse(file);
    const Keys k{g, "'" + g.path() + "'"};
    Config c = read_config(k);
    c.vocab_size = read_vocab(k, c.dim);
    c.shared_classifier = g.find_tensor("output.weight") == nullptr;
    std::vector<int> layers(c.n_layers);
    for (int i = 0; i < c.n_layers; i++) layers[i] = i;
    Model m{c, make_plan(layers, false, "standard"), {}};
    m.tokenizer_spec = read_tokenizer(k, c.vocab_size);

    // every name and shape checked before the model takes any memory
    const std::vector<Needed> needed = needed_tensors(m);
    std::set<std::string> used;
    for (const Needed& n : needed) {
        const GgufTensor* t = g.find_tensor(n.name);
        if (!t) fail(k.where + " lacks tensor '" + n.name + "'");
        if (t->ne != n.ne)
            fail(k.where + ": tensor '" + n.name + "' has shape " + shape_string(t->ne) + ", but the llama.* keys imply " + shape_string(n.ne));
        used.insert(n.name);
    }
    for (const GgufTensor& t : g.tensors()) {
        if (used.count(t.name)) continue;
        if (t.name == "rope_freqs.weight")
            fail(k.where + " holds rope_freqs.weight (Llama 3.1-style RoPE scaling); kvshare implements plain RoPE only");
        fail(k.where + " holds tensor '" + printable(t.name) + "', which kvshare's Llama has no place for (a bias, or another architecture?)");
    }

    // one fp32 copy, converted straight from the mapped file, checked against memory first
    check_memory(MemoryNeed().host("the weights converted to fp32", weight_bytes(c, c.n_layers)), "loading " + k.where, "");
    const std::vector<size_t> sizes = weight_sizes(c, c.n_layers);
    const std::vector<Tensor*> tensors = m.weights.tensors();
    for (size_t i = 0; i < tensors.size(); i++) tensors[i]->allocate(sizes[i]);
    // one tensor per thread, in one parallel region (a region per tensor cost more in thread
    // wake-ups than converting the small ones); the first value that is not finite, per tensor
    std::vector<size_t> not_finite(needed.size(), SIZE_MAX);
#pragma omp parallel for schedule(dynamic)
    for (size_t i = 0; i < needed.size(); i++) {
        const GgufTensor& t = *g.find_tensor(needed[i].name);
        float* dst = needed[i].dst->data() + needed[i].at;
        g.read_f32(t, dst);
        for (size_t j = 0; j < t.elements && not_finite[i] == SIZE_MAX; j++)
            if (!std::isfinite(dst[j])) not_finite[i] = j;
    }
    for (size_t i = 0; i < needed.size(); i++)
        if (not_finite[i] != SIZE_MAX) {
            const GgufTensor& t = *g.find_tensor(needed[i].name);
            fail(k.where + ": tensor '" + t.name + "' (" + ggml_type_name((uint32_t)t.type) + ") holds NaN or Inf at value " +
                 std::to_string(not_finite[i]) + (ggml_type_info((uint32_t)t.type)->values == 1 ? "" : " (a block's scale or minimum is NaN or Inf)"));
        }
    return m;
}
