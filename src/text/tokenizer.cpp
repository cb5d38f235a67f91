#include "src/text/tokenizer.h"
#include "src/text/byte_bpe.h"
#include "src/text/pair_merge.h"
#include "src/util.h"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

static const int kFirstByte = 3;  // SentencePiece kind: byte b falls back to token b + 3

// ---------------------------------------------------------------- the file

// Reads little-endian fields from a file held in memory; size_t offsets throughout.
struct Reader {
    const std::string& data;
    size_t pos = 0;
    bool take(void* dst, size_t n) {
        if (data.size() - pos < n) return false;
        std::memcpy(dst, data.data() + pos, n);
        pos += n;
        return true;
    }
};

Tokenizer Tokenizer::load(const std::string& path, int vocab_size) {
    if (vocab_size <= 0) fail("tokenizer '" + path + "': vocab_size must be positive, got " + std::to_string(vocab_size));
    // the vocabulary size is the usual culprit, so every message names it
    const std::string hint = " (not a llama2.c tokenizer.bin for a " + std::to_string(vocab_size) + "-token vocabulary?)";
    auto bad = [&](const std::string& why) { fail("tokenizer '" + path + "' " + why + hint); };
    // Sizes before allocation: every piece takes at least 8 bytes (score, length), and no
    // piece is longer than the header's max_token_length, so the file bounds both ways.
    check_input_file(path, "tokenizer");
    const size_t size = file_size(path);
    if (size < 4 + 8 * (size_t)vocab_size)
        bad("has " + std::to_string(size) + " bytes, fewer than the " + std::to_string(4 + 8 * (size_t)vocab_size) +
            " that " + std::to_string(vocab_size) + " pieces take at least");
    const std::string data = read_text_file(path, "tokenizer", size);

    Reader r{data};
    Tokenizer t;
    int32_t max_len = 0;
    if (!r.take(&max_len, 4)) bad("is too short for its header");
    if (max_len <= 0 || (size_t)max_len > size) bad("has a bad max_token_length " + std::to_string(max_len));
    t.max_token_length = max_len;
    t.pieces.resize(vocab_size);
    t.scores.resize(vocab_size);
    for (int i = 0; i < vocab_size; i++) {
        int32_t len = 0;
        if (!r.take(&t.scores[i], 4) || !r.take(&len, 4))
            bad("ends after " + std::to_string(i) + " of " + std::to_string(vocab_size) + " pieces");
        if (len < 0 || len > max_len)
            bad("has piece " + std::to_string(i) + " of length " + std::to_string(len) + " (max_token_length " +
                std::to_string(max_len) + ")");
        t.pieces[i].resize(len);
        if (!r.take(&t.pieces[i][0], (size_t)len))
            bad("is truncated inside piece " + std::to_string(i) + " of " + std::to_string(vocab_size));
    }
    if (r.pos != data.size())
        bad("has " + std::to_string(data.size() - r.pos) + " bytes left over after " + std::to_string(vocab_size) + " pieces");
    t.build_index();
    return t;
}

void Tokenizer::save(const std::string& path) const {
    if (is_byte_level()) fail("tokenizer: a byte-level BPE tokenizer cannot be written as a llama2.c tokenizer.bin");
    if (scores.size() != pieces.size()) fail("tokenizer: " + std::to_string(pieces.size()) + " pieces but " +
                                             std::to_string(scores.size()) + " scores");
    // the loader rejects pieces longer than the header says, so never write a smaller one
    int32_t max_len = max_token_length;
    for (const std::string& p : pieces) max_len = std::max(max_len, (int32_t)p.size());
    std::string out;
    auto put = [&](const void* src, size_t n) { out.append((const char*)src, n); };
    put(&max_len, 4);
    for (size_t i = 0; i < pieces.size(); i++) {
        int32_t len = (int32_t)pieces[i].size();
        put(&scores[i], 4);
        put(&len, 4);
        put(pieces[i].data(), pieces[i].size());
    }
    write_file_atomic(path, out);
}

Tokenizer Tokenizer::bytes() {
    Tokenizer t;
    t.pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
    for (int b = 0; b < 256; b++) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        t.pieces.push_back(buf);
    }
    t.scores.assign(t.pieces.size(), 0.0f);
    t.max_token_length = 6;  // "\n</s>\n" and "<0xXX>"
    t.build_index();
    return t;
}

void Tokenizer::build_index() {
    for (const auto& s : specials)
        if (s.first.empty() || s.second < 0 || s.second >= vocab_size())
            fail("tokenizer: special token '" + s.first + "' (id " + std::to_string(s.second) + ") is empty or outside the vocabulary");
    // longest first, so that the first special that matches at a position is the longest
    std::stable_sort(specials.begin(), specials.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
    ids_.clear();
    ids_.reserve(pieces.size());
    std::vector<bool> special(pieces.size(), false);
    special_starts_.reset();
    for (const auto& s : specials) {
        special[s.second] = true;
        special_starts_.set((unsigned char)s.first[0]);
    }
    // emplace keeps the first id when a piece appears twice; merges never make a special
    for (size_t i = 0; i < pieces.size(); i++)
        if (!special[i]) ids_.emplace(pieces[i], (int)i);
    indexed_size_ = pieces.size();
}

int Tokenizer::find(const std::string& piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
}

// ---------------------------------------------------------------- encoding

// Bytes in the UTF-8 character starting at text[i]; 1 for a stray or incomplete one,
// so that invalid text still falls back to single bytes.
static size_t utf8_char_length(const std::string& text, size_t i) {
    unsigned char c = (unsigned char)text[i];
    size_t n = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
    if (n == 0 || i + n > text.size()) return 1;
    for (size_t j = 1; j < n; j++)
        if (((unsigned char)text[i + j] & 0xC0) != 0x80) return 1;
    return n;
}

std::vector<int> Tokenizer::encode(const std::string& text, bool bos, bool eos) const {
    if (indexed_size_ != pieces.size()) fail("tokenizer: pieces changed since build_index()");
    if ((bos && (bos_id < 0 || bos_id >= vocab_size())) || (eos && (eos_id < 0 || eos_id >= vocab_size())))
        fail("tokenizer: the vocabulary has no " + std::string(bos ? "BOS" : "EOS") + " token");
    std::vector<int> tokens;
    if (bos) tokens.push_back(bos_id);
    // special tokens' text becomes their ids; the kind's encoder takes the text between them
    auto encode_text = [&](size_t from, size_t to) {
        if (from == to) return;
        if (byte_level) byte_level->encode(text.substr(from, to - from), tokens);
        else encode_pieces(text.substr(from, to - from), tokens);
    };
    size_t start = 0;
    for (size_t i = 0; i < text.size() && !specials.empty();) {
        if (!special_starts_[(unsigned char)text[i]]) { i++; continue; }
        const auto s = std::find_if(specials.begin(), specials.end(), [&](const auto& sp) { return text.compare(i, sp.first.size(), sp.first) == 0; });
        if (s == specials.end()) { i++; continue; }
        encode_text(start, i);
        tokens.push_back(s->second);
        i += s->first.size();
        start = i;
    }
    encode_text(start, text.size());
    if (eos) tokens.push_back(eos_id);
    return tokens;
}

// The SentencePiece kind's text without specials: a dummy-prefix space, each character's
// piece (or its bytes' pieces), then merges by score.
void Tokenizer::encode_pieces(const std::string& text, std::vector<int>& tokens) const {
    std::vector<int> start;
    auto add = [&](int token) { start.push_back(token); };
    int space = text.empty() ? -1 : find(" ");
    if (space >= 0) add(space);
    for (size_t i = 0; i < text.size();) {
        size_t n = utf8_char_length(text, i);
        int id = find(text.substr(i, n));
        if (id >= 0) add(id);
        for (size_t j = 0; id < 0 && j < n; j++) {
            int byte_id = (unsigned char)text[i + j] + kFirstByte;
            if (byte_id >= vocab_size()) fail("tokenizer: text needs a byte token, but the vocabulary has no byte pieces");
            add(byte_id);
        }
        i += n;
    }
    std::vector<MergeSymbol> syms = merge_symbols(start);
    // merge the best adjacent pair until no pair forms a piece: highest score first
    auto find_pair = [&](int left, int right, double* priority, int* merged) {
        const int id = find(pieces[left] + pieces[right]);
        if (id < 0) return false;
        *priority = scores[id];
        *merged = id;
        return true;
    };
    merge_pairs(syms, find_pair, tokens);
}

// ---------------------------------------------------------------- decoding

static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The byte a piece "<0xXX>" stands for, or -1 for any other piece.
static int byte_piece_value(const std::string& p) {
    if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return -1;
    int hi = hex_digit(p[3]), lo = hex_digit(p[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::string Tokenizer::decode_piece(int prev_token, int token) const {
    if (token < 0 || token >= vocab_size())
        fail("token id " + std::to_string(token) + " is outside the tokenizer's vocabulary of " + std::to_string(vocab_size()));
    const std::string& piece = pieces[token];
    if (is_byte_level()) return piece;
    int byte = byte_piece_value(piece);
    if (byte >= 0) return std::string(1, (char)byte);
    if (prev_token == bos_id && !piece.empty() && piece[0] == ' ') return piece.substr(1);  // the dummy prefix
    return piece;
}

std::string Tokenizer::decode(const std::vector<int>& tokens) const {
    std::string out;
    int prev = -1;
    for (int t : tokens) {
        if (t != bos_id && t != eos_id) out += decode_piece(prev, t);
        prev = t;
    }
    return out;
}

bool Tokenizer::is_stop(int token) const { return std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end(); }
