// Pre-tokenizers: how byte-level BPE splits text into words before it merges bytes, so that
// no token crosses a word's edge. Each is a regular expression in the tokenizers that
// define it (GPT-2's encoder.py, Hugging Face's tokenizer.json, llama.cpp's
// tokenizer.ggml.pre names); here each is a hand-written scanner over code points, since
// std::regex has no Unicode classes. L = letter, N = number, \s = White_Space
// (src/text/unicode.h); an alternative earlier in the list wins over a later one.
//
//   gpt2     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   smollm   every number character a word of its own (HF's Digits with individual_digits),
//            then gpt2's rule inside each stretch between them (SmolLM, StarCoder)
//   llama3   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//            ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Bytes that are not valid UTF-8 count as one "other" character each, so any text splits.
#pragma once
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

enum class PreTokenizer { Gpt2, SmolLM, Llama3 };

// A GGUF file's tokenizer.ggml.pre name ("gpt2"; "smollm", "starcoder", "refact"; "llama-bpe",
// "llama3"), else a clear error that lists them; `source` names the file.
PreTokenizer pre_tokenizer_named(const std::string& name, const std::string& source);
// The name tokenize and errors print: "gpt2", "smollm" or "llama3".
const char* pre_tokenizer_name(PreTokenizer p);
// Hugging Face's regular expression for Llama 3's rule, as tokenizer.json writes it.
extern const char* const kLlama3Pattern;

// The words of text as byte ranges [first, second), in order, covering all of it.
std::vector<std::pair<size_t, size_t>> pre_tokenize(const std::string& text, PreTokenizer p);
