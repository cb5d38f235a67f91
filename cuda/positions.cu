// Positions on the device: the decode position counter and a prefill's positions
// (cuda/decode_kernels.h). A position read by a kernel from device memory, not passed as an
// argument, is what lets one captured decode step replay for every token.
#include "cuda/common.cuh"
#include "cuda/decode_kernels.h"

using namespace kvk;

namespace {

__global__ void set_counter_kernel(int* counter, int value) { *counter = value; }

__global__ void advance_counter_kernel(int* counter) { *counter += 1; }

__global__ void positions_from_counter_kernel(int* positions, const int* counter, int rows) {
    const int pos = *counter;
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += gridDim.x * blockDim.x) positions[r] = pos;
}

__global__ void prefill_positions_kernel(int* positions, size_t rows, int n, int p0) {
    for (size_t r = (size_t)blockIdx.x * blockDim.x + threadIdx.x; r < rows; r += (size_t)gridDim.x * blockDim.x)
        positions[r] = p0 + (int)(r % (size_t)n);
}

}  // namespace

void set_counter_gpu(int* counter, int value) {
    set_counter_kernel<<<1, 1, 0, launch_stream()>>>(counter, value);
    CUDA_CHECK_LAST();
}

void advance_counter_gpu(int* counter) {
    advance_counter_kernel<<<1, 1, 0, launch_stream()>>>(counter);
    CUDA_CHECK_LAST();
}

void positions_from_counter_gpu(int* positions, const int* counter, int rows) {
    if (rows < 0) bad_args("positions_from_counter: negative rows");
    if (rows == 0) return;
    positions_from_counter_kernel<<<stride_grid((size_t)rows, 256), 256, 0, launch_stream()>>>(positions, counter, rows);
    CUDA_CHECK_LAST();
}

void prefill_positions_gpu(int* positions, int batch, int n, int p0) {
    if (batch < 0 || n < 0 || p0 < 0) bad_args("prefill_positions: negative size");
    const size_t rows = (size_t)batch * n;
    if (rows == 0) return;
    prefill_positions_kernel<<<stride_grid(rows, 256), 256, 0, launch_stream()>>>(positions, rows, n, p0);
    CUDA_CHECK_LAST();
}
