// GGUF, llama.cpp's model file (walkthrough chapter 10). Little-endian, in this order:
//
//   "GGUF"  uint32 version (2 or 3; they differ only in what a big-endian writer may do)
//   uint64 tensor_count, uint64 metadata_count
//   metadata_count x { string key, uint32 value_type, value }
//   tensor_count   x { string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml_type, uint64 offset }
//   padding to general.alignment (default 32), then the tensor data: each tensor at
//   data_start + offset, offset a multiple of the alignment
//
// A string is uint64 length + bytes (no NUL). A value is one of 13 types: u8 i8 u16 i16 u32
// i32 f32 bool string array u64 i64 f64; an array is uint32 element type, uint64 count,
// then the elements (arrays of arrays are allowed). A tensor's ne[0] is its fastest-varying
// dimension: a (rows, cols) matrix has ne = {cols, rows}.
//
// GgufFile::open maps the file and walks all of it before anything is allocated by the
// file's say-so: every count, length, dimension and offset is checked against the bytes that
// are left, so a hostile count fails as "truncated" instead of allocating; tensors must
// have a type kvshare converts (src/formats/ggml_blocks.h), lie inside the data section,
// aligned, and not overlap. Metadata values are not copied: a GgufValue says where its
// bytes are, and the accessors read them on demand.
#pragma once
#include "src/formats/ggml_blocks.h"
#include "src/formats/mapped_file.h"
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

enum class GgufValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

// Where one metadata value lies in the mapped file.
struct GgufValue {
    GgufValueType type = GgufValueType::U8;
    size_t offset = 0;  // of the value's bytes; for an array, of its first element
    size_t bytes = 0;   // for an array, of all its elements
    GgufValueType item_type = GgufValueType::U8;  // an array's element type
    uint64_t count = 0;                           // an array's element count
};

struct GgufTensor {
    std::string name;
    std::vector<uint64_t> ne;  // ne[0] fastest
    GgmlType type = GgmlType::F32;
    size_t offset = 0;  // of its first byte, from the start of the file
    size_t bytes = 0;
    size_t elements = 0;
};

class GgufFile {
public:
    // Maps and checks PATH; one clear error naming the file and the fault.
    static GgufFile open(const std::string& path);
    // The same for a file already mapped (load_model's, which looked at its magic).
    static GgufFile parse(const std::shared_ptr<MappedFile>& file);

    const std::string& path() const { return file_->path(); }
    const MappedFile& file() const { return *file_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    size_t data_start() const { return data_start_; }

    // Keys in file order, and one value by key (nullptr when absent).
    const std::vector<std::string>& keys() const { return keys_; }
    const GgufValue* find(const std::string& key) const;
    const std::vector<GgufTensor>& tensors() const { return tensors_; }
    const GgufTensor* find_tensor(const std::string& name) const;

    // Typed reads of a value; an error names the key and what it holds instead.
    // Integers accept any integer type whose value fits; floats accept F32 and F64.
    std::string get_string(const std::string& key, const GgufValue& v) const;
    uint64_t get_uint(const std::string& key, const GgufValue& v, uint64_t max) const;
    double get_float(const std::string& key, const GgufValue& v) const;
    bool get_bool(const std::string& key, const GgufValue& v) const;
    // Arrays of one element type: strings, F32, and any integer type fitting an int32.
    std::vector<std::string> get_strings(const std::string& key, const GgufValue& v) const;
    std::vector<float> get_floats(const std::string& key, const GgufValue& v) const;
    std::vector<int> get_ints(const std::string& key, const GgufValue& v) const;

    // A tensor's values as fp32 into out (t.elements floats), then its pages are released.
    void read_f32(const GgufTensor& t, float* out) const;

private:
    std::shared_ptr<MappedFile> file_;
    uint32_t version_ = 0;
    size_t alignment_ = 32, data_start_ = 0;
    std::vector<std::string> keys_;
    std::map<std::string, GgufValue> values_;
    std::vector<GgufTensor> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

// "GGUF": the first four bytes of a GGUF file.
bool is_gguf_magic(const char magic[4]);

// For `kvshare info`: "GGUF v3, 272 tensors: 210 Q4_1, 61 F32, 1 Q8_0".
std::string gguf_summary(const GgufFile& g);
