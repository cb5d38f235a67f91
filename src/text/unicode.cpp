#include "src/text/unicode.h"
#include <algorithm>

CharClass char_class(uint32_t cp) {
    const UnicodeRange* end = kUnicodeRanges + kUnicodeRangeCount;
    // the first range that ends at or after cp
    const UnicodeRange* r = std::lower_bound(kUnicodeRanges, end, cp, [](const UnicodeRange& a, uint32_t c) { return a.last < c; });
    return r != end && r->first <= cp ? r->klass : CharClass::Other;
}

// ---------------------------------------------------------------- UTF-8

// Bytes in the sequence a lead byte starts: 1 for ASCII, 2..4, or 0 for a byte that
// starts none (a continuation byte, 0xC0, 0xC1, 0xF5..0xFF).
static size_t sequence_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead < 0xC2) return 0;
    if (lead < 0xE0) return 2;
    if (lead < 0xF0) return 3;
    if (lead < 0xF5) return 4;
    return 0;
}

// Whether byte b may follow the bytes s[0..k) of a sequence led by s[0]: a continuation
// byte, in the narrower ranges after E0, ED, F0, F4 that rule out overlong forms,
// surrogates and code points past U+10FFFF.
static bool continues(unsigned char lead, size_t k, unsigned char b) {
    if ((b & 0xC0) != 0x80) return false;
    if (k != 1) return true;
    if (lead == 0xE0) return b >= 0xA0;
    if (lead == 0xED) return b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90;
    if (lead == 0xF4) return b <= 0x8F;
    return true;
}

uint32_t utf8_decode(const char* s, size_t n, size_t i, size_t* length) {
    *length = 1;
    const unsigned char lead = (unsigned char)s[i];
    const size_t len = sequence_length(lead);
    if (len == 0 || len > n - i) return kNotACodePoint;
    for (size_t k = 1; k < len; k++)
        if (!continues(lead, k, (unsigned char)s[i + k])) return kNotACodePoint;
    static const unsigned char lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = lead & lead_mask[len];
    for (size_t k = 1; k < len; k++) cp = cp << 6 | ((unsigned char)s[i + k] & 0x3F);
    *length = len;
    return cp;
}

std::string utf8_encode(uint32_t cp) {
    std::string out;
    if (cp < 0x80) out += (char)cp;
    else if (cp < 0x800) { out += (char)(0xC0 | cp >> 6); out += (char)(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) { out += (char)(0xE0 | cp >> 12); out += (char)(0x80 | (cp >> 6 & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
    else {
        out += (char)(0xF0 | cp >> 18);
        out += (char)(0x80 | (cp >> 12 & 0x3F));
        out += (char)(0x80 | (cp >> 6 & 0x3F));
        out += (char)(0x80 | (cp & 0x3F));
    }
    return out;
}

bool utf8_valid(const std::string& s) {
    for (size_t i = 0, len; i < s.size(); i += len)
        if (utf8_decode(s.data(), s.size(), i, &len) == kNotACodePoint) return false;
    return true;
}

// ---------------------------------------------------------------- streaming

static const char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

std::string Utf8Stream::push(const std::string& bytes) {
    std::string in = held_ + bytes, out;
    held_.clear();
    for (size_t i = 0; i < in.size();) {
        const unsigned char lead = (unsigned char)in[i];
        const size_t len = sequence_length(lead);
        if (len == 1) {
            if (lead >= 0x20 && lead != 0x7F) out += (char)lead;
            else if (lead == '\t' || lead == '\n' || lead == '\r' || lead == '\v' || lead == '\f') out += (char)lead;
            i++;
            continue;
        }
        // how much of a sequence is here, and whether it is valid so far
        size_t k = 1;
        while (len > 0 && k < len && i + k < in.size() && continues(lead, k, (unsigned char)in[i + k])) k++;
        if (len > 0 && k == len) { out.append(in, i, len); i += len; }
        else if (len > 0 && i + k == in.size()) { held_ = in.substr(i); break; }  // more may come
        else { out += kReplacement; i += len == 0 ? 1 : k; }                     // cannot be completed
    }
    return out;
}

std::string Utf8Stream::finish() {
    const bool partial = !held_.empty();
    held_.clear();
    return partial ? kReplacement : "";
}
