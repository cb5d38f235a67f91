// The subcommands, one function each; src/commands/cli.cpp dispatches to them.
#pragma once
#include "src/model/model.h"
#include <string>
#include <vector>

struct Tokenizer;

int cmd_generate(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_train(int argc, char** argv);  // src/commands/train.cpp
int cmd_export(int argc, char** argv); // src/commands/export.cpp
int cmd_tokenize(int argc, char** argv);  // src/commands/tokenize.cpp
int cmd_chat(int argc, char** argv);      // src/commands/chat.cpp

// -z given: load it (a tokenizer.model, tokenizer.bin or tokenizer.json). Not given: the
// tokenizer the model carries (a GGUF file's, Model::tokenizer_spec), the one it came with (a
// Hugging Face folder's tokenizer.model, else its tokenizer.json), the built-in byte
// tokenizer for a 259-token model, else ./tokenizer.bin as llama2.c does, else a clear
// error. A folder's tokenizer_config.json, generation_config.json and config.json then say
// whether a prompt starts with BOS, which ids end generation (eos_token_id) and the chat
// template (src/commands/tokenizer_for.cpp).
Tokenizer tokenizer_for(const std::string& path, const Model& m);

// A prompt's ids: BOS first when the model asks for it (Tokenizer::add_bos); an empty prompt
// is BOS alone, or a clear error without one.
std::vector<int> encode_prompt(const Tokenizer& tok, const std::string& text);

// The KV report printed by info, generate and bench: bytes for this plan and for standard.
std::string kv_summary(const Model& m, int batch, int context);
