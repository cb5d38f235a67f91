// llama2.c legacy format: 7 int32 header, then the tensors of run.c's TransformerWeights.
// vocab_size < 0 means the classifier is stored separately.
#include "src/formats/checkpoint.h"
#include "src/formats/file.h"
#include <cmath>
#include <vector>

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

void save_llama2c(const std::string& path, const Model& m) {
    const Config& c = m.config;
    if (m.plan.n_kv_layers() != c.n_layers) fail("llama2.c checkpoints need every layer's K/V weights (the standard plan)");
    OutputFile file(path);
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
    file.commit();
}
