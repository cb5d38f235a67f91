// A tokenizer as a checkpoint describes it, before kvshare builds an encoder from it: what a
// GGUF file's tokenizer.ggml.* metadata or a Hugging Face tokenizer.json holds. Loaders fill
// it (src/formats/gguf.cpp, the tokenizer.json reader); src/text/ turns it into a Tokenizer.
#pragma once
#include <string>
#include <vector>

struct TokenizerSpec {
    std::string model;                // "llama" (SentencePiece-style BPE by score) or "gpt2" (byte-level BPE)
    std::string pre;                  // pre-tokenizer name ("gpt2", "smollm", "llama-bpe", ...); "" when none is named
    std::vector<std::string> tokens;  // (vocab) each id's text as stored (byte-level: mapped code points)
    std::vector<float> scores;        // (vocab) or empty: merge priority of a "llama" model
    std::vector<int> token_types;     // (vocab) or empty: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    std::vector<std::string> merges;  // "left right", highest priority first (byte-level BPE)
    int bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: none
    bool add_bos = false, add_eos = false;
    std::string chat_template;        // the Jinja text as stored, or ""
    std::string source;               // the file it came from, for error messages
};
