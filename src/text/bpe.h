// A small byte-fallback BPE trainer that writes llama2.c's tokenizer.bin.
//
// Piece layout: 0 "<unk>", 1 "\n<s>\n", 2 "\n</s>\n", 3..258 the byte pieces
// "<0x00>".."<0xFF>", then every character of the text (" " included) in byte
// order, then the learned merges in the order they were learned.
// Scores: 0 for the first 259, -1e6 for characters, -k for the k-th merge
// (k = 0, 1, ...), so an encoder that merges the highest-scoring pair first
// replays the merges in training order.
#pragma once
#include <string>
#include <vector>

struct BpeVocab {
    std::vector<std::string> pieces;
    std::vector<float> scores;
};

// Learns merges greedily by pair frequency until the vocab holds vocab_size
// pieces. The text is split into words the sentencepiece way (a leading space
// stays on the word: " the", " Lily"; punctuation stands alone), so merges never
// cross a word. fail()s if vocab_size < 259 + distinct characters, or if the
// text runs out of pairs before the vocab is full.
BpeVocab train_bpe(const std::string& text, int vocab_size);

// tokenizer.bin: int32 max_token_length, then per piece float32 score,
// int32 byte length, the bytes.
void save_tokenizer_bin(const std::string& path, const BpeVocab& v);
