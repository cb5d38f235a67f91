// load_model: tell the format apart by the header, read it, check the weights, apply a plan.
#include "src/formats/checkpoint.h"
#include "src/formats/file.h"
#include <cmath>
#include <cstring>

size_t expected_bytes(Model& m) {
    size_t n = 0;
    for (auto* t : m.weights.tensors()) n += t->size() * sizeof(float);
    return n;
}

static void check_finite(const Model& m, const std::string& path) {
    for (auto* t : const_cast<Weights&>(m.weights).tensors())
        for (float x : *t)
            if (!std::isfinite(x)) fail("'" + path + "' holds NaN or Inf weights");
}

Model load_model(const std::string& path, const std::string& plan_spec) {
    File file(path);
    if (file.size() < 28) fail("'" + path + "' is too small to be a model (" + std::to_string(file.size()) + " bytes)");
    char magic[4];
    file.read(magic, 4);
    std::fseek(file.f, 0, SEEK_SET);
    Model m;
    if (is_kvshare_magic(magic)) {
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
