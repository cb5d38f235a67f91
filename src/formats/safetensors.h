// safetensors (Hugging Face's tensor file): an 8-byte little-endian header length N, N bytes
// of JSON, then the data. The header maps each tensor name to its dtype, shape and
// data_offsets [begin, end) into the data (which starts right after the header), plus an
// optional "__metadata__" object of strings.
//
// Reading maps the file and checks the whole header against it before any tensor is used:
// N inside the file, every dtype known, every shape's byte count equal to its offsets, the
// tensors tiling the data exactly (no overlap, no gap, nothing past the end), as the format
// requires. Tensors are then converted to fp32 straight from the mapping, once.
#pragma once
#include "src/formats/json.h"
#include "src/formats/mapped_file.h"
#include "src/util.h"
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

// The element types of the format; kvshare computes with F32, F16 and BF16 (converted to fp32).
enum class DType { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };
size_t dtype_bytes(DType t);
const char* dtype_name(DType t);
bool parse_dtype(const std::string& name, DType* out);  // false for a name the format lacks

struct SafeTensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    size_t offset = 0;  // of its first byte, from the start of the file
    size_t count = 0;   // elements: the product of shape
};

class SafetensorsFile {
public:
    // Maps and checks PATH; one clear error naming the file and the fault.
    static SafetensorsFile open(const std::string& path);

    const std::string& path() const { return file_->path(); }
    const std::vector<SafeTensor>& tensors() const { return tensors_; }
    const SafeTensor* find(const std::string& name) const;
    // Converts a tensor of dtype F32, F16 or BF16 into count fp32 values at out.
    void read_f32(const SafeTensor& t, float* out) const;
    // After read_f32: the tensor's pages are not needed again (MappedFile::release).
    void release(const SafeTensor& t) const { file_->release(t.offset, t.count * dtype_bytes(t.dtype)); }

private:
    std::shared_ptr<MappedFile> file_;
    std::vector<SafeTensor> tensors_;
    std::map<std::string, size_t> index_;  // name -> position in tensors_
};

// Half-precision conversions: exact to fp32; from fp32 to bf16 rounds to nearest, ties to even.
float f16_to_f32(uint16_t h);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float x);

// One tensor for write_safetensors: fp32 values, written as F32 or BF16.
struct TensorOut {
    std::string name;
    std::vector<int64_t> shape;
    const float* data;
};
// Writes the tensors in the order given, each as dtype (F32 or BF16), with the header padded
// to a multiple of 8 bytes so the data is aligned; metadata is a JSON object of strings.
void write_safetensors(OutputFile& out, const std::vector<TensorOut>& tensors, DType dtype, const Json& metadata);
