// llama2.c's tokenizer.bin: sentencepiece-style BPE with byte fallback.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

struct Tokenizer {
    std::vector<std::string> pieces;  // (vocab_size)
    std::vector<float> scores;        // (vocab_size) merge priority: higher merges first
    int max_token_length = 0;

    // The file stores max_token_length, then (score, len, bytes) per piece; the vocabulary
    // size is not stored, so the model's is given.
    static Tokenizer load(const std::string& path, int vocab_size);
    // 259 pieces: <unk>, <s>, </s>, then the bytes <0x00>..<0xFF> (ids 3..258).
    static Tokenizer bytes();
    void save(const std::string& path) const;

    int vocab_size() const { return (int)pieces.size(); }
    std::vector<int> encode(const std::string& text, bool bos, bool eos) const;
    // The text of token after prev_token: a leading space is dropped after BOS, and a
    // byte piece "<0xXX>" becomes that raw byte.
    std::string decode_piece(int prev_token, int token) const;
    std::string decode(const std::vector<int>& tokens) const;

private:
    void index();
    int lookup(const std::string& piece) const;
    std::unordered_map<std::string, int> ids_;
};
