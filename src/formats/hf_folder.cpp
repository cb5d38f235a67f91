#include "src/formats/hf_folder.h"
#include <memory>
#include "src/formats/hf_config.h"
#include "src/formats/rope_layout.h"
#include "src/model/memory.h"
#include <filesystem>
#include <map>
#include <set>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// A folder's JSON file (config.json, the shard index): a few KB, so anything past 64 MiB is
// refused before it is read.
std::string read_json_file(const std::string& path) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (!ec && size > (64u << 20)) fail("'" + path + "' has " + std::to_string(size) + " bytes; a JSON file of a model folder has a few thousand");
    return read_text_file(path);
}

// The tensors of a folder, by name: one model.safetensors, or the shards that
// model.safetensors.index.json names. Every file is opened and checked up front.
class FolderTensors {
public:
    explicit FolderTensors(const std::string& folder) : folder_(folder) {
        const std::string single = (fs::path(folder) / "model.safetensors").string();
        const std::string index = (fs::path(folder) / "model.safetensors.index.json").string();
        if (fs::is_regular_file(single)) {
            SafetensorsFile& f = open_file("model.safetensors");
            for (const SafeTensor& t : f.tensors()) where_[t.name] = "model.safetensors";
        } else if (fs::is_regular_file(index)) {
            read_index(index);
        } else if (fs::exists(fs::path(folder) / "pytorch_model.bin") || fs::exists(fs::path(folder) / "model.bin")) {
            fail("'" + folder + "' holds PyTorch .bin weights; kvshare reads safetensors (convert them with Hugging Face's tools)");
        } else {
            fail("'" + folder + "' has neither model.safetensors nor model.safetensors.index.json");
        }
    }

    // The tensor called name and the file that holds it, or nullptr.
    const SafeTensor* find(const std::string& name, const SafetensorsFile** file) const {
        auto it = where_.find(name);
        if (it == where_.end()) return nullptr;
        *file = &files_.at(it->second);
        return (*file)->find(name);
    }
    std::vector<std::string> names() const {
        std::vector<std::string> out;
        for (const auto& w : where_) out.push_back(w.first);
        return out;
    }
    const std::string& file_of(const std::string& name) const { return where_.at(name); }

private:
    SafetensorsFile& open_file(const std::string& name) {
        auto it = files_.find(name);
        if (it != files_.end()) return it->second;
        const std::string path = (fs::path(folder_) / name).string();
        if (!fs::exists(path)) fail("'" + path + "' is missing (model.safetensors.index.json names it as a shard)");
        return files_.emplace(name, SafetensorsFile::open(path)).first->second;
    }

    void read_index(const std::string& path) {
        const Json index = parse_json(read_json_file(path), "'" + path + "'");
        const Json* map = index.is(Json::Type::Object) ? index.find("weight_map") : nullptr;
        if (!map || !map->is(Json::Type::Object)) fail("'" + path + "' has no weight_map object");
        for (const auto& [tensor, file] : map->members) {
            const std::string& shard = file.as_string("'" + path + "': weight_map entry '" + tensor + "'");
            if (shard.empty() || shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos || shard == "." || shard == "..")
                fail("'" + path + "': shard '" + shard + "' is not a file name in the folder");
            const SafetensorsFile& f = open_file(shard);
            if (!f.find(tensor)) fail("'" + path + "' puts tensor '" + tensor + "' in '" + shard + "', which does not hold it");
            where_[tensor] = shard;
        }
    }

    std::string folder_;
    std::map<std::string, SafetensorsFile> files_;  // by file name
    std::map<std::string, std::string> where_;      // tensor name -> file name
};

// One tensor the model needs: where it goes, and whether its rows are RoPE heads to reorder.
struct Needed {
    std::string name;
    std::vector<int64_t> shape;
    Tensor* dst;
    size_t at;        // first float in dst
    int rope_heads;   // > 0: W_q or W_k with this many heads, from half-split to adjacent
};

std::string shape_string(const std::vector<int64_t>& s) {
    std::string out = "[";
    for (size_t i = 0; i < s.size(); i++) out += (i ? ", " : "") + std::to_string(s[i]);
    return out + "]";
}

std::string layer_name(int layer, const std::string& rest) { return "model.layers." + std::to_string(layer) + "." + rest + ".weight"; }

// The tensors the config and plan imply, in Weights' order; W_K, W_V only for KV layers.
std::vector<Needed> needed_tensors(Model& m) {
    const Config& c = m.config;
    Weights& w = m.weights;
    const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, QD = c.q_dim(), KD = c.kv_dim();
    const size_t d = (size_t)D, h = (size_t)H, qd = (size_t)QD, kd = (size_t)KD;
    std::vector<Needed> n;
    n.push_back({"model.embed_tokens.weight", {V, D}, &w.token_embedding, 0, 0});
    for (int l = 0; l < c.n_layers; l++) {
        n.push_back({layer_name(l, "input_layernorm"), {D}, &w.rms_att, l * d, 0});
        n.push_back({layer_name(l, "self_attn.q_proj"), {QD, D}, &w.wq, l * qd * d, c.n_heads});
        if (m.plan.owns_kv(l)) {
            const size_t slot = (size_t)m.plan.kv_slot[l];
            n.push_back({layer_name(l, "self_attn.k_proj"), {KD, D}, &w.wk, slot * kd * d, c.n_kv_heads});
            n.push_back({layer_name(l, "self_attn.v_proj"), {KD, D}, &w.wv, slot * kd * d, 0});
        }
        n.push_back({layer_name(l, "self_attn.o_proj"), {D, QD}, &w.wo, l * d * qd, 0});
        n.push_back({layer_name(l, "post_attention_layernorm"), {D}, &w.rms_ffn, l * d, 0});
        n.push_back({layer_name(l, "mlp.gate_proj"), {H, D}, &w.w1, l * h * d, 0});
        n.push_back({layer_name(l, "mlp.down_proj"), {D, H}, &w.w2, l * d * h, 0});
        n.push_back({layer_name(l, "mlp.up_proj"), {H, D}, &w.w3, l * h * d, 0});
    }
    n.push_back({"model.norm.weight", {D}, &w.rms_final, 0, 0});
    if (!c.shared_classifier) n.push_back({"lm_head.weight", {V, D}, &w.wcls, 0, 0});
    return n;
}

// Tensors a folder may hold that the model does not use: RoPE tables some exports keep,
// K/V projections of layers that own no K/V, and a tied classifier's copy.
bool unused_but_allowed(const std::string& name, const Model& m) {
    const std::string rope_table = "rotary_emb.inv_freq";
    if (name.size() >= rope_table.size() && name.compare(name.size() - rope_table.size(), rope_table.size(), rope_table) == 0) return true;
    if (name == "lm_head.weight" && m.config.shared_classifier) return true;
    for (int l = 0; l < m.config.n_layers; l++)
        if (!m.plan.owns_kv(l) && (name == layer_name(l, "self_attn.k_proj") || name == layer_name(l, "self_attn.v_proj"))) return true;
    return false;
}

}  // namespace

Model load_hf_folder(const std::string& folder) {
    const std::string config_path = (fs::path(folder) / "config.json").string();
    if (!fs::is_regular_file(config_path)) fail("'" + folder + "' is a directory without config.json (not a Hugging Face model folder)");
    const HfConfig hc = parse_hf_config(parse_json(read_json_file(config_path), "'" + config_path + "'"), "'" + config_path + "'");
    Model m{hc.config, hc.plan, {}};
    m.forward_passes = hc.forward_passes;
    m.backward_passes = hc.backward_passes;
    m.sequential_prefill = hc.use_sequential;
    m.tokenizer_path = folder_tokenizer_model(folder);
    m.folder = folder;
    const FolderTensors files(folder);

    // every name, dtype and shape checked before the model takes any memory
    const std::vector<Needed> needed = needed_tensors(m);
    std::set<std::string> used;
    for (const Needed& n : needed) {
        const SafetensorsFile* file = nullptr;
        const SafeTensor* t = files.find(n.name, &file);
        if (!t) fail("'" + folder + "' lacks tensor '" + n.name + "'");
        if (t->dtype != DType::F32 && t->dtype != DType::F16 && t->dtype != DType::BF16)
            fail("'" + file->path() + "': tensor '" + n.name + "' has dtype " + dtype_name(t->dtype) + "; kvshare reads F32, F16 and BF16");
        if (t->shape != n.shape)
            fail("'" + file->path() + "': tensor '" + n.name + "' has shape " + shape_string(t->shape) + ", but config.json implies " +
                 shape_string(n.shape));
        used.insert(n.name);
    }
    for (const std::string& name : files.names())
        if (!used.count(name) && !unused_but_allowed(name, m))
            fail("'" + folder + "' (" + files.file_of(name) + ") holds tensor '" + name +
                 "', which kvshare's Llama has no place for (a bias, or another architecture?)");

    // one fp32 copy, converted straight from the mapped files: no zero fill, no second read;
    // checked against the memory available before it is taken
    check_memory(MemoryNeed().host("the weights converted to fp32", weight_bytes(m.config, m.plan.n_kv_layers())),
                 "loading '" + folder + "'", "");
    const std::vector<size_t> sizes = weight_sizes(m.config, m.plan.n_kv_layers());
    const std::vector<Tensor*> tensors = m.weights.tensors();
    for (size_t i = 0; i < tensors.size(); i++) tensors[i]->allocate(sizes[i]);
    for (const Needed& n : needed) {
        const SafetensorsFile* file = nullptr;
        const SafeTensor* t = files.find(n.name, &file);
        float* dst = n.dst->data() + n.at;
        file->read_f32(*t, dst);
        file->release(*t);
        if (n.rope_heads > 0) half_split_to_adjacent(dst, n.rope_heads, m.config.head_size(), (size_t)m.config.dim);
    }
    return m;
}

std::string folder_tokenizer_model(const std::string& model_path) {
    std::error_code ec;
    if (!fs::is_directory(model_path, ec)) return "";
    const fs::path p = fs::path(model_path) / "tokenizer.model";
    return fs::is_regular_file(p, ec) ? p.string() : "";
}

// ---------------------------------------------------------------------------
// export

static void write_all(const std::string& dir, const Model& m, DType dtype, const std::vector<FolderFile>& tokenizer_files, const HfTokenizerFacts& facts) {
    const Config& c = m.config;
    const Weights& w = m.weights;
    // W_q and W_k back to half-split pairs: (layer * heads) heads of head_size rows each
    std::vector<float> wq(w.wq.begin(), w.wq.end()), wk(w.wk.begin(), w.wk.end());
    adjacent_to_half_split(wq.data(), c.n_layers * c.n_heads, c.head_size(), (size_t)c.dim);
    adjacent_to_half_split(wk.data(), m.plan.n_kv_layers() * c.n_kv_heads, c.head_size(), (size_t)c.dim);

    const int64_t D = c.dim, H = c.hidden_dim, V = c.vocab_size, QD = c.q_dim(), KD = c.kv_dim();
    const size_t d = (size_t)D, h = (size_t)H, qd = (size_t)QD, kd = (size_t)KD;
    std::vector<TensorOut> out;
    out.push_back({"model.embed_tokens.weight", {V, D}, w.token_embedding.data()});
    for (int l = 0; l < c.n_layers; l++) {
        out.push_back({layer_name(l, "input_layernorm"), {D}, w.rms_att.data() + l * d});
        out.push_back({layer_name(l, "self_attn.q_proj"), {QD, D}, wq.data() + l * qd * d});
        if (m.plan.owns_kv(l)) {
            const size_t slot = (size_t)m.plan.kv_slot[l];
            out.push_back({layer_name(l, "self_attn.k_proj"), {KD, D}, wk.data() + slot * kd * d});
            out.push_back({layer_name(l, "self_attn.v_proj"), {KD, D}, w.wv.data() + slot * kd * d});
        }
        out.push_back({layer_name(l, "self_attn.o_proj"), {D, QD}, w.wo.data() + l * d * qd});
        out.push_back({layer_name(l, "post_attention_layernorm"), {D}, w.rms_ffn.data() + l * d});
        out.push_back({layer_name(l, "mlp.gate_proj"), {H, D}, w.w1.data() + l * h * d});
        out.push_back({layer_name(l, "mlp.down_proj"), {D, H}, w.w2.data() + l * d * h});
        out.push_back({layer_name(l, "mlp.up_proj"), {H, D}, w.w3.data() + l * h * d});
    }
    out.push_back({"model.norm.weight", {D}, w.rms_final.data()});
    if (!c.shared_classifier) out.push_back({"lm_head.weight", {V, D}, w.wcls.data()});

    const std::string torch_dtype = dtype == DType::BF16 ? "bfloat16" : "float32";
    OutputFile weights((fs::path(dir) / "model.safetensors").string());
    OutputFile config((fs::path(dir) / "config.json").string());
    OutputFile generation((fs::path(dir) / "generation_config.json").string());
    std::vector<std::unique_ptr<OutputFile>> tokenizer;
    for (const FolderFile& f : tokenizer_files) tokenizer.push_back(std::make_unique<OutputFile>((fs::path(dir) / f.name).string()));
    write_safetensors(weights, out, dtype, Json::object().set("format", Json::of("pt")));
    config.write(to_json(hf_config_json(m, torch_dtype, facts)));
    generation.write(to_json(hf_generation_config_json(facts)));
    for (size_t i = 0; i < tokenizer_files.size(); i++) tokenizer[i]->write(tokenizer_files[i].bytes);
    weights.commit();  // all are written; only renames are left
    config.commit();
    generation.commit();
    for (auto& t : tokenizer) t->commit();
}

void save_hf_folder(const std::string& folder, const Model& m, DType dtype, const std::vector<FolderFile>& tokenizer_files,
                    const HfTokenizerFacts& facts) {
    std::error_code ec;
    if (fs::exists(folder, ec) && !fs::is_directory(folder, ec)) fail("cannot export to '" + folder + "': it is a file, not a folder");
    if (fs::is_directory(folder, ec)) {
        write_all(folder, m, dtype, tokenizer_files, facts);
        return;
    }
    // a new folder: written beside its name, renamed into place once complete
    const std::string temp = folder + ".tmp-" + std::to_string(getpid());
    if (!fs::create_directory(temp, ec)) fail("cannot create folder '" + temp + "': " + ec.message());
    try {
        write_all(temp, m, dtype, tokenizer_files, facts);
        fs::rename(temp, folder, ec);
        if (ec) fail("cannot rename '" + temp + "' to '" + folder + "': " + ec.message());
    } catch (...) {
        fs::remove_all(temp, ec);
        throw;
    }
}
