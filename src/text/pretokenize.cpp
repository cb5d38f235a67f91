#include "src/text/pretokenize.h"
#include "src/text/unicode.h"
#include "src/util.h"
#include <algorithm>

const char* const kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

PreTokenizer pre_tokenizer_named(const std::string& name, const std::string& source) {
    if (name == "gpt2") return PreTokenizer::Gpt2;
    if (name == "smollm" || name == "starcoder" || name == "refact") return PreTokenizer::SmolLM;
    if (name == "llama-bpe" || name == "llama3") return PreTokenizer::Llama3;
    fail(source + ": pre-tokenizer '" + name + "' is not one kvshare implements (gpt2; smollm, starcoder, refact; llama-bpe, llama3)");
}

const char* pre_tokenizer_name(PreTokenizer p) {
    return p == PreTokenizer::Gpt2 ? "gpt2" : p == PreTokenizer::SmolLM ? "smollm" : "llama3";
}

namespace {

// The text as code points, with each one's byte offset (at[n] = the text's size).
struct Chars {
    std::vector<uint32_t> cp;
    std::vector<CharClass> cls;
    std::vector<size_t> at;

    explicit Chars(const std::string& text) {
        for (size_t i = 0, len; i < text.size(); i += len) {
            const uint32_t c = utf8_decode(text.data(), text.size(), i, &len);
            cp.push_back(c);
            cls.push_back(c == kNotACodePoint ? CharClass::Other : char_class(c));
            at.push_back(i);
        }
        at.push_back(text.size());
    }
    bool is(size_t k, CharClass c) const { return cls[k] == c; }
    bool newline(size_t k) const { return cp[k] == '\r' || cp[k] == '\n'; }
};

// The end of the run of class c that starts at k (k itself if none), before `end`.
size_t run(const Chars& s, size_t k, size_t end, CharClass c) {
    while (k < end && s.is(k, c)) k++;
    return k;
}

// ' ?X+': an optional space, then one or more of class c; the length, or 0.
size_t space_then_run(const Chars& s, size_t k, size_t end, CharClass c) {
    size_t j = k;
    if (s.cp[j] == ' ' && j + 1 < end && s.is(j + 1, c)) j++;
    return run(s, j, end, c) > j ? run(s, j, end, c) - k : 0;
}

// 's|'t|'re|'ve|'m|'ll|'d; case-insensitive as Llama 3 writes it with (?i:), where the
// regex engine's case folding also lets U+017F (long s) stand for s.
size_t contraction(const Chars& s, size_t k, size_t end, bool any_case) {
    if (s.cp[k] != '\'' || k + 1 >= end) return 0;
    auto letter = [&](size_t j, char want) {
        if (j >= end) return false;
        const uint32_t c = s.cp[j];
        if (c == (uint32_t)want) return true;
        return any_case && (c == (uint32_t)(want - 'a' + 'A') || (want == 's' && c == 0x17F));
    };
    for (const char* suffix : {"s", "t", "re", "ve", "m", "ll", "d"}) {
        size_t n = 0;
        while (suffix[n] && letter(k + 1 + n, suffix[n])) n++;
        if (!suffix[n]) return 1 + n;
    }
    return 0;
}

// \s+(?!\S), else \s+: a run of whitespace, less its last character when a non-space
// follows (that one goes with the next word), unless the run is that one character.
size_t whitespace(const Chars& s, size_t k, size_t end) {
    const size_t r = run(s, k, end, CharClass::Space);
    if (r == k) return 0;
    return r == end || r - k == 1 ? r - k : r - k - 1;
}

// GPT-2's rule: the length in characters of the word that starts at k (at least 1).
size_t gpt2_word(const Chars& s, size_t k, size_t end) {
    if (size_t n = contraction(s, k, end, false)) return n;
    if (size_t n = space_then_run(s, k, end, CharClass::Letter)) return n;
    if (size_t n = space_then_run(s, k, end, CharClass::Number)) return n;
    if (size_t n = space_then_run(s, k, end, CharClass::Other)) return n;
    return whitespace(s, k, end);
}

// Llama 3's rule, the same way.
size_t llama3_word(const Chars& s, size_t k, size_t end) {
    if (size_t n = contraction(s, k, end, true)) return n;
    // [^\r\n\p{L}\p{N}]?\p{L}+
    size_t j = k;
    if (!s.newline(k) && !s.is(k, CharClass::Letter) && !s.is(k, CharClass::Number) && k + 1 < end && s.is(k + 1, CharClass::Letter)) j++;
    if (s.is(j, CharClass::Letter)) return run(s, j, end, CharClass::Letter) - k;
    // \p{N}{1,3}
    if (s.is(k, CharClass::Number)) return std::min<size_t>(3, run(s, k, end, CharClass::Number) - k);
    // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
    if (size_t n = space_then_run(s, k, end, CharClass::Other)) {
        size_t e = k + n;
        while (e < end && s.newline(e)) e++;
        return e - k;
    }
    // \s*[\r\n]+: whitespace up to and including the last line break of the run
    const size_t r = run(s, k, end, CharClass::Space);
    for (size_t q = r; q > k; q--)
        if (s.newline(q - 1)) return q - k;
    return whitespace(s, k, end);
}

void split(const Chars& s, size_t begin, size_t end, size_t (*word)(const Chars&, size_t, size_t),
           std::vector<std::pair<size_t, size_t>>& out) {
    for (size_t k = begin; k < end;) {
        const size_t n = word(s, k, end);
        out.push_back({s.at[k], s.at[k + n]});
        k += n;
    }
}

}  // namespace

std::vector<std::pair<size_t, size_t>> pre_tokenize(const std::string& text, PreTokenizer p) {
    const Chars s(text);
    const size_t n = s.cp.size();
    std::vector<std::pair<size_t, size_t>> words;
    if (p == PreTokenizer::Gpt2) split(s, 0, n, gpt2_word, words);
    else if (p == PreTokenizer::Llama3) split(s, 0, n, llama3_word, words);
    else
        // each number character alone; gpt2's rule on the stretches between
        for (size_t k = 0; k < n;) {
            if (s.is(k, CharClass::Number)) { words.push_back({s.at[k], s.at[k + 1]}); k++; continue; }
            size_t e = k;
            while (e < n && !s.is(e, CharClass::Number)) e++;
            split(s, k, e, gpt2_word, words);
            k = e;
        }
    return words;
}
