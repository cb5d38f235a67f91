#include "src/text/byte_bpe.h"
#include "src/text/pair_merge.h"
#include "src/text/unicode.h"
#include "src/util.h"

// ---------------------------------------------------------------- the byte map

static bool prints_as_itself(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

namespace {
// Both directions, and each byte's UTF-8 text, worked out once.
struct ByteMap {
    uint32_t code_point[256];
    std::string text[256];
    int byte_of[256 + 68];  // code points 0..323 -> byte, or -1
    ByteMap() {
        uint32_t next = 256;  // the bytes that do not print as themselves, in order, from U+0100
        for (int b = 0; b < 256 + 68; b++) byte_of[b] = -1;
        for (int b = 0; b < 256; b++) {
            code_point[b] = prints_as_itself(b) ? (uint32_t)b : next++;
            text[b] = utf8_encode(code_point[b]);
            byte_of[code_point[b]] = b;
        }
    }
};
const ByteMap& byte_map() {
    static const ByteMap map;
    return map;
}
}  // namespace

uint32_t byte_to_code_point(uint8_t b) { return byte_map().code_point[b]; }

int code_point_to_byte(uint32_t cp) { return cp < 256 + 68 ? byte_map().byte_of[cp] : -1; }

std::string bytes_to_token_text(const std::string& bytes) {
    std::string text;
    for (unsigned char b : bytes) text += byte_map().text[b];
    return text;
}

bool token_text_to_bytes(const std::string& text, std::string* bytes) {
    bytes->clear();
    for (size_t i = 0, len; i < text.size(); i += len) {
        const uint32_t cp = utf8_decode(text.data(), text.size(), i, &len);
        const int b = cp == kNotACodePoint ? -1 : code_point_to_byte(cp);
        if (b < 0) return false;
        *bytes += (char)b;
    }
    return true;
}

// ---------------------------------------------------------------- the vocabulary

static uint64_t pair_key(int left, int right) { return (uint64_t)(uint32_t)left << 32 | (uint32_t)right; }

ByteBpe::ByteBpe(PreTokenizer pre_, bool ignore_merges_, const std::vector<std::string>& tokens, const std::vector<bool>& mergeable,
                 const std::vector<std::string>& merges, const std::string& source)
    : pre(pre_), ignore_merges(ignore_merges_) {
    ids_.reserve(tokens.size());
    for (size_t id = 0; id < tokens.size(); id++)
        if (mergeable[id] && !ids_.emplace(tokens[id], (int)id).second)
            fail(source + ": token " + std::to_string(id) + " ('" + tokens[id] + "') is a duplicate of token " +
                 std::to_string(ids_[tokens[id]]));
    // SmolLM2's vocabulary lacks 21 bytes (0xC0, 0xC1, 0xF5..0xFF, which UTF-8 never uses, and a few more)
    for (int b = 0; b < 256; b++) {
        const auto it = ids_.find(utf8_encode(byte_to_code_point((uint8_t)b)));
        byte_token_[b] = it == ids_.end() ? -1 : it->second;
    }
    merges_.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); rank++) {
        const std::string& m = merges[rank];
        const size_t space = m.find(' ');
        const std::string what = source + ": merge " + std::to_string(rank) + " ('" + m + "')";
        if (space == std::string::npos || space == 0 || space + 1 == m.size() || m.find(' ', space + 1) != std::string::npos)
            fail(what + " is not two tokens separated by one space");
        const std::string left = m.substr(0, space), right = m.substr(space + 1);
        const auto l = ids_.find(left), r = ids_.find(right), joined = ids_.find(left + right);
        if (l == ids_.end() || r == ids_.end()) fail(what + " names a token the vocabulary lacks ('" + (l == ids_.end() ? left : right) + "')");
        if (joined == ids_.end()) fail(what + " makes '" + left + right + "', which the vocabulary lacks");
        // of two merges of the same pair the later one counts, as in Hugging Face's reader
        merges_[pair_key(l->second, r->second)] = Merge{(int)rank, joined->second};
    }
}

// ---------------------------------------------------------------- encoding

void ByteBpe::encode_word(const std::string& word, std::vector<int>& out) const {
    if (ignore_merges) {
        const auto it = ids_.find(bytes_to_token_text(word));
        if (it != ids_.end()) { out.push_back(it->second); return; }
    }
    // one symbol per byte; a byte without a token is dropped, as Hugging Face's BPE drops it
    // when the model has no unknown token (byte-level models have none)
    std::vector<int> bytes;
    bytes.reserve(word.size());
    for (unsigned char b : word)
        if (byte_token_[b] >= 0) bytes.push_back(byte_token_[b]);
    std::vector<MergeSymbol> syms = merge_symbols(bytes);
    // the pair's merge, lowest rank first
    auto find_pair = [&](int left, int right, double* priority, int* merged) {
        const auto it = merges_.find(pair_key(left, right));
        if (it == merges_.end()) return false;
        *priority = -(double)it->second.rank;
        *merged = it->second.result;
        return true;
    };
    merge_pairs(syms, find_pair, out);
}

void ByteBpe::encode(const std::string& text, std::vector<int>& out) const {
    for (const auto& w : pre_tokenize(text, pre)) encode_word(text.substr(w.first, w.second - w.first), out);
}
