// The project's own format (walkthrough chapter 2): magic "KVSH", version, config, flags,
// the source map, then every tensor of Weights::tensors() in order; W_K/W_V only for KV layers.
// Loading points the tensors into the mapped file: nothing is read, copied or zero filled.
#include "src/formats/checkpoint.h"
#include "src/formats/mapped_file.h"
#include "src/util.h"
#include <cstring>
#include <vector>

static const char kMagic[4] = {'K', 'V', 'S', 'H'};
static const int32_t kVersion = 1;

bool is_kvshare_magic(const char magic[4]) { return std::memcmp(magic, kMagic, 4) == 0; }

Model load_kvshare(const std::shared_ptr<MappedFile>& file) {
    const std::string& path = file->path();
    // magic, version, 8 int32 of config, 2 float32, the flags word; then the source map
    const size_t config_at = 8, floats_at = config_at + 32, flags_at = floats_at + 8, source_at = flags_at + 4;
    if (!file->holds(0, source_at)) fail("'" + path + "' is truncated inside its header");
    const int32_t version = file->read<int32_t>(4);
    if (version != kVersion) fail("'" + path + "' is kvshare format version " + std::to_string(version) + "; this build reads version " + std::to_string(kVersion));
    int32_t h[8];
    for (int i = 0; i < 8; i++) h[i] = file->read<int32_t>(config_at + 4 * i);
    Config c;
    c.dim = h[0]; c.hidden_dim = h[1]; c.n_layers = h[2]; c.n_heads = h[3]; c.n_kv_heads = h[4];
    c.vocab_size = h[5]; c.max_seq_len = h[6]; c.shared_classifier = h[7] != 0;
    c.rope_theta = file->read<float>(floats_at);
    c.norm_eps = file->read<float>(floats_at + 4);
    try {
        validate_config(c);
        if (h[7] != 0 && h[7] != 1) fail("the tied-classifier field is " + std::to_string(h[7]) + ", not 0 or 1");
    } catch (const std::runtime_error& e) {
        fail("'" + path + "' has a corrupt header (" + e.what() + ")");
    }
    const int32_t flags = file->read<int32_t>(flags_at);  // bit 0: diag=all, bit 1: random weights
    if (flags & ~3) fail("'" + path + "' has a corrupt header (flags word " + std::to_string(flags) + " sets unknown bits)");
    if (!file->holds(source_at, (size_t)c.n_layers * 4)) fail("'" + path + "' is truncated inside its plan");
    std::vector<int> src(c.n_layers);
    for (int i = 0; i < c.n_layers; i++) src[i] = file->read<int32_t>(source_at + 4 * (size_t)i);
    Model m{c, {}, {}};
    try {
        m.plan = make_plan(src, (flags & 1) != 0, "stored");
    } catch (const std::runtime_error& e) {
        fail("'" + path + "' has a corrupt plan (" + e.what() + ")");
    }
    m.random_weights = (flags & 2) != 0;
    if (m.plan.source != src) fail("'" + path + "' stores an unresolved plan");
    // every size from the header, checked against the file before a tensor points into it
    const std::vector<size_t> sizes = weight_sizes(c, m.plan.n_kv_layers());
    size_t at = source_at + (size_t)c.n_layers * 4, want = at;
    for (size_t n : sizes) want += n * sizeof(float);
    if (file->size() != want)
        fail("'" + path + "' has " + std::to_string(file->size()) + " bytes, but its header implies " + std::to_string(want) + " (truncated or corrupt)");
    const std::vector<Tensor*> tensors = m.weights.tensors();
    for (size_t i = 0; i < tensors.size(); i++) {
        borrow_floats(*tensors[i], file, at, sizes[i]);
        at += sizes[i] * sizeof(float);
    }
    return m;
}

void save_model(const std::string& path, const Model& m) {
    OutputFile file(path);
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
    file.commit();
}
