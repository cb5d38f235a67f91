// Copies between row-strided arrays, described by plain size_t arithmetic that the host, the
// kernels and the tests share. The GPU forward used cudaMemcpy2D for these (the K/V store,
// the column of a token-by-token prefill, the last position of each sequence), but its
// pitches stop at 2^31 - 1 bytes: a cache slot's sequences are context x kv_dim x 4 bytes
// apart, 2 GiB at kv_dim 4096 and context 128K, and a column of the logits is n x vocab x 4
// bytes from the next, over the limit from n = 16778 at vocab 32000. A kernel walking
// StridedRows has no such limit; tests/test_strided.cpp checks the arithmetic at those sizes.
//
// No CUDA types: the launch functions are declared in cuda/decode_kernels.h.
#pragma once
#include "src/model/kv_cache.h"
#include <cstddef>

#if defined(__CUDACC__)
#define KVS_HOST_DEVICE __host__ __device__
#else
#define KVS_HOST_DEVICE
#endif

// `rows` rows of `width` floats: row r starts at src_offset + r * src_pitch in the source
// and at dst_offset + r * dst_pitch in the destination (all counted in floats). Element e
// of the copy, 0 <= e < count(), is column e % width of row e / width.
struct StridedRows {
    size_t rows = 0, width = 0;
    size_t src_offset = 0, src_pitch = 0;
    size_t dst_offset = 0, dst_pitch = 0;

    KVS_HOST_DEVICE size_t count() const { return rows * width; }
    KVS_HOST_DEVICE size_t src(size_t e) const { return src_offset + (e / width) * src_pitch + e % width; }
    KVS_HOST_DEVICE size_t dst(size_t e) const { return dst_offset + (e / width) * dst_pitch + e % width; }
    // One past the last float read or written: what the arrays must hold.
    size_t src_span() const { return count() == 0 ? 0 : src(count() - 1) + 1; }
    size_t dst_span() const { return count() == 0 ? 0 : dst(count() - 1) + 1; }
};

// A KV layer's new rows (batch, n, kv_dim) into its slot of the cache (kv_slot, batch,
// context, kv_dim) at positions p0 .. p0 + n - 1 of every sequence. With the destination
// side only, the same rows are what a cyclic block clears before its first iteration.
inline StridedRows kv_store_rows(const KVLayout& kv, int slot, int n, int p0) {
    StridedRows r;
    r.rows = (size_t)kv.batch;
    r.width = (size_t)n * kv.kv_dim;
    r.src_pitch = r.width;
    r.dst_offset = kv.offset(slot, 0, p0);
    r.dst_pitch = (size_t)kv.context * kv.kv_dim;
    return r;
}

// A (batch, width) result into column t of a (batch, n, width) array: token-by-token
// prefill keeping every position gathers its logits and hidden states this way.
inline StridedRows column_rows(int batch, int n, int t, int width) {
    StridedRows r;
    r.rows = (size_t)batch;
    r.width = (size_t)width;
    r.src_pitch = r.width;
    r.dst_offset = (size_t)t * width;
    r.dst_pitch = (size_t)n * width;
    return r;
}

// The last position of each sequence of (batch, n, width) into (batch, width).
inline StridedRows last_position_rows(int batch, int n, int width) {
    StridedRows r;
    r.rows = (size_t)batch;
    r.width = (size_t)width;
    r.src_offset = (size_t)(n - 1) * width;
    r.src_pitch = (size_t)n * width;
    r.dst_pitch = r.width;
    return r;
}
