#include "src/formats/safetensors.h"
#include <algorithm>
#include <cmath>
#include <cstring>

// ---------------------------------------------------------------- dtypes

struct DTypeInfo {
    DType type;
    const char* name;
    size_t bytes;
};

static const DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},   {DType::I8, "I8", 1},     {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4}, {DType::U32, "U32", 4}, {DType::F32, "F32", 4},
    {DType::I64, "I64", 8},   {DType::U64, "U64", 8}, {DType::F64, "F64", 8},
};

size_t dtype_bytes(DType t) {
    for (const DTypeInfo& d : kDTypes)
        if (d.type == t) return d.bytes;
    return 0;
}

const char* dtype_name(DType t) {
    for (const DTypeInfo& d : kDTypes)
        if (d.type == t) return d.name;
    return "?";
}

bool parse_dtype(const std::string& name, DType* out) {
    for (const DTypeInfo& d : kDTypes)
        if (name == d.name) { *out = d.type; return true; }
    return false;
}

// ---------------------------------------------------------------- half precision

float f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h >> 15) << 31, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    float magnitude;
    if (exponent == 0) magnitude = std::ldexp((float)mantissa, -24);  // zero and subnormals: m x 2^-24
    else if (exponent == 31) magnitude = mantissa ? NAN : INFINITY;
    else magnitude = std::ldexp((float)(mantissa | 0x400), (int)exponent - 25);  // 1.m x 2^(e - 15)
    uint32_t bits;
    std::memcpy(&bits, &magnitude, 4);
    bits |= sign;
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

float bf16_to_f32(uint16_t h) {
    const uint32_t bits = (uint32_t)h << 16;  // bf16 is the top half of an fp32
    float out;
    std::memcpy(&out, &bits, 4);
    return out;
}

uint16_t f32_to_bf16(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    if (std::isnan(x)) return (uint16_t)((bits >> 16) | 0x40);  // stays a (quiet) NaN
    const uint32_t round = 0x7FFF + ((bits >> 16) & 1);        // to nearest, ties to even
    return (uint16_t)((bits + round) >> 16);
}

// ---------------------------------------------------------------- reading

static const uint64_t kMaxHeader = 100u << 20;  // 100 MiB: a header is a few hundred KB at most

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile st;
    st.file_ = MappedFile::open(path);
    const MappedFile& f = *st.file_;
    auto bad = [&](const std::string& why) { fail("'" + path + "' is not a valid safetensors file: " + why); };
    if (!f.holds(0, 8)) bad("shorter than its 8-byte header length");
    const uint64_t header_len = f.read<uint64_t>(0);
    if (header_len > f.size() - 8) bad("its header length " + std::to_string(header_len) + " runs past the end of the file (" + std::to_string(f.size()) + " bytes)");
    if (header_len > kMaxHeader) bad("its header length " + std::to_string(header_len) + " is over 100 MiB");
    const size_t data_at = 8 + (size_t)header_len, data_bytes = f.size() - data_at;
    const Json header = parse_json((const char*)f.data() + 8, (size_t)header_len, "the header of '" + path + "'");
    if (!header.is(Json::Type::Object)) bad("its header is " + header.type_name() + ", not an object");

    for (const auto& [name, entry] : header.members) {
        const std::string what = "'" + path + "': tensor '" + name + "'";
        if (name == "__metadata__") {
            if (!entry.is(Json::Type::Object)) bad("__metadata__ is " + entry.type_name() + ", not an object");
            for (const auto& m : entry.members) m.second.as_string(what + " metadata '" + m.first + "'");
            continue;
        }
        if (!entry.is(Json::Type::Object)) fail(what + " is " + entry.type_name() + ", not an object");
        const Json* dtype = entry.find("dtype");
        const Json* shape = entry.find("shape");
        const Json* offsets = entry.find("data_offsets");
        if (!dtype || !shape || !offsets || entry.members.size() != 3) fail(what + " needs exactly dtype, shape and data_offsets");
        SafeTensor t;
        t.name = name;
        if (!parse_dtype(dtype->as_string(what + " dtype"), &t.dtype)) fail(what + " has an unknown dtype '" + dtype->text + "'");
        if (!shape->is(Json::Type::Array)) fail(what + " shape must be an array");
        t.count = 1;
        for (const Json& d : shape->items) {
            const uint64_t n = d.as_uint64(what + " shape");
            if (n > ((uint64_t)1 << 40) || (n && t.count > ((uint64_t)1 << 40) / n)) fail(what + " has an absurd shape");
            t.shape.push_back((int64_t)n);
            t.count *= (size_t)n;
        }
        if (!offsets->is(Json::Type::Array) || offsets->items.size() != 2) fail(what + " data_offsets must be [begin, end]");
        const uint64_t begin = offsets->items[0].as_uint64(what + " data_offsets"), end = offsets->items[1].as_uint64(what + " data_offsets");
        if (begin > end || end > data_bytes)
            fail(what + " has data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] outside the " +
                 std::to_string(data_bytes) + " bytes of data");
        if (end - begin != t.count * dtype_bytes(t.dtype))
            fail(what + " has " + std::to_string(end - begin) + " bytes of data, but its shape and dtype need " +
                 std::to_string(t.count * dtype_bytes(t.dtype)));
        t.offset = data_at + (size_t)begin;
        st.index_[name] = st.tensors_.size();
        st.tensors_.push_back(std::move(t));
    }
    // the tensors must tile the data: sorted by offset, each starts where the previous ended
    std::vector<const SafeTensor*> order;
    for (const SafeTensor& t : st.tensors_) order.push_back(&t);
    std::sort(order.begin(), order.end(), [](const SafeTensor* a, const SafeTensor* b) { return a->offset < b->offset; });
    size_t expect = data_at;
    for (const SafeTensor* t : order) {
        if (t->offset != expect)
            fail("'" + path + "': tensor '" + t->name + "' starts at data byte " + std::to_string(t->offset - data_at) + ", not " +
                 std::to_string(expect - data_at) + " (" + (t->offset < expect ? "it overlaps the tensor before it" : "a gap before it") + ")");
        expect = t->offset + t->count * dtype_bytes(t->dtype);
    }
    if (expect != f.size())
        bad(std::to_string(f.size() - expect) + " bytes after the last tensor belong to none");
    return st;
}

// Element i of a 16-bit little-endian array (x86 and ARM are little-endian, as the format is).
static uint16_t half_at(const uint8_t* src, size_t i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    return h;
}

const SafeTensor* SafetensorsFile::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

void SafetensorsFile::read_f32(const SafeTensor& t, float* out) const {
    const uint8_t* src = file_->data() + t.offset;
    switch (t.dtype) {
        case DType::F32: std::memcpy(out, src, t.count * sizeof(float)); return;
        case DType::F16:
#pragma omp parallel for schedule(static) if (t.count > (1 << 20))
            for (size_t i = 0; i < t.count; i++) out[i] = f16_to_f32(half_at(src, i));
            return;
        case DType::BF16:
#pragma omp parallel for schedule(static) if (t.count > (1 << 20))
            for (size_t i = 0; i < t.count; i++) out[i] = bf16_to_f32(half_at(src, i));
            return;
        default:
            fail("'" + path() + "': tensor '" + t.name + "' has dtype " + dtype_name(t.dtype) + "; kvshare reads F32, F16 and BF16");
    }
}

// ---------------------------------------------------------------- writing

void write_safetensors(OutputFile& out, const std::vector<TensorOut>& tensors, DType dtype, const Json& metadata) {
    if (dtype != DType::F32 && dtype != DType::BF16) fail("safetensors: kvshare writes F32 or BF16, not " + std::string(dtype_name(dtype)));
    Json header = Json::object();
    if (!metadata.members.empty()) header.set("__metadata__", metadata);
    size_t at = 0;
    for (const TensorOut& t : tensors) {
        size_t count = 1;
        Json shape = Json::array();
        for (int64_t d : t.shape) {
            shape.add(Json::of(d));
            count *= (size_t)d;
        }
        const size_t bytes = count * dtype_bytes(dtype);
        Json entry = Json::object();
        entry.set("dtype", Json::of(dtype_name(dtype)));
        entry.set("shape", shape);
        entry.set("data_offsets", Json::array().add(Json::of((int64_t)at)).add(Json::of((int64_t)(at + bytes))));
        header.set(t.name, entry);
        at += bytes;
    }
    std::string text = to_json(header, 0);
    text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-aligned
    const uint64_t len = text.size();
    out.write(&len, 8);
    out.write(text);
    std::vector<uint16_t> half;
    for (const TensorOut& t : tensors) {
        size_t count = 1;
        for (int64_t d : t.shape) count *= (size_t)d;
        if (dtype == DType::F32) {
            out.write(t.data, count * sizeof(float));
            continue;
        }
        const size_t chunk = 1 << 16;  // convert a piece at a time: no second copy of a large tensor
        for (size_t i = 0; i < count; i += chunk) {
            const size_t n = std::min(chunk, count - i);
            half.resize(n);
            for (size_t j = 0; j < n; j++) half[j] = f32_to_bf16(t.data[i + j]);
            out.write(half.data(), n * sizeof(uint16_t));
        }
    }
}
