#include "src/model.h"
#include "src/util.h"
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

static const char kMagic[4] = {'K', 'V', 'S', 'H'};
static const int32_t kVersion = 1;

std::vector<std::vector<float>*> Weights::tensors() {
    return {&token_embedding, &rms_att, &wq, &wk, &wv, &wo, &rms_ffn, &w1, &w2, &w3, &rms_final, &wcls};
}

size_t Model::n_params() const {
    size_t n = 0;
    for (auto* t : const_cast<Weights&>(weights).tensors()) n += t->size();
    return n;
}

void allocate_weights(Model& m) {
    const Config& c = m.config;
    const size_t L = c.n_layers, KVL = m.plan.n_kv_layers(), D = c.dim, H = c.hidden_dim;
    Weights& w = m.weights;
    w.token_embedding.assign((size_t)c.vocab_size * D, 0.0f);
    w.rms_att.assign(L * D, 0.0f);
    w.wq.assign(L * c.q_dim() * D, 0.0f);
    w.wk.assign(KVL * c.kv_dim() * D, 0.0f);
    w.wv.assign(KVL * c.kv_dim() * D, 0.0f);
    w.wo.assign(L * D * c.q_dim(), 0.0f);
    w.rms_ffn.assign(L * D, 0.0f);
    w.w1.assign(L * H * D, 0.0f);
    w.w2.assign(L * D * H, 0.0f);
    w.w3.assign(L * H * D, 0.0f);
    w.rms_final.assign(D, 0.0f);
    w.wcls.assign(c.shared_classifier ? 0 : (size_t)c.vocab_size * D, 0.0f);
}

Model init_model(const Config& c, const Plan& plan, uint64_t seed) {
    validate_config(c);
    if (plan.n_layers() != c.n_layers) fail("plan has " + std::to_string(plan.n_layers()) + " layers, model " + std::to_string(c.n_layers));
    Model m{c, plan, {}};
    m.random_weights = true;
    allocate_weights(m);
    Rng rng(seed);
    Weights& w = m.weights;
    const float std_in = 0.02f, std_out = 0.02f / std::sqrt(2.0f * c.n_layers);
    for (auto* t : {&w.token_embedding, &w.wq, &w.wk, &w.wv, &w.w1, &w.w3, &w.wcls})
        for (float& x : *t) x = std_in * rng.normal();
    for (auto* t : {&w.wo, &w.w2})
        for (float& x : *t) x = std_out * rng.normal();
    for (auto* t : {&w.rms_att, &w.rms_ffn, &w.rms_final})
        for (float& x : *t) x = 1.0f;
    return m;
}

// ---------------------------------------------------------------------------
// file I/O helpers

namespace {

struct File {
    FILE* f = nullptr;
    std::string path;
    File(const std::string& p, const char* mode) : path(p) {
        f = std::fopen(p.c_str(), mode);
        if (!f) fail("cannot open '" + p + "'");
    }
    ~File() { if (f) std::fclose(f); }
    size_t size() {
        std::fseek(f, 0, SEEK_END);
        long n = std::ftell(f);
        std::fseek(f, 0, SEEK_SET);
        return n < 0 ? 0 : (size_t)n;
    }
    void read(void* dst, size_t bytes) {
        if (std::fread(dst, 1, bytes, f) != bytes) fail("'" + path + "' is truncated");
    }
    void write(const void* src, size_t bytes) {
        if (std::fwrite(src, 1, bytes, f) != bytes) fail("error writing '" + path + "'");
    }
    void skip(size_t bytes) {
        if (std::fseek(f, (long)bytes, SEEK_CUR) != 0) fail("'" + path + "' is truncated");
    }
};

size_t expected_bytes(Model& m) {
    size_t n = 0;
    for (auto* t : m.weights.tensors()) n += t->size() * sizeof(float);
    return n;
}

void check_finite(const Model& m, const std::string& path) {
    for (auto* t : const_cast<Weights&>(m.weights).tensors())
        for (float x : *t)
            if (!std::isfinite(x)) fail("'" + path + "' holds NaN or Inf weights");
}

// ---------------------------------------------------------------------------
// llama2.c legacy format: 7 int32 header, then the tensors of run.c's TransformerWeights.
// vocab_size < 0 means the classifier is stored separately.

Model load_llama2c(const std::string& path, File& file) {
    const size_t file_size = file.size();
    int32_t h[7];
    file.read(h, sizeof h);
    Config c;
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.shared_classifier = h[5] > 0;
    c.vocab_size = h[5] < 0 ? -h[5] : h[5];
    c.max_seq_len = h[6];
    try {
        validate_config(c);
    } catch (const std::runtime_error& e) {
        fail("'" + path + "' is neither a kvshare model nor a llama2.c checkpoint (" + e.what() + ")");
    }
    std::vector<int> id(c.n_layers);
    for (int i = 0; i < c.n_layers; i++) id[i] = i;
    Model m{c, make_plan(id, false, "standard"), {}};
    allocate_weights(m);
    const size_t rope_bytes = (size_t)c.max_seq_len * c.head_size() * sizeof(float);  // freq_cis real + imag
    const size_t want = sizeof h + expected_bytes(m) + rope_bytes;
    if (file_size != want)
        fail("'" + path + "' has " + std::to_string(file_size) + " bytes, but a llama2.c checkpoint with its header needs " +
             std::to_string(want) + " (truncated, or not a llama2.c file)");
    Weights& w = m.weights;
    for (auto* t : {&w.token_embedding, &w.rms_att, &w.wq, &w.wk, &w.wv, &w.wo, &w.rms_ffn, &w.w1, &w.w2, &w.w3, &w.rms_final})
        file.read(t->data(), t->size() * sizeof(float));
    file.skip(rope_bytes);
    if (!c.shared_classifier) file.read(w.wcls.data(), w.wcls.size() * sizeof(float));
    return m;
}

Model load_kvshare(const std::string& path, File& file) {
    const size_t file_size = file.size();
    char magic[4];
    int32_t version;
    file.read(magic, 4);
    file.read(&version, 4);
    if (version != kVersion) fail("'" + path + "' is kvshare format version " + std::to_string(version) + "; this build reads version " + std::to_string(kVersion));
    int32_t h[8];
    float f[2];
    file.read(h, sizeof h);
    file.read(f, sizeof f);
    Config c;
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.vocab_size = h[5]; c.max_seq_len = h[6]; c.shared_classifier = h[7] != 0;
    c.rope_theta = f[0]; c.norm_eps = f[1];
    try {
        validate_config(c);
    } catch (const std::runtime_error& e) {
        fail("'" + path + "' has a corrupt header (" + e.what() + ")");
    }
    int32_t flags;  // bit 0: diag=all, bit 1: random weights
    file.read(&flags, 4);
    const int32_t diag_all = flags & 1;
    std::vector<int32_t> src(c.n_layers);
    file.read(src.data(), src.size() * 4);
    Model m{c, make_plan(std::vector<int>(src.begin(), src.end()), diag_all != 0, "stored"), {}};
    m.random_weights = (flags & 2) != 0;
    for (int i = 0; i < c.n_layers; i++)
        if (m.plan.source[i] != src[i]) fail("'" + path + "' stores an unresolved plan");
    allocate_weights(m);
    const size_t header = 8 + sizeof h + sizeof f + 4 + src.size() * 4;
    const size_t want = header + expected_bytes(m);
    if (file_size != want)
        fail("'" + path + "' has " + std::to_string(file_size) + " bytes, but its header implies " + std::to_string(want) + " (truncated or corrupt)");
    for (auto* t : m.weights.tensors()) file.read(t->data(), t->size() * sizeof(float));
    return m;
}

}  // namespace

// ---------------------------------------------------------------------------

void check_plan_applies(const Model& m, const Plan& plan) {
    const Config& c = m.config;
    if (plan.n_layers() != c.n_layers)
        fail("plan '" + plan.name + "' has " + std::to_string(plan.n_layers()) + " layers, but the model has " + std::to_string(c.n_layers));
    for (int layer : plan.kv_layers)
        if (!m.plan.owns_kv(layer))
            fail("plan '" + plan.name + "' needs the K/V weights of layer " + std::to_string(layer) +
                 ", which this checkpoint does not hold (its plan is " + m.plan.spec() + ")");
}

Model apply_plan(const Model& m, const Plan& plan) {
    const Config& c = m.config;
    check_plan_applies(m, plan);
    Model out{c, plan, {}};
    out.random_weights = m.random_weights;
    allocate_weights(out);
    Weights& w = out.weights;
    const Weights& from = m.weights;
    for (auto pair : {std::make_pair(&w.token_embedding, &from.token_embedding), std::make_pair(&w.rms_att, &from.rms_att),
                      std::make_pair(&w.wq, &from.wq), std::make_pair(&w.wo, &from.wo), std::make_pair(&w.rms_ffn, &from.rms_ffn),
                      std::make_pair(&w.w1, &from.w1), std::make_pair(&w.w2, &from.w2), std::make_pair(&w.w3, &from.w3),
                      std::make_pair(&w.rms_final, &from.rms_final), std::make_pair(&w.wcls, &from.wcls)})
        *pair.first = *pair.second;
    const size_t per = (size_t)c.kv_dim() * c.dim;
    for (int layer : plan.kv_layers) {
        size_t dst = (size_t)plan.kv_slot[layer] * per, src = (size_t)m.plan.kv_slot[layer] * per;
        std::copy(from.wk.begin() + src, from.wk.begin() + src + per, w.wk.begin() + dst);
        std::copy(from.wv.begin() + src, from.wv.begin() + src + per, w.wv.begin() + dst);
    }
    return out;
}

Model load_model(const std::string& path, const std::string& plan_spec) {
    File file(path, "rb");
    if (file.size() < 28) fail("'" + path + "' is too small to be a model (" + std::to_string(file.size()) + " bytes)");
    char magic[4];
    file.read(magic, 4);
    std::fseek(file.f, 0, SEEK_SET);
    Model m;
    if (std::memcmp(magic, kMagic, 4) == 0) {
        m = load_kvshare(path, file);
    } else if (std::memcmp(magic, "ak42", 4) == 0) {
        fail("'" + path + "' is a llama2.c version-2 export; kvshare reads llama2.c's legacy .bin (export with --version 0)");
    } else {
        m = load_llama2c(path, file);
    }
    check_finite(m, path);
    if (!plan_spec.empty()) m = apply_plan(m, parse_plan(plan_spec, m.config.n_layers));
    else m.plan.name = m.plan.spec();
    return m;
}

void save_model(const std::string& path, const Model& m) {
    File file(path, "wb");
    const Config& c = m.config;
    int32_t h[8] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len, c.shared_classifier ? 1 : 0};
    float f[2] = {c.rope_theta, c.norm_eps};
    int32_t flags = (m.plan.diag_all ? 1 : 0) | (m.random_weights ? 2 : 0);
    std::vector<int32_t> src(m.plan.source.begin(), m.plan.source.end());
    file.write(kMagic, 4);
    file.write(&kVersion, 4);
    file.write(h, sizeof h);
    file.write(f, sizeof f);
    file.write(&flags, 4);
    file.write(src.data(), src.size() * 4);
    for (auto* t : const_cast<Weights&>(m.weights).tensors()) file.write(t->data(), t->size() * sizeof(float));
}

void save_llama2c(const std::string& path, const Model& m) {
    const Config& c = m.config;
    if (m.plan.n_kv_layers() != c.n_layers) fail("llama2.c checkpoints need every layer's K/V weights (the standard plan)");
    File file(path, "wb");
    int32_t h[7] = {c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                    c.shared_classifier ? c.vocab_size : -c.vocab_size, c.max_seq_len};
    file.write(h, sizeof h);
    const Weights& w = m.weights;
    for (auto* t : {&w.token_embedding, &w.rms_att, &w.wq, &w.wk, &w.wv, &w.wo, &w.rms_ffn, &w.w1, &w.w2, &w.w3, &w.rms_final})
        file.write(t->data(), t->size() * sizeof(float));
    // freq_cis_real, freq_cis_imag: (seq_len, head_size / 2) each, unused by run.c but part of the layout
    const int half = c.head_size() / 2;
    std::vector<float> re((size_t)c.max_seq_len * half), im(re.size());
    for (int p = 0; p < c.max_seq_len; p++)
        for (int i = 0; i < half; i++) {
            float freq = 1.0f / std::pow(c.rope_theta, (2.0f * i) / c.head_size());
            re[(size_t)p * half + i] = std::cos(p * freq);
            im[(size_t)p * half + i] = std::sin(p * freq);
        }
    file.write(re.data(), re.size() * sizeof(float));
    file.write(im.data(), im.size() * sizeof(float));
    if (!c.shared_classifier) file.write(w.wcls.data(), w.wcls.size() * sizeof(float));
}
