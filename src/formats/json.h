// A small JSON reader and writer of the project's own (RFC 8259), for Hugging Face's
// config.json, the safetensors header and the shard index. Strict: one value, nothing after
// it; strings of valid UTF-8 without raw control characters; numbers by the grammar and
// finite; duplicate keys rejected (a silent pick of one would be a silent wrong answer);
// nesting deeper than 64 rejected (no stack to exhaust). Errors name the line and column.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

struct Json {
    enum class Type { Null, Bool, Number, String, Array, Object };
    Type type = Type::Null;
    bool boolean = false;
    double number = 0;
    std::string text;  // String: the decoded UTF-8; Number: as written, so integers read exactly
    std::vector<Json> items;                            // Array
    std::vector<std::pair<std::string, Json>> members;  // Object, in the order written

    static Json null() { return Json(); }
    static Json of(bool b);
    static Json of(int64_t n);
    static Json of(int n) { return of((int64_t)n); }
    static Json of(double x);  // written with the fewest digits that give back the same float
    static Json of(const std::string& s);
    static Json of(const char* s) { return of(std::string(s)); }
    static Json array();
    static Json object();
    Json& add(Json item);                          // to an array
    Json& set(const std::string& key, Json value); // to an object: replaces, or appends a new key

    bool is(Type t) const { return type == t; }
    const Json* find(const std::string& key) const;  // an object's member, or nullptr
    std::string type_name() const;

    // Typed access; `what` names the value in the error ("config.json: hidden_size").
    bool as_bool(const std::string& what) const;
    double as_number(const std::string& what) const;
    int64_t as_int(const std::string& what) const;     // an integer written without . or e
    uint64_t as_uint64(const std::string& what) const; // the same, >= 0, up to 2^64 - 1
    const std::string& as_string(const std::string& what) const;
};

// Parses the whole text; `source` names it in errors ("'model/config.json'").
Json parse_json(const std::string& text, const std::string& source);
Json parse_json(const char* text, size_t length, const std::string& source);

// JSON text: with indent > 0, one member or item per line (as Hugging Face writes configs);
// with 0, on one line without spaces (safetensors headers).
std::string to_json(const Json& v, int indent = 2);
