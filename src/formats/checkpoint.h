// Checkpoints on disk: the project's own format and llama2.c's legacy .bin.
#pragma once
#include "src/model/model.h"
#include <string>

// MODEL is the project's format (magic "KVSH") or a llama2.c .bin, told apart by the header.
// With a non-empty plan spec, the plan is applied: K/V weights of layers that stop owning
// KV are dropped; a plan that needs K/V weights the file lacks is an error.
Model load_model(const std::string& path, const std::string& plan_spec = "");

// The project's format: header, plan, then the tensors of Weights::tensors() in order.
void save_model(const std::string& path, const Model& m);

// llama2.c's legacy .bin layout (every layer has W_K, W_V); needs the standard plan.
void save_llama2c(const std::string& path, const Model& m);

// The readers behind load_model, given the file open at its start.
struct File;
Model load_kvshare(const std::string& path, File& file);
Model load_llama2c(const std::string& path, File& file);

// "KVSH": the project's format.
bool is_kvshare_magic(const char magic[4]);

// Bytes of every tensor the model's config and plan imply, as stored (fp32).
size_t expected_bytes(Model& m);
