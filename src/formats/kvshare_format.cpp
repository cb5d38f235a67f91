// The project's own format (walkthrough chapter 2): magic "KVSH", version, config, flags,
// the source map, then every tensor of Weights::tensors() in order; W_K/W_V only for KV layers.
#include "src/formats/checkpoint.h"
#include "src/formats/file.h"
#include <cstring>
#include <vector>

static const char kMagic[4] = {'K', 'V', 'S', 'H'};
static const int32_t kVersion = 1;

bool is_kvshare_magic(const char magic[4]) { return std::memcmp(magic, kMagic, 4) == 0; }

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
