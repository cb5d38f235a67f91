// Hugging Face model folders (walkthrough chapter 9): config.json (src/formats/hf_config.h),
// the weights in model.safetensors or in shards listed by model.safetensors.index.json
// (src/formats/safetensors.h), and SentencePiece's tokenizer.model (src/text/sentencepiece.h).
//
// Loading checks the config, every shard, and every tensor's name, dtype and shape before it
// allocates the model; then it converts each tensor to fp32 once, straight from the mapped
// files, into the model's stacked layout, turning W_q and W_k from Hugging Face's half-split
// RoPE pairs into kvshare's adjacent pairs (src/formats/rope_layout.h). Layers that own no
// K/V (an LCKV plan) need no k_proj/v_proj. Tensor names, per layer i:
//   model.embed_tokens.weight                      token_embedding (vocab, dim)
//   model.layers.i.input_layernorm.weight          rms_att
//   model.layers.i.self_attn.{q,k,v,o}_proj.weight wq, wk, wv, wo
//   model.layers.i.post_attention_layernorm.weight rms_ffn
//   model.layers.i.mlp.{gate,up,down}_proj.weight  w1, w3, w2
//   model.norm.weight                              rms_final
//   lm_head.weight                                 wcls (absent when tied)
#pragma once
#include "src/formats/hf_config.h"
#include "src/formats/safetensors.h"
#include "src/model/model.h"
#include <string>

// The model's tokenizer_path is the folder's tokenizer.model when it has one.
Model load_hf_folder(const std::string& folder);

// FOLDER/tokenizer.model when model_path is a folder that holds one, else "".
std::string folder_tokenizer_model(const std::string& model_path);

// A file to write into a folder beside the model's: its name ("tokenizer.model") and bytes.
struct FolderFile {
    std::string name, bytes;
};

// Writes FOLDER/config.json, model.safetensors (F32 or BF16) and the tokenizer's files
// (tokenizer.model; or tokenizer.json and tokenizer_config.json), all or nothing: a new
// folder appears only once all are written; in an existing folder each file is replaced only
// after all are written, and a failure leaves the old files as they were.
// `facts`: the tokenizer's BOS, EOS and class, for config.json and generation_config.json.
void save_hf_folder(const std::string& folder, const Model& m, DType dtype, const std::vector<FolderFile>& tokenizer_files,
                    const HfTokenizerFacts& facts = {});
inline void save_hf_folder(const std::string& folder, const Model& m, DType dtype, const std::string& tokenizer_model) {
    save_hf_folder(folder, m, dtype, {{"tokenizer.model", tokenizer_model}});
}
