// SentencePiece's tokenizer.model (Hugging Face Llama folders ship it): a protobuf
// ModelProto, read by a small wire-format reader of kvshare's own. It becomes the same
// Tokenizer that llama2.c's tokenizer.bin export of the model gives (llama2.c's
// tokenizer.py: every piece's text with U+2581 "▁" as a space, BOS as "\n<s>\n", EOS as
// "\n</s>\n", the scores as they are), so it encodes as that file does, except that "<s>",
// "</s>" and "<unk>" written in the text are those tokens, as Hugging Face's LlamaTokenizer
// reads them (they are the Tokenizer's specials).
//
//   ModelProto     { repeated SentencePiece pieces = 1; TrainerSpec trainer_spec = 2;
//                    NormalizerSpec normalizer_spec = 3; ... }
//   SentencePiece  { string piece = 1; float score = 2; Type type = 3 [default NORMAL]; }
//                    Type: NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, BYTE 6, UNUSED 5
//   TrainerSpec    { ModelType model_type = 3 [UNIGRAM 1, BPE 2, ...]; int32 vocab_size = 4;
//                    bool byte_fallback = 35; int32 unk_id = 40, bos_id = 41, eos_id = 42,
//                    pad_id = 43; ... }
//   NormalizerSpec { string name = 1; bool add_dummy_prefix = 3 [default true];
//                    bool remove_extra_whitespaces = 4 [default true];
//                    bool escape_whitespaces = 5 [default true]; ... }
//
// kvshare's encoder is llama2.c's: BPE merges by score, a dummy-prefix space, byte fallback
// with byte b at id b + 3, BOS 1, EOS 2, no normalization. A model that asks for anything
// else (unigram, a normalizer, other special ids, user-defined pieces) is a clear error.
#pragma once
#include "src/text/tokenizer.h"
#include <string>
#include <vector>

// Whether bytes look like a ModelProto (its first field is a piece) rather than a tokenizer.bin.
bool is_sentencepiece_model(const std::string& bytes);

// One piece as SentencePiece stores it: text with U+2581 for spaces; score; type 1 normal,
// 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
struct SentencePiece {
    std::string text;
    float score = 0;
    int type = 1;
};

// The llama2.c-style Tokenizer for these pieces, or a clear error where its layout is not
// the one llama2.c's encoder assumes. With specials (a GGUF "llama" vocabulary, read as
// llama.cpp reads it), control pieces past EOS and user-defined pieces become specials
// (src/text/tokenizer.h); without (tokenizer.model, as llama2.c's export reads it), they
// are refused.
Tokenizer sentencepiece_tokenizer(const std::vector<SentencePiece>& pieces, const std::string& source, bool specials);

// `source` names the file in errors.
Tokenizer parse_sentencepiece(const std::string& bytes, const std::string& source);
Tokenizer load_sentencepiece(const std::string& path);

// A tokenizer.model for t (kvshare's or llama2.c's layout: <unk>, BOS, EOS, 256 byte pieces,
// then merged pieces), which parse_sentencepiece reads back as t.
std::string sentencepiece_model_bytes(const Tokenizer& t);

// Any tokenizer file kvshare reads, for a model of vocab_size tokens: SentencePiece's
// tokenizer.model, llama2.c's tokenizer.bin or Hugging Face's tokenizer.json (with the
// tokenizer_config.json beside it, src/text/tokenizer_json.h).
Tokenizer load_tokenizer_file(const std::string& path, int vocab_size);
