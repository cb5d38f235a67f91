// The subcommands, one function each; src/commands/cli.cpp dispatches to them.
#pragma once
#include "src/model/model.h"
#include <string>

struct Tokenizer;

int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_train(int argc, char** argv);  // src/commands/train.cpp
int cmd_export(int argc, char** argv); // src/commands/export.cpp

// -z given: load it (a tokenizer.model or a tokenizer.bin). Not given: the tokenizer the
// model came with (a Hugging Face folder's tokenizer.model), the built-in byte tokenizer for
// a 259-token model, else ./tokenizer.bin as llama2.c does, else a clear error.
Tokenizer tokenizer_for(const std::string& path, const Model& m);

// The KV report printed by info, generate and bench: bytes for this plan and for standard.
std::string kv_summary(const Model& m, int batch, int context);
