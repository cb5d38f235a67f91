// Hugging Face's tokenizer.json, for byte-level BPE models (GPT-2, SmolLM2, Llama 3), read
// into a TokenizerSpec (src/text/tokenizer_spec.h) and written from one.
//
//   { "added_tokens": [ {"id": 0, "content": "<|endoftext|>", "special": true,
//                        "single_word": false, "lstrip": false, "rstrip": false, ...}, ... ],
//     "normalizer": null,
//     "pre_tokenizer": one of the three src/text/pretokenize.h implements:
//         {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}         gpt2
//         {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": true},
//                                                {"type": "ByteLevel", ...}]}         smollm
//         {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": Llama 3's},
//            "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "use_regex": false}]}  llama3
//     "post_processor": null, ByteLevel, or TemplateProcessing whose "single" is
//         [SpecialToken BOS?, Sequence A, SpecialToken EOS?]  (where add_bos and add_eos come from)
//     "decoder": ByteLevel,
//     "model": {"type": "BPE", "vocab": {"text": id, ...}, "merges": ["a b", ...] or [["a", "b"], ...],
//               "byte_fallback": false, "ignore_merges": true for llama3 only, ...} }
//
// Added tokens become control (special) or user-defined tokens. Anything that would change
// the ids and that kvshare does not implement (a normalizer, another pre-tokenizer, dropout,
// subword prefixes, an added token that strips spaces or matches single words, byte
// fallback, which marks a SentencePiece-style tokenizer.json) is a clear error.
//
// tokenizer_config.json, beside it in a folder, adds what transformers reads from there:
// bos_token, eos_token (a string or {"content": ...}), add_bos_token, add_eos_token and
// chat_template (a string, or a list of {"name", "template"} whose "default" is used).
#pragma once
#include "src/formats/json.h"
#include "src/text/tokenizer_spec.h"
#include <string>

// `path` names the file in errors and becomes the spec's source.
TokenizerSpec parse_tokenizer_json(const std::string& text, const std::string& path);
// Applies a tokenizer_config.json to a spec.
void apply_tokenizer_config(TokenizerSpec& spec, const Json& config, const std::string& source);
// tokenizer_config.json's chat_template: a string, or the "default" of a list of
// {"name", "template"}; "" when it has none.
std::string config_chat_template(const Json& config, const std::string& source);
// tokenizer.json at path, and the tokenizer_config.json beside it when there is one.
TokenizerSpec load_tokenizer_json(const std::string& path);
// Whether bytes look like JSON (their first non-space character is '{').
bool looks_like_json(const std::string& bytes);

// tokenizer_config.json for a spec, so that transformers' AutoTokenizer reads tokenizer.json
// as kvshare does (PreTrainedTokenizerFast; BOS only when the spec adds it; its EOS and chat
// template).
std::string tokenizer_config_json_text(const TokenizerSpec& spec);
// A byte-level spec ("gpt2" model) as tokenizer.json text that parse_tokenizer_json, and
// Hugging Face's tokenizers, read back as the same tokenizer.
std::string tokenizer_json_text(const TokenizerSpec& spec);
