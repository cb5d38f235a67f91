// kvshare export: a model as a Hugging Face folder (config.json, model.safetensors,
// tokenizer.model) that transformers (standard plan) and the LCKV authors' code (any plan) open.
#include "src/commands/args.h"
#include "src/commands/commands.h"
#include "src/formats/checkpoint.h"
#include "src/formats/hf_folder.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cstdio>

// The tokenizer.model to write: a SentencePiece file as it is (every field kept), or the
// model's tokenizer converted (a llama2.c tokenizer.bin, kvshare's BPE, the byte tokenizer).
static std::string tokenizer_model_for(const std::string& z, const Model& m) {
    const std::string given = !z.empty() ? z : m.tokenizer_path;
    if (given.empty()) return sentencepiece_model_bytes(tokenizer_for("", m));
    const Tokenizer t = load_tokenizer_file(given, m.config.vocab_size);  // checks its size, format and vocabulary
    const std::string bytes = read_text_file(given);
    return is_sentencepiece_model(bytes) ? bytes : sentencepiece_model_bytes(t);
}

int cmd_export(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare export", {"-z", "--plan", "--dtype"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare export MODEL OUTDIR [-z TOKENIZER] [--plan PLAN] [--dtype f32|bf16]\n"
                    "Writes MODEL as a Hugging Face folder OUTDIR: config.json (model_type \"llama\" for the standard\n"
                    "plan, \"lckv-llama\" with layer_types, forward_passes, backward_passes and force_nodiag for any\n"
                    "other), model.safetensors (F32 by default, or BF16) and tokenizer.model (SentencePiece; from -z, the\n"
                    "model's own folder, or the model's tokenizer converted). kvshare loads the folder back with the\n"
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
    const std::string tokenizer = tokenizer_model_for(a.get("-z"), m);
    save_hf_folder(out, m, dtype, tokenizer);
    const bool lckv = m.plan.n_kv_layers() != m.config.n_layers || m.plan.diag_all;
    std::fprintf(stderr, "wrote %s: %s, %s, %.2fM parameters in %s\n", out.c_str(), lckv ? "lckv-llama" : "llama",
                 m.plan.spec().c_str(), m.n_params() / 1e6, dtype == DType::BF16 ? "BF16" : "F32");
    return 0;
}
