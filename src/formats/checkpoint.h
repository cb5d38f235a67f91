// Checkpoints on disk: the project's own format, llama2.c's legacy .bin, Hugging Face
// folders (src/formats/hf_folder.h) and GGUF files (src/formats/gguf.h).
#pragma once
#include "src/model/model.h"
#include <memory>
#include <string>

// MODEL is a Hugging Face folder (config.json and safetensors), the project's format (magic
// "KVSH"), a GGUF file (magic "GGUF") or a llama2.c .bin, told apart by what the path is and
// by the header. Every size in a header is checked against the file before anything is
// allocated or read from it.
// With a non-empty plan spec, the plan is applied: K/V weights of layers that stop owning
// KV are dropped; a plan that needs K/V weights the file lacks is an error.
Model load_model(const std::string& path, const std::string& plan_spec = "");

// The project's format: header, plan, then the tensors of Weights::tensors() in order.
void save_model(const std::string& path, const Model& m);

// llama2.c's legacy .bin layout (every layer has W_K, W_V); needs the standard plan.
void save_llama2c(const std::string& path, const Model& m);

// The readers behind load_model, given the file mapped into memory; the tensors point into it.
class MappedFile;
Model load_kvshare(const std::shared_ptr<MappedFile>& file);
Model load_llama2c(const std::shared_ptr<MappedFile>& file);
// A GGUF file (src/formats/gguf.h): converted to fp32, with the file's tokenizer in tokenizer_spec.
Model load_gguf(const std::shared_ptr<MappedFile>& file);

// "KVSH": the project's format.
bool is_kvshare_magic(const char magic[4]);

