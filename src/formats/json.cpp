#include "src/formats/json.h"
#include "src/util.h"
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_set>

// ---------------------------------------------------------------- reading

namespace {

const int kMaxDepth = 64;

struct Parser {
    const char* s;
    size_t n, pos = 0;
    const std::string& source;

    [[noreturn]] void error(const std::string& why) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < pos && i < n; i++) {
            if (s[i] == '\n') { line++; col = 1; }
            else col++;
        }
        fail(source + " is not valid JSON: " + why + " at line " + std::to_string(line) + ", column " + std::to_string(col));
    }
    bool at_end() const { return pos >= n; }
    char peek() const { return at_end() ? '\0' : s[pos]; }
    void skip_space() {
        while (!at_end() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\n' || s[pos] == '\r')) pos++;
    }
    void expect(char c) {
        if (peek() != c || at_end()) error(std::string("expected '") + c + "'");
        pos++;
    }
    void literal(const char* word) {
        for (const char* w = word; *w; w++, pos++)
            if (at_end() || s[pos] != *w) error("unknown word (expected " + std::string(word) + ")");
    }

    Json value(int depth) {
        if (depth >= kMaxDepth) error("nesting deeper than " + std::to_string(kMaxDepth));
        skip_space();
        if (at_end()) error("unexpected end of text");
        Json v;
        switch (s[pos]) {
            case '{': object(v, depth); break;
            case '[': array(v, depth); break;
            case '"': v.type = Json::Type::String; v.text = string(); break;
            case 't': literal("true"); v.type = Json::Type::Bool; v.boolean = true; break;
            case 'f': literal("false"); v.type = Json::Type::Bool; break;
            case 'n': literal("null"); break;
            default: number(v);
        }
        return v;
    }

    void object(Json& v, int depth) {
        v.type = Json::Type::Object;
        pos++;  // '{'
        skip_space();
        if (peek() == '}' && !at_end()) { pos++; return; }
        std::unordered_set<std::string> keys;  // a vocabulary's 100k keys: no quadratic search for duplicates
        for (;;) {
            skip_space();
            if (peek() != '"' || at_end()) error("expected a key in quotes");
            const size_t key_at = pos;
            std::string key = string();
            if (!keys.insert(key).second) { pos = key_at; error("duplicate key \"" + key + "\""); }
            skip_space();
            expect(':');
            v.members.emplace_back(std::move(key), value(depth + 1));
            skip_space();
            if (peek() == ',' && !at_end()) { pos++; continue; }
            expect('}');
            return;
        }
    }

    void array(Json& v, int depth) {
        v.type = Json::Type::Array;
        pos++;  // '['
        skip_space();
        if (peek() == ']' && !at_end()) { pos++; return; }
        for (;;) {
            v.items.push_back(value(depth + 1));
            skip_space();
            if (peek() == ',' && !at_end()) { pos++; continue; }
            expect(']');
            return;
        }
    }

    unsigned hex4() {
        unsigned u = 0;
        for (int i = 0; i < 4; i++, pos++) {
            const char c = peek();
            if (at_end() || !std::isxdigit((unsigned char)c)) error("bad \\u escape");
            u = u * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
        }
        return u;
    }

    static void put_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) out += (char)cp;
        else if (cp < 0x800) { out += (char)(0xC0 | cp >> 6); out += (char)(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) { out += (char)(0xE0 | cp >> 12); out += (char)(0x80 | (cp >> 6 & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
        else { out += (char)(0xF0 | cp >> 18); out += (char)(0x80 | (cp >> 12 & 0x3F)); out += (char)(0x80 | (cp >> 6 & 0x3F)); out += (char)(0x80 | (cp & 0x3F)); }
    }

    // Bytes in the valid UTF-8 character at pos (no overlongs, no surrogates, <= U+10FFFF), or 0.
    size_t utf8_length() const {
        const unsigned char c = (unsigned char)s[pos];
        size_t len = c < 0x80 ? 1 : c >= 0xC2 && c < 0xE0 ? 2 : c >= 0xE0 && c < 0xF0 ? 3 : c >= 0xF0 && c < 0xF5 ? 4 : 0;
        if (len == 0 || pos + len > n) return 0;
        for (size_t i = 1; i < len; i++)
            if (((unsigned char)s[pos + i] & 0xC0) != 0x80) return 0;
        const unsigned char d = (unsigned char)s[pos + 1];
        if ((c == 0xE0 && d < 0xA0) || (c == 0xED && d >= 0xA0) || (c == 0xF0 && d < 0x90) || (c == 0xF4 && d >= 0x90)) return 0;
        return len;
    }

    std::string string() {
        pos++;  // opening quote
        std::string out;
        for (;;) {
            if (at_end()) error("unterminated string");
            const unsigned char c = (unsigned char)s[pos];
            if (c == '"') { pos++; return out; }
            if (c < 0x20) error("raw control character in a string");
            if (c != '\\') {
                const size_t len = utf8_length();
                if (len == 0) error("invalid UTF-8 in a string");
                out.append(s + pos, len);
                pos += len;
                continue;
            }
            pos++;
            const char e = peek();
            if (at_end()) error("unterminated string");
            pos++;
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xDC00 && cp < 0xE000) error("lone low surrogate in \\u escape");
                    if (cp >= 0xD800 && cp < 0xDC00) {  // a high surrogate: its low half must follow
                        if (peek() != '\\' || pos + 1 >= n || s[pos + 1] != 'u') error("lone high surrogate in \\u escape");
                        pos += 2;
                        const unsigned lo = hex4();
                        if (lo < 0xDC00 || lo >= 0xE000) error("bad surrogate pair in \\u escape");
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    put_utf8(out, cp);
                    break;
                }
                default: pos--; error("bad escape in a string");
            }
        }
    }

    void number(Json& v) {
        const size_t start = pos;
        auto digits = [&] {
            const size_t from = pos;
            while (!at_end() && s[pos] >= '0' && s[pos] <= '9') pos++;
            return pos - from;
        };
        if (peek() == '-') pos++;
        if (peek() == '0' && !at_end()) pos++;
        else if (digits() == 0) { pos = start; error("unexpected character"); }
        if (peek() == '.' && !at_end()) {
            pos++;
            if (digits() == 0) error("a number needs digits after '.'");
        }
        if ((peek() == 'e' || peek() == 'E') && !at_end()) {
            pos++;
            if (peek() == '+' || peek() == '-') pos++;
            if (digits() == 0) error("a number needs digits in its exponent");
        }
        v.type = Json::Type::Number;
        v.text.assign(s + start, pos - start);
        v.number = std::strtod(v.text.c_str(), nullptr);
        if (!std::isfinite(v.number)) { pos = start; error("number " + v.text + " is out of range"); }
    }
};

}  // namespace

Json parse_json(const char* text, size_t length, const std::string& source) {
    Parser p{text, length, 0, source};
    Json v = p.value(0);
    p.skip_space();
    if (!p.at_end()) p.error("text after the JSON value");
    return v;
}

Json parse_json(const std::string& text, const std::string& source) { return parse_json(text.data(), text.size(), source); }

// ---------------------------------------------------------------- access

const Json* Json::find(const std::string& key) const {
    for (const auto& m : members)
        if (m.first == key) return &m.second;
    return nullptr;
}

std::string Json::type_name() const {
    switch (type) {
        case Type::Null: return "null";
        case Type::Bool: return "a boolean";
        case Type::Number: return "a number";
        case Type::String: return "a string";
        case Type::Array: return "an array";
        case Type::Object: return "an object";
    }
    return "?";
}

bool Json::as_bool(const std::string& what) const {
    if (type != Type::Bool) fail(what + " must be true or false, not " + type_name());
    return boolean;
}

double Json::as_number(const std::string& what) const {
    if (type != Type::Number) fail(what + " must be a number, not " + type_name());
    return number;
}

static bool integer_text(const std::string& t) { return t.find_first_of(".eE") == std::string::npos; }

int64_t Json::as_int(const std::string& what) const {
    if (type != Type::Number || !integer_text(text)) fail(what + " must be an integer, not " + (type == Type::Number ? text : type_name()));
    errno = 0;
    const long long v = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(what + " " + text + " is out of range");
    return v;
}

uint64_t Json::as_uint64(const std::string& what) const {
    if (type != Type::Number || !integer_text(text) || text[0] == '-')
        fail(what + " must be a non-negative integer, not " + (type == Type::Number ? text : type_name()));
    errno = 0;
    const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(what + " " + text + " is out of range");
    return v;
}

const std::string& Json::as_string(const std::string& what) const {
    if (type != Type::String) fail(what + " must be a string, not " + type_name());
    return text;
}

// ---------------------------------------------------------------- building and writing

Json Json::of(bool b) {
    Json v;
    v.type = Type::Bool;
    v.boolean = b;
    return v;
}

Json Json::of(int64_t n) {
    Json v;
    v.type = Type::Number;
    v.number = (double)n;
    v.text = std::to_string(n);
    return v;
}

Json Json::of(double x) {
    if (!std::isfinite(x)) fail("JSON has no number for " + std::to_string(x));
    Json v;
    v.type = Type::Number;
    v.number = x;
    // whole numbers as 10000.0; others with the fewest digits that read back as the same
    // float (1e-05, not 9.99999975e-06)
    char buf[40];
    if (x == std::floor(x) && std::fabs(x) < 1e15) {
        std::snprintf(buf, sizeof buf, "%.1f", x);
    } else {
        for (int digits = 1; digits <= 17; digits++) {
            std::snprintf(buf, sizeof buf, "%.*g", digits, x);
            if ((float)std::strtod(buf, nullptr) == (float)x) break;
        }
    }
    v.text = buf;
    return v;
}

Json Json::of(const std::string& s) {
    Json v;
    v.type = Type::String;
    v.text = s;
    return v;
}

Json Json::array() {
    Json v;
    v.type = Type::Array;
    return v;
}

Json Json::object() {
    Json v;
    v.type = Type::Object;
    return v;
}

Json& Json::add(Json item) {
    items.push_back(std::move(item));
    return *this;
}

Json& Json::set(const std::string& key, Json value) {
    for (auto& m : members)
        if (m.first == key) { m.second = std::move(value); return *this; }
    members.emplace_back(key, std::move(value));
    return *this;
}

static void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : s) {
        if (c == '"') out += "\\\"";
        else if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else out += (char)c;
    }
    out += '"';
}

static void write_value(std::string& out, const Json& v, int indent, int depth) {
    const std::string pad = indent ? "\n" + std::string((size_t)indent * (depth + 1), ' ') : "";
    const std::string close = indent ? "\n" + std::string((size_t)indent * depth, ' ') : "";
    switch (v.type) {
        case Json::Type::Null: out += "null"; break;
        case Json::Type::Bool: out += v.boolean ? "true" : "false"; break;
        case Json::Type::Number: out += v.text; break;
        case Json::Type::String: write_string(out, v.text); break;
        case Json::Type::Array:
            out += '[';
            for (size_t i = 0; i < v.items.size(); i++) {
                if (i) out += indent ? ", " : ",";
                write_value(out, v.items[i], 0, 0);  // arrays on one line: [2048, 32000]
            }
            out += ']';
            break;
        case Json::Type::Object:
            out += '{';
            for (size_t i = 0; i < v.members.size(); i++) {
                out += (i ? "," : "") + pad;
                write_string(out, v.members[i].first);
                out += indent ? ": " : ":";
                write_value(out, v.members[i].second, indent, depth + 1);
            }
            out += v.members.empty() ? "" : close;
            out += '}';
            break;
    }
}

std::string to_json(const Json& v, int indent) {
    std::string out;
    write_value(out, v, indent, 0);
    if (indent) out += '\n';
    return out;
}
