// UTF-8 and the Unicode classes that byte-level BPE's pre-tokenizers need.
//
// The pre-tokenizers' rules are regular expressions over Unicode classes (\p{L}, \p{N},
// \s), which std::regex cannot express, so src/text/pretokenize.cpp scans code points and
// asks char_class() for each. The classes come from a table that tools/gen_unicode_classes.py
// generates (src/text/unicode_classes.cpp), of the Unicode version that Hugging Face's
// tokenizers matches with.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

enum class CharClass : uint8_t { Other, Letter, Number, Space };

struct UnicodeRange {
    uint32_t first, last;  // code points, inclusive
    CharClass klass;
};
extern const UnicodeRange kUnicodeRanges[];  // sorted, disjoint; code points in none are Other
extern const size_t kUnicodeRangeCount;
extern const char* const kUnicodeVersion;    // "16.0.0"

// A code point that is not one: what utf8_decode gives for a byte that starts no valid
// UTF-8 sequence. Its class is Other.
const uint32_t kNotACodePoint = 0xFFFFFFFF;

CharClass char_class(uint32_t cp);

// The code point starting at s[i] (i < n) and its length in bytes. An invalid sequence
// (a stray continuation byte, a truncated or overlong sequence, a surrogate, past
// U+10FFFF) gives kNotACodePoint and length 1: invalid text goes on byte by byte.
uint32_t utf8_decode(const char* s, size_t n, size_t i, size_t* length);
// The UTF-8 bytes of a code point (<= U+10FFFF).
std::string utf8_encode(uint32_t cp);
// Whether all of s is valid UTF-8.
bool utf8_valid(const std::string& s);

// Decoded tokens as printable text. Byte-level tokens (and SentencePiece's byte pieces)
// split characters: a 3-byte character may come as three tokens. push() returns only
// complete characters and holds a partial one until the next token completes it; a byte
// that can start or continue no valid sequence becomes U+FFFD, as does what is still held
// at finish(). ASCII control characters other than whitespace are dropped, as llama2.c's
// run.c drops unprintable byte tokens.
class Utf8Stream {
public:
    std::string push(const std::string& bytes);
    std::string finish();

private:
    std::string held_;  // the start of a character whose other bytes have not come yet
};
