// load_model: tell the format apart by the path and the header, read it, check the weights,
// apply a plan.
#include "src/formats/checkpoint.h"
#include "src/formats/gguf.h"
#include "src/formats/hf_folder.h"
#include "src/formats/mapped_file.h"
#include <cctype>
#include <cmath>
#include <cstring>

static void check_finite(const Model& m, const std::string& path) {
    for (auto* t : const_cast<Weights&>(m.weights).tensors())
        for (float x : *t)
            if (!std::isfinite(x)) fail("'" + path + "' holds NaN or Inf weights");
}

// A file that is part of a Hugging Face folder, given on its own (it failed to read as a
// llama2.c checkpoint): say what to give instead.
static void reject_folder_part(const MappedFile& f) {
    const std::string& path = f.path();
    const uint8_t* d = f.data();
    if (f.size() >= 9 && d[8] == '{' && f.read<uint64_t>(0) <= f.size() - 8)
        fail("'" + path + "' is a safetensors file; give the folder that holds it with its config.json");
    size_t i = 0;
    while (i < f.size() && std::isspace(d[i])) i++;
    if (i < f.size() && d[i] == '{')
        fail("'" + path + "' is a JSON file, not a model; give the folder that holds it (config.json and model.safetensors)");
}

Model load_model(const std::string& path, const std::string& plan_spec) {
    Model m;
    if (is_directory(path)) {
        m = load_hf_folder(path);
    } else {
        std::shared_ptr<MappedFile> file = MappedFile::open(path);
        if (file->size() < 28) {
            reject_folder_part(*file);
            fail("'" + path + "' is too small to be a model (" + std::to_string(file->size()) + " bytes)");
        }
        const char* magic = (const char*)file->data();
        if (is_kvshare_magic(magic)) {
            m = load_kvshare(file);
        } else if (is_gguf_magic(magic)) {
            m = load_gguf(file);
        } else if (std::memcmp(magic, "ak42", 4) == 0) {
            fail("'" + path + "' is a llama2.c version-2 export; kvshare reads llama2.c's legacy .bin (export with --version 0)");
        } else {
            try {
                m = load_llama2c(file);
            } catch (const std::runtime_error&) {
                reject_folder_part(*file);
                throw;
            }
        }
    }
    check_finite(m, path);
    if (!plan_spec.empty()) {
        const Plan plan = parse_plan(plan_spec, m.config.n_layers);
        m = apply_plan(std::move(m), plan);
    }
    else m.plan.name = m.plan.spec();
    return m;
}
