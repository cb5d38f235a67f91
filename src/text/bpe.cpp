// BPE training with incremental pair counts: a merge touches only the words
// that hold the merged pair, and a lazy max-heap finds the next best pair.
#include "src/text/bpe.h"
#include "src/util.h"
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <queue>
#include <unordered_map>

namespace {

const int kFixedPieces = 259;          // <unk>, <s>, </s> and 256 bytes
const float kCharScore = -1e6f;        // below every merge; characters are never merged into

// Splits into characters the way the encoder does: a lead byte and the
// continuation bytes after it (at most 4 bytes in all).
std::vector<std::string> split_chars(const std::string& s) {
    std::vector<std::string> chars;
    for (size_t i = 0; i < s.size(); i++) {
        bool continuation = ((unsigned char)s[i] & 0xC0) == 0x80;
        if (continuation && !chars.empty() && chars.back().size() < 4) chars.back() += s[i];
        else chars.push_back(std::string(1, s[i]));
    }
    return chars;
}

// Letters, digits and any non-ASCII byte (UTF-8 letters) make up words.
bool word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

// Words with their counts: one optional leading space, then a run of word
// bytes or a single other byte. The encoder prepends " " to its text, so we do too.
std::vector<std::pair<std::string, int64_t>> count_words(const std::string& text) {
    std::string s = " " + text;
    std::unordered_map<std::string, int64_t> counts;
    size_t i = 0;
    while (i < s.size()) {
        size_t start = i;
        if (s[i] == ' ' && i + 1 < s.size() && s[i + 1] != ' ') i++;
        if (word_byte((unsigned char)s[i])) {
            while (i < s.size() && word_byte((unsigned char)s[i])) i++;
        } else {
            i++;
        }
        counts[s.substr(start, i - start)]++;
    }
    std::vector<std::pair<std::string, int64_t>> words(counts.begin(), counts.end());
    std::sort(words.begin(), words.end());   // a fixed order, whatever the hash map did
    return words;
}

uint64_t pair_key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
int key_left(uint64_t k) { return (int)(k >> 32); }
int key_right(uint64_t k) { return (int)(uint32_t)k; }

struct HeapEntry {
    int64_t count;
    uint64_t key;
};

struct Trainer {
    std::vector<std::string> pieces;
    std::unordered_map<std::string, int> piece_id;
    std::vector<std::vector<int>> words;   // each word as piece ids
    std::vector<int64_t> freq;             // how often each word occurs
    std::unordered_map<uint64_t, int64_t> pair_count;
    std::unordered_map<uint64_t, std::vector<int>> pair_words;   // may hold stale entries
    std::vector<uint64_t> touched;

    // Most frequent first; ties go to the smaller (left, right) strings so the
    // result never depends on hash-map order.
    bool worse(const HeapEntry& x, const HeapEntry& y) const {
        if (x.count != y.count) return x.count < y.count;
        const std::string &xa = pieces[key_left(x.key)], &ya = pieces[key_left(y.key)];
        if (xa != ya) return xa > ya;
        return pieces[key_right(x.key)] > pieces[key_right(y.key)];
    }
    std::vector<HeapEntry> heap;
    void push(HeapEntry e) {
        heap.push_back(e);
        std::push_heap(heap.begin(), heap.end(), [this](auto& x, auto& y) { return worse(x, y); });
    }
    HeapEntry pop() {
        std::pop_heap(heap.begin(), heap.end(), [this](auto& x, auto& y) { return worse(x, y); });
        HeapEntry e = heap.back();
        heap.pop_back();
        return e;
    }

    int add_piece(const std::string& s) {
        piece_id[s] = (int)pieces.size();
        pieces.push_back(s);
        return (int)pieces.size() - 1;
    }

    // Adds (sign +1) or removes (sign -1) the pairs of word w from the counts.
    void count_pairs(int w, int sign) {
        const std::vector<int>& syms = words[w];
        for (size_t i = 0; i + 1 < syms.size(); i++) {
            uint64_t k = pair_key(syms[i], syms[i + 1]);
            pair_count[k] += sign * freq[w];
            touched.push_back(k);
            if (sign > 0) pair_words[k].push_back(w);
        }
    }

    static bool holds(const std::vector<int>& syms, int a, int b) {
        for (size_t i = 0; i + 1 < syms.size(); i++)
            if (syms[i] == a && syms[i + 1] == b) return true;
        return false;
    }

    // Replaces every (a, b) in the words that hold it, left to right, by id c.
    void merge(int a, int b, int c, std::vector<int>& stamp, int round) {
        std::vector<int> holders = std::move(pair_words[pair_key(a, b)]);
        pair_words.erase(pair_key(a, b));
        touched.clear();
        for (int w : holders) {
            if (stamp[w] == round) continue;   // listed twice
            stamp[w] = round;
            std::vector<int>& syms = words[w];
            if (!holds(syms, a, b)) continue;   // stale: an earlier merge took the pair away
            count_pairs(w, -1);
            std::vector<int> merged;
            for (size_t i = 0; i < syms.size(); i++) {
                if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) { merged.push_back(c); i++; }
                else merged.push_back(syms[i]);
            }
            syms = merged;
            count_pairs(w, +1);
        }
        std::sort(touched.begin(), touched.end());
        touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
        for (uint64_t k : touched) {
            int64_t n = pair_count[k];
            if (n > 0) push({n, k});
            else pair_count.erase(k);
        }
    }

    // The best pair whose heap entry is still current; false when none is left.
    bool best_pair(uint64_t& key) {
        while (!heap.empty()) {
            HeapEntry e = pop();
            auto it = pair_count.find(e.key);
            if (it != pair_count.end() && it->second == e.count) { key = e.key; return true; }
        }
        return false;
    }
};

std::string byte_piece(int b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    return buf;
}

}  // namespace

BpeVocab train_bpe(const std::string& text, int vocab_size) {
    Trainer t;
    t.add_piece("<unk>");
    t.add_piece("\n<s>\n");
    t.add_piece("\n</s>\n");
    for (int b = 0; b < 256; b++) t.add_piece(byte_piece(b));

    auto counted = count_words(text);
    std::vector<std::string> chars;
    for (auto& [word, n] : counted)
        for (std::string& ch : split_chars(word)) chars.push_back(ch);
    std::sort(chars.begin(), chars.end());
    chars.erase(std::unique(chars.begin(), chars.end()), chars.end());
    int first_merge = kFixedPieces + (int)chars.size();
    if (vocab_size < first_merge)
        fail("vocab size " + std::to_string(vocab_size) + " is too small: the text needs at least " +
             std::to_string(first_merge) + " (259 fixed pieces + " + std::to_string(chars.size()) +
             " distinct characters)");
    for (const std::string& ch : chars) t.add_piece(ch);

    for (auto& [word, n] : counted) {
        std::vector<int> ids;
        for (const std::string& ch : split_chars(word)) ids.push_back(t.piece_id.at(ch));
        t.words.push_back(ids);
        t.freq.push_back(n);
    }
    for (int w = 0; w < (int)t.words.size(); w++) t.count_pairs(w, +1);
    for (auto& [k, n] : t.pair_count) t.push({n, k});

    std::vector<int> stamp(t.words.size(), -1);
    for (int round = 0; (int)t.pieces.size() < vocab_size; round++) {
        uint64_t key;
        if (!t.best_pair(key))
            fail("the text is too small for vocab size " + std::to_string(vocab_size) + ": it ran out of pairs at " +
                 std::to_string(t.pieces.size()) + " pieces (every word is one piece); use at most that many");
        int a = key_left(key), b = key_right(key);
        std::string joined = t.pieces[a] + t.pieces[b];
        auto found = t.piece_id.find(joined);
        // two routes to one string: keep the first piece, the merge still applies
        int c = found != t.piece_id.end() ? found->second : t.add_piece(joined);
        t.merge(a, b, c, stamp, round);
    }

    BpeVocab v;
    v.pieces = t.pieces;
    for (int i = 0; i < (int)v.pieces.size(); i++) {
        if (i < kFixedPieces) v.scores.push_back(0.0f);
        else if (i < first_merge) v.scores.push_back(kCharScore);
        else v.scores.push_back(-(float)(i - first_merge));
    }
    return v;
}

void save_tokenizer_bin(const std::string& path, const BpeVocab& v) {
    if (v.pieces.size() != v.scores.size())
        fail("tokenizer has " + std::to_string(v.pieces.size()) + " pieces but " + std::to_string(v.scores.size()) +
             " scores");
    int32_t max_len = 0;
    for (const std::string& p : v.pieces) max_len = std::max(max_len, (int32_t)p.size());
    OutputFile f(path);
    f.write(&max_len, sizeof max_len);
    for (size_t i = 0; i < v.pieces.size(); i++) {
        int32_t len = (int32_t)v.pieces[i].size();
        f.write(&v.scores[i], sizeof(float));
        f.write(&len, sizeof len);
        f.write(v.pieces[i].data(), len);
    }
    f.commit();
}
