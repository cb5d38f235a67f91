// kvshare export: a model as a Hugging Face folder (config.json, model.safetensors,
// tokenizer.model) that transformers (standard plan) and the LCKV authors' code (any plan) open.
#include "src/commands/args.h"
#include "src/commands/commands.h"
#include "src/formats/checkpoint.h"
#include "src/formats/hf_folder.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include <filesystem>
#include "src/util.h"
#include <cstdio>

// The tokenizer files to write. Byte-level BPE (a GGUF's, a tokenizer.json's): tokenizer.json
// and tokenizer_config.json written from its spec. Else tokenizer.model: a SentencePiece file
// as it is (every field kept), or the model's tokenizer converted (a llama2.c tokenizer.bin,
// kvshare's BPE, the byte tokenizer).
static std::vector<FolderFile> tokenizer_files_for(const std::string& z, const Model& m, HfTokenizerFacts& facts) {
    std::string given = !z.empty() ? z : m.tokenizer_path;
    if (given.empty() && !m.tokenizer_spec && !m.folder.empty() && std::filesystem::is_regular_file(m.folder + "/tokenizer.json"))
        given = m.folder + "/tokenizer.json";
    const Tokenizer t = tokenizer_for(given, m);  // checks its size, format and vocabulary
    facts.bos_id = t.bos_id;
    facts.eos_id = t.eos_id;
    if (t.is_byte_level()) {
        facts.tokenizer_class = "PreTrainedTokenizerFast";
        const TokenizerSpec spec = given.empty() ? *m.tokenizer_spec : load_tokenizer_json(given);
        return {{"tokenizer.json", tokenizer_json_text(spec)}, {"tokenizer_config.json", tokenizer_config_json_text(spec)}};
    }
    const std::string bytes = given.empty() ? "" : read_text_file(given);
    return {{"tokenizer.model", is_sentencepiece_model(bytes) ? bytes : sentencepiece_model_bytes(t)}};
}

int cmd_export(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare export", {"-z", "--plan", "--dtype"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare export MODEL OUTDIR [-z TOKENIZER] [--plan PLAN] [--dtype f32|bf16]\n"
                    "Writes MODEL as a Hugging Face folder OUTDIR: config.json (model_type \"llama\" for the standard\n"
                    "plan, \"lckv-llama\" with layer_types, forward_passes, backward_passes and force_nodiag for any\n"
                    "other), model.safetensors (F32 by default, or BF16) and tokenizer.model (SentencePiece; from -z, the\n"
                    "model's own folder, or the model's tokenizer converted), or for a byte-level BPE tokenizer (a GGUF's,\n"
                    "a tokenizer.json) tokenizer.json and tokenizer_config.json. kvshare loads the folder back with the\n"
                    "same logits, bit for bit in F32. OUTDIR appears only when complete; files of an existing OUTDIR\n"
                    "are replaced only once all are written.\n");
        return 0;
    }
    const std::string path = a.need_positional(0, "MODEL");
    const std::string out = a.need_positional(1, "output folder OUTDIR");
    if (a.positional.size() > 2) fail("kvshare export: unexpected argument '" + a.positional[2] + "'");
    const std::string dtype_name = a.get("--dtype", "f32");
    if (dtype_name != "f32" && dtype_name != "bf16") fail("kvshare export: --dtype must be f32 or bf16");
    const DType dtype = dtype_name == "bf16" ? DType::BF16 : DType::F32;
    Model m = load_model(path, a.get("--plan"));
    HfTokenizerFacts facts;
    const std::vector<FolderFile> tokenizer_files = tokenizer_files_for(a.get("-z"), m, facts);
    save_hf_folder(out, m, dtype, tokenizer_files, facts);
    const bool lckv = m.plan.n_kv_layers() != m.config.n_layers || m.plan.diag_all;
    std::fprintf(stderr, "wrote %s: %s, %s, %.2fM parameters in %s\n", out.c_str(), lckv ? "lckv-llama" : "llama",
                 m.plan.spec().c_str(), m.n_params() / 1e6, dtype == DType::BF16 ? "BF16" : "F32");
    return 0;
}
