// Strided copies (cuda/strided.h, cuda/decode_kernels.h): grid-stride loops over the
// elements, every index a size_t, so that no pitch or offset has a 2^31 limit.
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"

using namespace kvk;

namespace {

__global__ void strided_copy_kernel(float* __restrict__ dst, const float* __restrict__ src, StridedRows r) {
    const size_t count = r.count();
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (size_t)gridDim.x * blockDim.x)
        dst[r.dst(e)] = src[r.src(e)];
}

__global__ void strided_fill_kernel(float* dst, float value, StridedRows r) {
    const size_t count = r.count();
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (size_t)gridDim.x * blockDim.x)
        dst[r.dst(e)] = value;
}

// Row b of rows (batch, kv_dim) to slot position (b, counter[0]). A counter at or past the
// context (the host checks the position, but a host and device that disagree must not
// corrupt the next sequence's row) writes nothing.
__global__ void store_at_counter_kernel(float* __restrict__ slot, const float* __restrict__ rows, const int* counter,
                                        int batch, int context, int kv_dim) {
    const int at = *counter;
    if (at < 0 || at >= context) return;
    const size_t pos = (size_t)at, count = (size_t)batch * kv_dim;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (size_t)gridDim.x * blockDim.x) {
        const size_t b = e / kv_dim, i = e % kv_dim;
        slot[(b * context + pos) * kv_dim + i] = rows[e];
    }
}

}  // namespace

void strided_copy_gpu(float* dst, const float* src, const StridedRows& r) {
    if (r.count() == 0) return;
    if (r.width > r.src_pitch || r.width > r.dst_pitch) bad_args("strided copy: rows overlap (width above a pitch)");
    strided_copy_kernel<<<stride_grid(r.count(), 256), 256, 0, launch_stream()>>>(dst, src, r);
    CUDA_CHECK_LAST();
}

void strided_fill_gpu(float* dst, float value, const StridedRows& r) {
    if (r.count() == 0) return;
    if (r.width > r.dst_pitch) bad_args("strided fill: rows overlap (width above the pitch)");
    strided_fill_kernel<<<stride_grid(r.count(), 256), 256, 0, launch_stream()>>>(dst, value, r);
    CUDA_CHECK_LAST();
}

void store_kv_at_counter_gpu(float* slot, const float* rows, const int* counter, int batch, int context, int kv_dim) {
    if (batch < 0 || context < 0 || kv_dim < 0) bad_args("store_kv_at_counter: negative size");
    const size_t count = (size_t)batch * kv_dim;
    if (count == 0) return;
    store_at_counter_kernel<<<stride_grid(count, 256), 256, 0, launch_stream()>>>(slot, rows, counter, batch, context, kv_dim);
    CUDA_CHECK_LAST();
}
