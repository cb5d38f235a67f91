// llama2.c legacy format: 7 int32 header, then the tensors of run.c's TransformerWeights.
// vocab_size < 0 means the classifier is stored separately. Loading points the tensors into
// the mapped file, as run.c does: nothing is read, copied or zero filled.
#include "src/formats/checkpoint.h"
#include "src/formats/mapped_file.h"
#include "src/util.h"
#include <cstdlib>
#include <cmath>
#include <vector>

Model load_llama2c(const std::shared_ptr<MappedFile>& file) {
    const std::string& path = file->path();
    if (!file->holds(0, 28)) fail("'" + path + "' is too small to be a llama2.c checkpoint");
    int32_t h[7];
    for (int i = 0; i < 7; i++) h[i] = file->read<int32_t>(4 * (size_t)i);
    Config c;
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.shared_classifier = h[5] > 0;
    c.vocab_size = h[5] == INT32_MIN ? 0 : std::abs(h[5]);  // -INT32_MIN does not exist; 0 fails below
    c.max_seq_len = h[6];
    try {
        validate_config(c);
    } catch (const std::runtime_error& e) {
        fail("'" + path + "' is neither a kvshare model nor a llama2.c checkpoint (" + e.what() + ")");
    }
    std::vector<int> id(c.n_layers);
    for (int i = 0; i < c.n_layers; i++) id[i] = i;
    Model m{c, make_plan(id, false, "standard"), {}};
    // every size from the header, checked against the file before a tensor points into it
    const std::vector<size_t> sizes = weight_sizes(c, m.plan.n_kv_layers());
    const size_t rope_bytes = (size_t)c.max_seq_len * c.head_size() * sizeof(float);  // freq_cis real + imag
    size_t want = sizeof h + rope_bytes;
    for (size_t n : sizes) want += n * sizeof(float);
    if (file->size() != want)
        fail("'" + path + "' has " + std::to_string(file->size()) + " bytes, but a llama2.c checkpoint with its header needs " +
             std::to_string(want) + " (truncated, or not a llama2.c file)");
    // run.c's order differs from Weights::tensors() only in where rms_ffn and wcls sit
    Weights& w = m.weights;
    size_t at = sizeof h;
    auto next = [&](Tensor& t, size_t count) {
        borrow_floats(t, file, at, count);
        at += count * sizeof(float);
    };
    const size_t L = c.n_layers, D = c.dim, H = c.hidden_dim;
    next(w.token_embedding, sizes[0]);
    next(w.rms_att, L * D);
    next(w.wq, sizes[2]);
    next(w.wk, sizes[3]);
    next(w.wv, sizes[4]);
    next(w.wo, sizes[5]);
    next(w.rms_ffn, L * D);
    next(w.w1, L * H * D);
    next(w.w2, L * D * H);
    next(w.w3, L * H * D);
    next(w.rms_final, D);
    at += rope_bytes;
    next(w.wcls, sizes[11]);  // empty when tied
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
