// Byte-level BPE (GPT-2's scheme; SmolLM2, Llama 3): text is split into words by a
// pre-tokenizer (src/text/pretokenize.h), each word's UTF-8 bytes start as one token per
// byte, and merges join adjacent tokens, the lowest-ranked pair first, until none applies.
//
// Vocabularies store tokens as text in which every byte is one printable code point, so that
// a token's text never holds a space or a control character: GPT-2's map sends the bytes
// that print as themselves ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) to the same code point and the
// other 68 bytes, in order, to U+0100, U+0101, ... (so ' ' is 'Ġ' U+0120 and '\n' is 'Ċ').
// Merges are pairs of such texts, "Ġ t" -> "Ġt".
#pragma once
#include "src/text/pretokenize.h"
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

// GPT-2's byte -> code point map, and its inverse (-1 where a code point stands for no byte).
uint32_t byte_to_code_point(uint8_t b);
int code_point_to_byte(uint32_t cp);
// A token's stored text for bytes, and back: false if the text holds a code point that
// stands for no byte.
std::string bytes_to_token_text(const std::string& bytes);
bool token_text_to_bytes(const std::string& text, std::string* bytes);

struct ByteBpe {
    PreTokenizer pre = PreTokenizer::Gpt2;
    bool ignore_merges = false;  // a word that is itself a token becomes that token unmerged (Llama 3)

    // tokens: every id's stored text; mergeable[id]: whether merges and words may produce it
    // (control and user-defined tokens may not). merges: "left right", rank 0 first. Every
    // merge's sides and result must be tokens; otherwise a clear error naming `source`. A
    // byte without a one-character token is dropped from the text, as Hugging Face's BPE
    // does (SmolLM2's vocabulary has no token for 21 bytes that text seldom or never holds).
    ByteBpe(PreTokenizer pre, bool ignore_merges, const std::vector<std::string>& tokens, const std::vector<bool>& mergeable,
            const std::vector<std::string>& merges, const std::string& source);

    // Appends the ids of text (no special tokens in it: the caller splits those out).
    void encode(const std::string& text, std::vector<int>& out) const;

private:
    struct Merge {
        int rank, result;
    };
    int byte_token_[256];                            // each byte's token, or -1
    std::unordered_map<std::string, int> ids_;       // stored text -> id, mergeable tokens only
    std::unordered_map<uint64_t, Merge> merges_;     // (left id, right id) -> rank, merged id
    void encode_word(const std::string& word, std::vector<int>& out) const;
};
