#include "src/formats/ggml_blocks.h"
#include "src/formats/safetensors.h"
#include <cstring>

// ---------------------------------------------------------------- types

static const GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "F32", 1, 4},     {GgmlType::F16, "F16", 1, 2},     {GgmlType::BF16, "BF16", 1, 2},
    {GgmlType::Q8_0, "Q8_0", 32, 34}, {GgmlType::Q4_0, "Q4_0", 32, 18}, {GgmlType::Q4_1, "Q4_1", 32, 20},
    {GgmlType::Q5_0, "Q5_0", 32, 22}, {GgmlType::Q5_1, "Q5_1", 32, 24}, {GgmlType::Q4_K, "Q4_K", 256, 144},
    {GgmlType::Q5_K, "Q5_K", 256, 176}, {GgmlType::Q6_K, "Q6_K", 256, 210},
};

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
    for (const GgmlTypeInfo& t : kTypes)
        if ((uint32_t)t.type == type) return &t;
    return nullptr;
}

std::string ggml_type_name(uint32_t type) {
    // every type number ggml has given out, so that an error names what the file holds
    static const char* const kNames[] = {
        "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2",   "Q4_3",  "Q5_0",   "Q5_1",  "Q8_0",   "Q8_1",    "Q2_K",
        "Q3_K",    "Q4_K",   "Q5_K",    "Q6_K",   "Q8_K",   "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S",
        "IQ2_S",   "IQ4_XS", "I8",      "I16",    "I32",    "I64",   "F64",    "IQ1_M", "BF16",   "Q4_0_4_4", "Q4_0_4_8",
        "Q4_0_8_8", "TQ1_0", "TQ2_0",   "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
    if (type < sizeof kNames / sizeof kNames[0]) return kNames[type];
    return "type " + std::to_string(type);
}

std::string ggml_supported_types() {
    std::string s;
    for (const GgmlTypeInfo& t : kTypes) s += (s.empty() ? "" : ", ") + std::string(t.name);
    return s;
}

// ---------------------------------------------------------------- blocks

static float f16_at(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return f16_to_f32(h);
}

void dequantize_q8_0(const uint8_t* block, float* out) {
    const float d = f16_at(block);
    const int8_t* q = (const int8_t*)(block + 2);
    for (int j = 0; j < 32; j++) out[j] = d * (float)q[j];
}

void dequantize_q4_0(const uint8_t* block, float* out) {
    const float d = f16_at(block);
    const uint8_t* qs = block + 2;
    for (int j = 0; j < 16; j++) {
        out[j] = d * (float)((qs[j] & 0xF) - 8);
        out[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

void dequantize_q4_1(const uint8_t* block, float* out) {
    const float d = f16_at(block), m = f16_at(block + 2);
    const uint8_t* qs = block + 4;
    for (int j = 0; j < 16; j++) {
        out[j] = d * (float)(qs[j] & 0xF) + m;
        out[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

// The 5-bit code of value j (0..31) of a Q5_0/Q5_1 block: its nibble, and bit j of qh.
static int q5_code(const uint8_t* qs, uint32_t qh, int j) {
    const int nibble = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return nibble | (int)((qh >> j) & 1) << 4;
}

void dequantize_q5_0(const uint8_t* block, float* out) {
    const float d = f16_at(block);
    uint32_t qh;
    std::memcpy(&qh, block + 2, 4);
    for (int j = 0; j < 32; j++) out[j] = d * (float)(q5_code(block + 6, qh, j) - 16);
}

void dequantize_q5_1(const uint8_t* block, float* out) {
    const float d = f16_at(block), m = f16_at(block + 2);
    uint32_t qh;
    std::memcpy(&qh, block + 4, 4);
    for (int j = 0; j < 32; j++) out[j] = d * (float)q5_code(block + 8, qh, j) + m;
}

// Sub-block s's 6-bit scale and minimum from the 12 packed bytes of a Q4_K/Q5_K block.
static void k_scale_min(const uint8_t* scales, int s, int* sc, int* m) {
    if (s < 4) {
        *sc = scales[s] & 63;
        *m = scales[s + 4] & 63;
    } else {
        *sc = (scales[s + 4] & 0xF) | (scales[s - 4] >> 6) << 4;
        *m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
    }
}

// Q4_K and Q5_K: qh is null for Q4_K.
static void dequantize_k4or5(const uint8_t* block, const uint8_t* qh, const uint8_t* qs, float* out) {
    const float d = f16_at(block), dmin = f16_at(block + 2);
    const uint8_t* scales = block + 4;
    for (int s = 0; s < 8; s++) {
        int sc, m;
        k_scale_min(scales, s, &sc, &m);
        const float scale = d * (float)sc, min = dmin * (float)m;
        const uint8_t* q = qs + 32 * (s / 2);  // sub-blocks 2i and 2i + 1 share 32 bytes
        for (int l = 0; l < 32; l++) {
            int code = s % 2 == 0 ? q[l] & 0xF : q[l] >> 4;
            if (qh) code |= ((qh[l] >> s) & 1) << 4;
            out[32 * s + l] = scale * (float)code - min;
        }
    }
}

void dequantize_q4_k(const uint8_t* block, float* out) { dequantize_k4or5(block, nullptr, block + 16, out); }

void dequantize_q5_k(const uint8_t* block, float* out) { dequantize_k4or5(block, block + 16, block + 48, out); }

void dequantize_q6_k(const uint8_t* block, float* out) {
    const uint8_t* ql_all = block;
    const uint8_t* qh_all = block + 128;
    const int8_t* sc = (const int8_t*)(block + 192);
    const float d = f16_at(block + 208);
    for (int half = 0; half < 2; half++) {
        const uint8_t* ql = ql_all + 64 * half;
        const uint8_t* qh = qh_all + 32 * half;
        float* y = out + 128 * half;
        for (int g = 0; g < 4; g++) {  // group g: values 32g .. 32g + 31 of this half
            for (int l = 0; l < 32; l++) {
                const uint8_t low = ql[l + 32 * (g % 2)];
                const int code = (g < 2 ? low & 0xF : low >> 4) | ((qh[l] >> (2 * g)) & 3) << 4;
                const int s = 8 * half + (32 * g + l) / 16;
                y[32 * g + l] = d * (float)sc[s] * (float)(code - 32);
            }
        }
    }
}

// ---------------------------------------------------------------- rows

void dequantize(GgmlType type, const uint8_t* src, size_t n, float* out) {
    switch (type) {
    case GgmlType::F32: std::memcpy(out, src, n * 4); return;
    case GgmlType::F16:
        for (size_t i = 0; i < n; i++) out[i] = f16_at(src + 2 * i);
        return;
    case GgmlType::BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            std::memcpy(&h, src + 2 * i, 2);
            out[i] = bf16_to_f32(h);
        }
        return;
    default: break;
    }
    void (*block_fn)(const uint8_t*, float*) = nullptr;
    switch (type) {
    case GgmlType::Q8_0: block_fn = dequantize_q8_0; break;
    case GgmlType::Q4_0: block_fn = dequantize_q4_0; break;
    case GgmlType::Q4_1: block_fn = dequantize_q4_1; break;
    case GgmlType::Q5_0: block_fn = dequantize_q5_0; break;
    case GgmlType::Q5_1: block_fn = dequantize_q5_1; break;
    case GgmlType::Q4_K: block_fn = dequantize_q4_k; break;
    case GgmlType::Q5_K: block_fn = dequantize_q5_k; break;
    case GgmlType::Q6_K: block_fn = dequantize_q6_k; break;
    default: fail("internal: dequantize called for " + ggml_type_name((uint32_t)type));
    }
    const GgmlTypeInfo* info = ggml_type_info((uint32_t)type);
    const size_t blocks = n / info->values;
    for (size_t b = 0; b < blocks; b++) block_fn(src + b * info->bytes, out + b * info->values);
}
