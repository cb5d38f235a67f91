// ggml's tensor element types (the "type" of a GGUF tensor) and their conversion to fp32.
//
// A quantized type stores a row in blocks: QK values share one or two half-precision
// numbers (a scale d, for some a minimum m) and keep a few bits each. Row length (ne0, the
// number of columns) is a multiple of the block size. Layouts, one block, little-endian:
//
//   Q8_0  32 values, 34 bytes:  d f16, q int8[32]                  x = d * q
//   Q4_0  32 values, 18 bytes:  d f16, qs[16]                      x = d * (q - 8)
//   Q4_1  32 values, 20 bytes:  d f16, m f16, qs[16]               x = d * q + m
//   Q5_0  32 values, 22 bytes:  d f16, qh[4], qs[16]               x = d * (q - 16)
//   Q5_1  32 values, 24 bytes:  d f16, m f16, qh[4], qs[16]        x = d * q + m
//     qs[j] holds value j in its low nibble and value j + 16 in its high nibble; for the
//     5-bit types bit j of qh (read as a little-endian uint32) is value j's fifth bit.
//
//   "K-quants": 256 values in 8 sub-blocks of 32 (Q4_K, Q5_K) or 16 of 16 (Q6_K), each
//   sub-block with its own small integer scale (and minimum) times the block's d (dmin):
//   Q4_K  144 bytes: d f16, dmin f16, scales[12], qs[128]           x = d*sc_s * q - dmin*m_s
//   Q5_K  176 bytes: d f16, dmin f16, scales[12], qh[32], qs[128]   (q has a fifth bit)
//   Q6_K  210 bytes: ql[128], qh[64], sc int8[16], d f16            x = d*sc_s * (q - 32)
//     Q4_K/Q5_K: 64 values at a time from 32 bytes of qs: low nibbles are sub-block 2i,
//     high nibbles sub-block 2i + 1. Their 8 six-bit scales and mins are packed in 12 bytes:
//       s < 4:  sc = scales[s] & 63,   m = scales[s + 4] & 63
//       s >= 4: sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4
//               m  = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4
//     Q5_K: the fifth bit of value l of sub-block s is bit s of qh[l].
//     Q6_K: two halves of 128 values; in each, value l (0..31) of the four groups of 32
//     takes the low nibble of ql[l], of ql[l + 32], the high nibble of ql[l], of ql[l + 32],
//     and bits 0-1, 2-3, 4-5, 6-7 of qh[l] as its top two bits; sub-block s = value / 16.
//
// Every product is formed as ggml forms it, (d * sc) * q, so the fp32 results are the ones
// llama.cpp and the gguf Python package compute, bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

enum class GgmlType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8,
    Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};

// The types kvshare converts, with their block: `values` per block stored in `bytes`.
struct GgmlTypeInfo {
    GgmlType type;
    const char* name;
    size_t values, bytes;
};

// The info of a type kvshare reads, or nullptr (for another type, known or not).
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// A type's name as ggml spells it ("Q4_K", "IQ2_XXS"), or "type N" for an unknown number.
std::string ggml_type_name(uint32_t type);
// "F32, F16, BF16, Q8_0, ...": the types kvshare reads, for messages.
std::string ggml_supported_types();

// One block each: out gets the block's 32 (or 256) values.
void dequantize_q8_0(const uint8_t* block, float* out);
void dequantize_q4_0(const uint8_t* block, float* out);
void dequantize_q4_1(const uint8_t* block, float* out);
void dequantize_q5_0(const uint8_t* block, float* out);
void dequantize_q5_1(const uint8_t* block, float* out);
void dequantize_q4_k(const uint8_t* block, float* out);
void dequantize_q5_k(const uint8_t* block, float* out);
void dequantize_q6_k(const uint8_t* block, float* out);

// n values of a supported type at src (n a multiple of its block's values) into out, on the
// calling thread (a loader converts several tensors at once).
void dequantize(GgmlType type, const uint8_t* src, size_t n, float* out);
