#include "src/tokenizer.h"
#include "src/util.h"
#include <cstdio>
#include <cstring>
#include <memory>

static const int kBOS = 1, kEOS = 2, kFirstByte = 3;

void Tokenizer::index() {
    ids_.clear();
    for (int i = (int)pieces.size() - 1; i >= 0; i--) ids_[pieces[i]] = i;  // first id wins
}

int Tokenizer::lookup(const std::string& piece) const {
    auto it = ids_.find(piece);
    return it == ids_.end() ? -1 : it->second;
}

Tokenizer Tokenizer::load(const std::string& path, int vocab_size) {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f) fail("cannot open tokenizer '" + path + "'");
    Tokenizer t;
    auto bad = [&](const std::string& why) {
        fail("tokenizer '" + path + "' " + why + " (is it a tokenizer.bin for a " + std::to_string(vocab_size) + "-token model?)");
    };
    int32_t max_len;
    if (std::fread(&max_len, 4, 1, f.get()) != 1) bad("is empty");
    if (max_len < 1 || max_len > 4096) bad("has a bad header");
    t.max_token_length = max_len;
    for (int i = 0; i < vocab_size; i++) {
        float score;
        int32_t len;
        if (std::fread(&score, 4, 1, f.get()) != 1 || std::fread(&len, 4, 1, f.get()) != 1)
            bad("ends after " + std::to_string(i) + " pieces");
        if (len < 0 || len > max_len) bad("has a piece of length " + std::to_string(len));
        std::string piece(len, '\0');
        if (len > 0 && std::fread(&piece[0], 1, len, f.get()) != (size_t)len) bad("is truncated");
        t.pieces.push_back(piece);
        t.scores.push_back(score);
    }
    if (std::fgetc(f.get()) != EOF) bad("holds more than " + std::to_string(vocab_size) + " pieces");
    t.index();
    return t;
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
    t.max_token_length = 7;
    t.index();
    return t;
}

void Tokenizer::save(const std::string& path) const {
    std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "wb"), std::fclose);
    if (!f) fail("cannot write tokenizer '" + path + "'");
    int32_t max_len = max_token_length;
    bool ok = std::fwrite(&max_len, 4, 1, f.get()) == 1;
    for (size_t i = 0; i < pieces.size(); i++) {
        int32_t len = (int32_t)pieces[i].size();
        ok = ok && std::fwrite(&scores[i], 4, 1, f.get()) == 1 && std::fwrite(&len, 4, 1, f.get()) == 1 &&
             std::fwrite(pieces[i].data(), 1, len, f.get()) == (size_t)len;
    }
    if (!ok) fail("error writing tokenizer '" + path + "'");
}

// Length of the UTF-8 sequence a lead byte starts (1 for anything malformed).
static int utf8_length(unsigned char c) {
    if (c >= 0xF0 && c < 0xF8) return 4;
    if (c >= 0xE0) return c < 0xF0 ? 3 : 1;
    if (c >= 0xC0) return 2;
    return 1;
}

std::vector<int> Tokenizer::encode(const std::string& text, bool bos, bool eos) const {
    std::vector<int> tokens;
    if (bos) tokens.push_back(kBOS);
    std::vector<int> work;
    // sentencepiece adds a dummy prefix space
    if (!text.empty()) {
        int space = lookup(" ");
        if (space >= 0) work.push_back(space);
    }
    // one piece per code point, or its bytes when the vocabulary lacks it
    for (size_t i = 0; i < text.size();) {
        size_t n = utf8_length((unsigned char)text[i]);
        bool whole = i + n <= text.size();
        for (size_t j = 1; whole && j < n; j++) whole = ((unsigned char)text[i + j] & 0xC0) == 0x80;
        if (!whole) n = 1;
        int id = lookup(text.substr(i, n));
        if (id >= 0) work.push_back(id);
        else
            for (size_t j = 0; j < n; j++) work.push_back((unsigned char)text[i + j] + kFirstByte);
        i += n;
    }
    // merge the adjacent pair with the best score until none is a piece
    std::string pair;
    for (;;) {
        float best = -1e30f;
        int best_id = -1;
        size_t best_at = 0;
        for (size_t i = 0; i + 1 < work.size(); i++) {
            pair = pieces[work[i]];
            pair += pieces[work[i + 1]];
            int id = lookup(pair);
            if (id >= 0 && scores[id] > best) { best = scores[id]; best_id = id; best_at = i; }
        }
        if (best_id < 0) break;
        work[best_at] = best_id;
        work.erase(work.begin() + best_at + 1);
    }
    tokens.insert(tokens.end(), work.begin(), work.end());
    if (eos) tokens.push_back(kEOS);
    return tokens;
}

std::string Tokenizer::decode_piece(int prev_token, int token) const {
    if (token < 0 || token >= vocab_size()) fail("token id " + std::to_string(token) + " is outside the tokenizer's vocabulary");
    const std::string& piece = pieces[token];
    unsigned int byte;
    if (piece.size() == 6 && std::sscanf(piece.c_str(), "<0x%02X>", &byte) == 1) return std::string(1, (char)byte);
    if (prev_token == kBOS && !piece.empty() && piece[0] == ' ') return piece.substr(1);
    return piece;
}

std::string Tokenizer::decode(const std::vector<int>& tokens) const {
    std::string out;
    int prev = -1;  // only a real BOS drops the leading space
    for (int t : tokens) {
        if (t == kBOS || t == kEOS) { prev = t; continue; }
        out += decode_piece(prev, t);
        prev = t;
    }
    return out;
}
