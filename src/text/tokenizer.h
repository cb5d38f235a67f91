// Text <-> token ids, in one of two kinds:
//  - SentencePiece-style BPE with byte fallback, encoded as llama2.c does (its tokenizer.bin,
//    SentencePiece's tokenizer.model, a GGUF "llama" vocabulary: Llama 2, TinyLlama, the
//    project's own): pieces merged by score, a dummy-prefix space, byte b at id b + 3,
//    <unk> 0, BOS 1, EOS 2.
//  - byte-level BPE (a GGUF "gpt2" vocabulary, Hugging Face's tokenizer.json: GPT-2,
//    SmolLM2, Llama 3): byte_level is set, and does the encoding (src/text/byte_bpe.h).
// Both split special tokens out of the text first, and both decode a token to its bytes.
#pragma once
#include "src/text/tokenizer_spec.h"
#include <bitset>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

struct ByteBpe;

struct Tokenizer {
    // (vocab_size) what each id stands for. SentencePiece kind: the piece's text with spaces
    // as ' ' and byte pieces as "<0xXX>"; byte-level kind: the token's bytes (a control or
    // user-defined token's text as it is).
    std::vector<std::string> pieces;
    std::vector<float> scores;        // (vocab_size) SentencePiece kind: merge priority, higher first
    int max_token_length = 0;         // longest piece in bytes, as the file records it
    std::shared_ptr<const ByteBpe> byte_level;  // the byte-level kind's encoder; null: SentencePiece kind
    // Text that becomes one id wherever a prompt holds it (control and user-defined tokens:
    // "<|im_start|>"), matched leftmost-longest as Hugging Face's tokenizer does by default.
    std::vector<std::pair<std::string, int>> specials;

    // What the model's files ask of generation; llama2.c's, unless they say otherwise: a
    // prompt starts with BOS, and BOS again ends a story.
    int bos_id = 1, eos_id = 2;   // -1: the vocabulary has none
    bool add_bos = true;
    std::vector<int> stop_ids = {1};
    std::string chat_template;    // the Jinja text the files carry, or ""

    // The file holds int32 max_token_length, then per piece: float32 score, int32 length,
    // the bytes. It does not store the vocabulary size, so the model's is given, and a
    // file with more or fewer pieces is an error.
    static Tokenizer load(const std::string& path, int vocab_size);
    // 259 pieces: 0 "<unk>", 1 "\n<s>\n" (BOS), 2 "\n</s>\n" (EOS), 3..258 "<0x00>".."<0xFF>".
    static Tokenizer bytes();
    void save(const std::string& path) const;
    // After editing pieces or specials by hand, rebuild the piece -> id map before encoding.
    void build_index();

    int vocab_size() const { return (int)pieces.size(); }
    bool is_byte_level() const { return byte_level != nullptr; }
    std::vector<int> encode(const std::string& text, bool bos, bool eos) const;
    // The bytes of token after prev_token. SentencePiece kind: a byte piece "<0xXX>" becomes
    // that raw byte, and a leading space is dropped after BOS. A multi-byte character may be
    // split across tokens: print through a Utf8Stream (src/text/unicode.h).
    std::string decode_piece(int prev_token, int token) const;
    // All tokens' text, BOS and EOS skipped.
    std::string decode(const std::vector<int>& tokens) const;
    // Whether generation ends at this token.
    bool is_stop(int token) const;

private:
    int find(const std::string& piece) const;  // id of a mergeable piece, -1 if absent
    void encode_pieces(const std::string& text, std::vector<int>& out) const;  // SentencePiece kind, no specials
    std::unordered_map<std::string, int> ids_;
    std::bitset<256> special_starts_;   // the first bytes of specials
    size_t indexed_size_ = 0;  // pieces.size() when ids_ was built
};

// A tokenizer from what a checkpoint describes (a GGUF file's metadata, a tokenizer.json):
// "llama" becomes the SentencePiece kind, refused clearly where its layout is not the one
// llama2.c's encoder assumes (<unk> 0, BOS 1, EOS 2, byte pieces at 3..258); "gpt2" the
// byte-level kind with its named pre-tokenizer; another model name is a clear error.
// Control and user-defined tokens become specials; add_bos, the EOS as stop id and the chat
// template come from the spec.
Tokenizer tokenizer_from_spec(const TokenizerSpec& spec);
