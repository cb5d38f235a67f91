// llama2.c's tokenizer.bin: sentencepiece-style BPE with byte fallback.
#pragma once
#include <string>
#include <unordered_map>
#include <vector>

struct Tokenizer {
    std::vector<std::string> pieces;  // (vocab_size) the text of each token id
    std::vector<float> scores;        // (vocab_size) merge priority: higher merges first
    int max_token_length = 0;         // longest piece in bytes, as the file records it
    // Whether "<unk>", "<s>" and "</s>" written in the text are those tokens (ids 0, 1, 2), as
    // Hugging Face's LlamaTokenizer reads text with a SentencePiece model (parse_sentencepiece
    // sets it): the text is cut at each, and each part between is encoded on its own, with its
    // own dummy-prefix space. Off (llama2.c's tokenizer.bin), they are plain text, as run.c has it.
    bool special_tokens_in_text = false;

    // The file holds int32 max_token_length, then per piece: float32 score, int32 length,
    // the bytes. It does not store the vocabulary size, so the model's is given, and a
    // file with more or fewer pieces is an error.
    static Tokenizer load(const std::string& path, int vocab_size);
    // 259 pieces: 0 "<unk>", 1 "\n<s>\n" (BOS), 2 "\n</s>\n" (EOS), 3..258 "<0x00>".."<0xFF>".
    static Tokenizer bytes();
    void save(const std::string& path) const;
    // After editing pieces by hand, rebuild the piece -> id map before encoding.
    void build_index();

    int vocab_size() const { return (int)pieces.size(); }
    std::vector<int> encode(const std::string& text, bool bos, bool eos) const;
    // The text of token after prev_token: a byte piece "<0xXX>" becomes that raw byte,
    // and a leading space is dropped after BOS.
    std::string decode_piece(int prev_token, int token) const;
    // All tokens' text, BOS and EOS skipped.
    std::string decode(const std::vector<int>& tokens) const;

private:
    // encode() without special tokens in the text: BPE merges over the whole text.
    std::vector<int> encode_text(const std::string& text, bool bos, bool eos) const;
    int find(const std::string& piece) const;  // id of a piece, -1 if absent
    std::unordered_map<std::string, int> ids_;
    size_t indexed_size_ = 0;  // pieces.size() when ids_ was built
};
