#include "src/formats/gguf.h"
#include "src/util.h"
#include <algorithm>
#include <cstring>

static const char kMagic[4] = {'G', 'G', 'U', 'F'};
static const int kMaxArrayDepth = 16;  // arrays of arrays of ...: far more than any writer nests

bool is_gguf_magic(const char magic[4]) { return std::memcmp(magic, kMagic, 4) == 0; }

const char* gguf_value_type_name(GgufValueType t) {
    static const char* const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
    return (uint32_t)t < 13 ? kNames[(uint32_t)t] : "an unknown type";
}

// Bytes of a fixed-size value type; 0 for string and array, whose size is in the file.
static size_t fixed_size(GgufValueType t) {
    switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    default: return 0;
    }
}

// ---------------------------------------------------------------- the walk

namespace {

// A read position in the file; every read checks that its bytes are there first.
struct Cursor {
    const MappedFile& f;
    size_t at = 0;

    [[noreturn]] void bad(const std::string& why) const { fail("'" + f.path() + "' is not a valid GGUF file: " + why); }
    size_t left() const { return f.size() - at; }
    void need(size_t bytes, const std::string& what) const {
        if (!f.holds(at, bytes))
            bad("truncated in " + what + " (needs " + std::to_string(bytes) + " bytes at byte " + std::to_string(at) + ", the file has " +
                std::to_string(f.size()) + ")");
    }
    template <class T> T take(const std::string& what) {
        need(sizeof(T), what);
        const T v = f.read<T>(at);
        at += sizeof(T);
        return v;
    }
    // A string's length, checked against the bytes left, then its bytes skipped.
    size_t skip_string(const std::string& what) {
        if (!f.holds(at, 8)) need(8, what + "'s length");  // the message only when it is needed: arrays hold 10^5 strings
        const uint64_t len = f.read<uint64_t>(at);
        at += 8;
        if (len > left())
            bad(what + " claims a string of " + std::to_string(len) + " bytes, more than the " + std::to_string(left()) +
                " bytes left (truncated or corrupt)");
        at += (size_t)len;
        return (size_t)len;
    }
    std::string take_string(const std::string& what) {
        const size_t len = skip_string(what);
        return std::string((const char*)f.data() + at - len, len);
    }
    GgufValueType take_type(const std::string& what) {
        const uint32_t t = take<uint32_t>(what + "'s type");
        if (t > 12) bad(what + " has value type " + std::to_string(t) + " (GGUF's are 0..12)");
        return (GgufValueType)t;
    }
};

// Skips one value of type t at the cursor, nested arrays included.
void skip_value(Cursor& c, GgufValueType t, int depth, const std::string& what) {
    if (const size_t size = fixed_size(t)) {
        c.need(size, what);
        c.at += size;
    } else if (t == GgufValueType::STRING) {
        c.skip_string(what);
    } else {  // array
        if (depth >= kMaxArrayDepth) c.bad(what + " nests arrays more than " + std::to_string(kMaxArrayDepth) + " deep");
        const GgufValueType item = c.take_type(what + "'s elements");
        const uint64_t count = c.take<uint64_t>(what + "'s element count");
        // the least each element takes: its fixed size, a string's length, an array's type and count
        const size_t least = fixed_size(item) ? fixed_size(item) : item == GgufValueType::STRING ? 8 : 12;
        if (count > c.left() / least)
            c.bad(what + " claims " + std::to_string(count) + " elements of " + gguf_value_type_name(item) + ", more than the " +
                  std::to_string(c.left()) + " bytes left hold (truncated or corrupt)");
        if (fixed_size(item)) c.at += (size_t)count * least;
        else
            for (uint64_t i = 0; i < count; i++) skip_value(c, item, depth + 1, what);
    }
}

size_t align_up(size_t at, size_t alignment) { return (at + alignment - 1) / alignment * alignment; }

}  // namespace

GgufFile GgufFile::open(const std::string& path) { return parse(MappedFile::open(path)); }

GgufFile GgufFile::parse(const std::shared_ptr<MappedFile>& file) {
    GgufFile g;
    g.file_ = file;
    Cursor c{*file};
    const std::string& path = file->path();
    c.need(4, "its magic");
    if (!is_gguf_magic((const char*)file->data())) c.bad("it does not start with \"GGUF\"");
    c.at = 4;
    g.version_ = c.take<uint32_t>("its version");
    if (g.version_ == 0x02000000 || g.version_ == 0x03000000)
        fail("'" + path + "' is a big-endian GGUF file; kvshare reads little-endian ones (llama.cpp's usual)");
    if (g.version_ == 1) fail("'" + path + "' is GGUF version 1 (a format of 2023 with 32-bit counts); kvshare reads versions 2 and 3");
    if (g.version_ != 2 && g.version_ != 3)
        fail("'" + path + "' is GGUF version " + std::to_string(g.version_) + "; kvshare reads versions 2 and 3");
    const uint64_t n_tensors = c.take<uint64_t>("its tensor count");
    const uint64_t n_values = c.take<uint64_t>("its metadata count");
    if (n_values > c.left() / 13)  // key length 8, type 4, a value of at least 1 byte
        c.bad("it claims " + std::to_string(n_values) + " metadata entries, more than the " + std::to_string(c.left()) +
              " bytes after its header hold (truncated or corrupt)");

    // ---- metadata
    for (uint64_t i = 0; i < n_values; i++) {
        const std::string key = c.take_string("metadata entry " + std::to_string(i) + "'s key");
        const std::string what = "metadata '" + printable(key) + "'";
        if (g.values_.count(key)) c.bad("the key '" + printable(key) + "' appears twice");
        GgufValue v;
        v.type = c.take_type(what);
        v.offset = c.at;
        skip_value(c, v.type, 0, what);
        v.bytes = c.at - v.offset;
        if (v.type == GgufValueType::ARRAY) {  // point at the elements
            v.item_type = (GgufValueType)file->read<uint32_t>(v.offset);
            v.count = file->read<uint64_t>(v.offset + 4);
            v.offset += 12;
            v.bytes -= 12;
        }
        g.keys_.push_back(key);
        g.values_[key] = v;
    }
    if (const GgufValue* a = g.find("general.alignment")) {
        if (a->type != GgufValueType::U32) c.bad("general.alignment is a " + std::string(gguf_value_type_name(a->type)) + ", not a u32");
        const uint32_t alignment = file->read<uint32_t>(a->offset);
        if (alignment == 0 || (alignment & (alignment - 1)) != 0)
            c.bad("general.alignment " + std::to_string(alignment) + " is not a power of two");
        g.alignment_ = alignment;
    }

    // ---- tensor infos: at least 32 bytes each (name length, one dimension, type, offset)
    if (n_tensors > c.left() / 32)
        c.bad("it claims " + std::to_string(n_tensors) + " tensors, more than the " + std::to_string(c.left()) +
              " bytes after its metadata hold (truncated or corrupt)");
    for (uint64_t i = 0; i < n_tensors; i++) {
        GgufTensor t;
        t.name = c.take_string("tensor " + std::to_string(i) + "'s name");
        const std::string what = "tensor '" + printable(t.name) + "'";
        if (g.tensor_index_.count(t.name)) c.bad("two tensors are called '" + printable(t.name) + "'");
        const uint32_t n_dims = c.take<uint32_t>(what + "'s dimension count");
        if (n_dims < 1 || n_dims > 4) c.bad(what + " has " + std::to_string(n_dims) + " dimensions (ggml's tensors have 1..4)");
        size_t elements = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            const uint64_t ne = c.take<uint64_t>(what + "'s dimensions");
            if (ne == 0 || ne > file->size() * 8 || elements > SIZE_MAX / ne)  // 8 values a byte: more than any type packs
                c.bad(what + " has dimension " + std::to_string(ne) + ", which no tensor in a file of " + std::to_string(file->size()) +
                      " bytes can have");
            t.ne.push_back(ne);
            elements *= (size_t)ne;
        }
        const uint32_t type = c.take<uint32_t>(what + "'s type");
        const GgmlTypeInfo* info = ggml_type_info(type);
        if (!info) fail("'" + path + "': " + what + " has type " + ggml_type_name(type) + "; kvshare reads " + ggml_supported_types());
        t.type = info->type;
        if (t.ne[0] % info->values != 0)
            c.bad(what + " is " + info->name + " with rows of " + std::to_string(t.ne[0]) + " values, not a multiple of its " +
                  std::to_string(info->values) + "-value blocks");
        if (elements / info->values > file->size() / info->bytes)
            c.bad(what + " has " + std::to_string(elements) + " values, more than the file's " + std::to_string(file->size()) +
                  " bytes hold as " + info->name);
        t.elements = elements;
        t.bytes = elements / info->values * info->bytes;
        const uint64_t offset = c.take<uint64_t>(what + "'s offset");
        if (offset % g.alignment_ != 0)
            c.bad(what + " starts at offset " + std::to_string(offset) + ", not a multiple of the alignment " + std::to_string(g.alignment_));
        if (offset > file->size())
            c.bad(what + " starts at offset " + std::to_string(offset) + ", past the end of the file (truncated or corrupt)");
        t.offset = (size_t)offset;  // from the data section's start until it is known
        g.tensor_index_[t.name] = g.tensors_.size();
        g.tensors_.push_back(t);
    }

    // ---- the data section: every tensor inside it, none overlapping another
    g.data_start_ = align_up(c.at, g.alignment_);
    const size_t data_bytes = g.data_start_ <= file->size() ? file->size() - g.data_start_ : 0;
    if (n_tensors > 0 && g.data_start_ > file->size())
        c.bad("truncated before its tensor data (which starts at byte " + std::to_string(g.data_start_) + ")");
    std::vector<const GgufTensor*> by_offset;
    for (GgufTensor& t : g.tensors_) {
        if (t.offset > data_bytes || t.bytes > data_bytes - t.offset)
            c.bad("tensor '" + printable(t.name) + "' (" + std::to_string(t.bytes) + " bytes at offset " + std::to_string(t.offset) +
                  ") ends past the end of the file (truncated?)");
        t.offset += g.data_start_;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(), [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); i++)
        if (by_offset[i - 1]->offset + by_offset[i - 1]->bytes > by_offset[i]->offset)
            c.bad("tensors '" + printable(by_offset[i - 1]->name) + "' and '" + printable(by_offset[i]->name) + "' overlap");
    return g;
}

const GgufValue* GgufFile::find(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? nullptr : &it->second;
}

const GgufTensor* GgufFile::find_tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

// ---------------------------------------------------------------- typed reads

[[noreturn]] static void wrong_type(const GgufFile& g, const std::string& key, const GgufValue& v, const std::string& wanted) {
    std::string held = gguf_value_type_name(v.type);
    if (v.type == GgufValueType::ARRAY) held = std::string("an array of ") + gguf_value_type_name(v.item_type);
    fail("'" + g.path() + "': " + key + " holds " + held + ", not " + wanted);
}

// An integer of type t at offset, widened; false for a type that is not an integer.
static bool read_integer(const MappedFile& f, GgufValueType t, size_t at, int64_t* s, uint64_t* u, bool* negative) {
    *negative = false;
    switch (t) {
    case GgufValueType::U8: *u = f.read<uint8_t>(at); return true;
    case GgufValueType::U16: *u = f.read<uint16_t>(at); return true;
    case GgufValueType::U32: *u = f.read<uint32_t>(at); return true;
    case GgufValueType::U64: *u = f.read<uint64_t>(at); return true;
    case GgufValueType::I8: *s = f.read<int8_t>(at); break;
    case GgufValueType::I16: *s = f.read<int16_t>(at); break;
    case GgufValueType::I32: *s = f.read<int32_t>(at); break;
    case GgufValueType::I64: *s = f.read<int64_t>(at); break;
    default: return false;
    }
    *negative = *s < 0;
    *u = (uint64_t)*s;
    return true;
}

std::string GgufFile::get_string(const std::string& key, const GgufValue& v) const {
    if (v.type != GgufValueType::STRING) wrong_type(*this, key, v, "a string");
    return std::string((const char*)file_->data() + v.offset + 8, v.bytes - 8);
}

uint64_t GgufFile::get_uint(const std::string& key, const GgufValue& v, uint64_t max) const {
    int64_t s = 0;
    uint64_t u = 0;
    bool negative = false;
    if (!read_integer(*file_, v.type, v.offset, &s, &u, &negative)) wrong_type(*this, key, v, "an integer");
    if (negative) fail("'" + path() + "': " + key + " is " + std::to_string(s) + "; it must not be negative");
    if (u > max) fail("'" + path() + "': " + key + " is " + std::to_string(u) + ", more than kvshare accepts (" + std::to_string(max) + ")");
    return u;
}

double GgufFile::get_float(const std::string& key, const GgufValue& v) const {
    if (v.type == GgufValueType::F32) return file_->read<float>(v.offset);
    if (v.type == GgufValueType::F64) return file_->read<double>(v.offset);
    wrong_type(*this, key, v, "a float");
}

bool GgufFile::get_bool(const std::string& key, const GgufValue& v) const {
    if (v.type != GgufValueType::BOOL) wrong_type(*this, key, v, "a bool");
    const uint8_t b = file_->read<uint8_t>(v.offset);
    if (b > 1) fail("'" + path() + "': " + key + " is a bool of value " + std::to_string(b) + ", not 0 or 1");
    return b == 1;
}

std::vector<std::string> GgufFile::get_strings(const std::string& key, const GgufValue& v) const {
    if (v.type != GgufValueType::ARRAY || v.item_type != GgufValueType::STRING) wrong_type(*this, key, v, "an array of strings");
    std::vector<std::string> out;
    out.reserve((size_t)v.count);  // open() checked: count x 8 bytes lie in the file
    size_t at = v.offset;
    for (uint64_t i = 0; i < v.count; i++) {
        const size_t len = (size_t)file_->read<uint64_t>(at);
        out.emplace_back((const char*)file_->data() + at + 8, len);
        at += 8 + len;
    }
    return out;
}

std::vector<float> GgufFile::get_floats(const std::string& key, const GgufValue& v) const {
    const bool f32 = v.item_type == GgufValueType::F32, f64 = v.item_type == GgufValueType::F64;
    if (v.type != GgufValueType::ARRAY || !(f32 || f64)) wrong_type(*this, key, v, "an array of floats");
    std::vector<float> out((size_t)v.count);
    for (size_t i = 0; i < out.size(); i++)
        out[i] = f32 ? file_->read<float>(v.offset + 4 * i) : (float)file_->read<double>(v.offset + 8 * i);
    return out;
}

std::vector<int> GgufFile::get_ints(const std::string& key, const GgufValue& v) const {
    const size_t size = fixed_size(v.item_type);
    if (v.type != GgufValueType::ARRAY || size == 0 || v.item_type == GgufValueType::F32 || v.item_type == GgufValueType::F64 ||
        v.item_type == GgufValueType::BOOL)
        wrong_type(*this, key, v, "an array of integers");
    std::vector<int> out((size_t)v.count);
    for (size_t i = 0; i < out.size(); i++) {
        int64_t s = 0;
        uint64_t u = 0;
        bool negative = false;
        read_integer(*file_, v.item_type, v.offset + size * i, &s, &u, &negative);
        if (negative ? s < INT32_MIN : u > (uint64_t)INT32_MAX)
            fail("'" + path() + "': " + key + "[" + std::to_string(i) + "] is out of the range of an int32");
        out[i] = negative ? (int)s : (int)u;
    }
    return out;
}

void GgufFile::read_f32(const GgufTensor& t, float* out) const {
    dequantize(t.type, file_->data() + t.offset, t.elements, out);
    file_->release(t.offset, t.bytes);
}

std::string gguf_summary(const GgufFile& g) {
    std::map<std::string, int> counts;
    for (const GgufTensor& t : g.tensors()) counts[ggml_type_name((uint32_t)t.type)]++;
    std::vector<std::pair<int, std::string>> order;
    for (const auto& c : counts) order.push_back({-c.second, c.first});
    std::sort(order.begin(), order.end());
    std::string s = "GGUF v" + std::to_string(g.version()) + ", " + std::to_string(g.tensors().size()) + " tensors";
    for (size_t i = 0; i < order.size(); i++) s += (i ? ", " : ": ") + std::to_string(-order[i].first) + " " + order[i].second;
    return s;
}
