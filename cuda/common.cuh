// Small device and host helpers shared by the kernel files (CUDA only; not for g++).
#pragma once
#include "cuda/check.h"
#include "cuda/launch.h"

bool cuda_sync_after_launch();  // the debug switch of cuda/check.h (cuda/kernels.h)
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace kvk {

// The kernels assume 32-lane warps (every NVIDIA GPU so far); shuffles use the full mask,
// so every lane of a warp must reach them.
constexpr int WARP = 32;
constexpr unsigned FULL_MASK = 0xffffffffu;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(FULL_MASK, v, off);
    return v;  // every lane holds the sum
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, off));
    return v;
}

// Merges two online-softmax states (running max m, sum s of exp(x - m)). An empty state
// is (-inf, 0); merging two empty states must not produce exp(-inf - -inf) = NaN.
__device__ __forceinline__ void softmax_merge(float& m, float& s, float m2, float s2) {
    const float mm = fmaxf(m, m2);
    if (mm == -INFINITY) return;
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
}

__device__ __forceinline__ void warp_softmax_merge(float& m, float& s) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) {
        const float m2 = __shfl_xor_sync(FULL_MASK, m, off);
        const float s2 = __shfl_xor_sync(FULL_MASK, s, off);
        softmax_merge(m, s, m2, s2);
    }
}

// The stream for one launch: the thread's launch stream (cuda/launch.h). Every launch
// passes it as <<<grid, block, smem, launch_stream()>>>, which also counts the launch.
inline cudaStream_t launch_stream() {
    count_runtime_call();
    return current_launch_stream();
}

// Whether `stream` is being captured into a graph: its work is recorded, not run.
inline bool stream_capturing(cudaStream_t stream) {
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
    return status != cudaStreamCaptureStatusNone;
}

// cudaMemcpyAsync, checked and counted as a runtime call (cuda/launch.h). With the debug
// switch of cuda/check.h the copy is waited for like a launch, so that a fault shows at the
// copy and not at some later wait.
inline void copy_async(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
    if (bytes == 0) return;
    count_runtime_call();
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
    if (cuda_sync_after_launch() && !stream_capturing(stream)) {
        const cudaError_t err = cudaStreamSynchronize(stream);
        if (err != cudaSuccess)
            cuda_failed(err, "cudaMemcpyAsync, found by waiting after the copy (KVSHARE_CUDA_SYNC)", __FILE__, __LINE__);
    }
}

inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// Multiprocessors of the current device: grid-stride kernels launch a few blocks per SM.
inline int num_sms() {
    static int cached_dev = -1, cached_n = 0;  // asked once per device, not per launch
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev != cached_dev) {
        CUDA_CHECK(cudaDeviceGetAttribute(&cached_n, cudaDevAttrMultiProcessorCount, dev));
        cached_dev = dev;
    }
    return cached_n;
}

// Grid for a grid-stride loop over `items`: enough blocks to fill the GPU, never zero.
inline int stride_grid(size_t items, int threads) {
    const size_t want = ceil_div(items, (size_t)threads);
    const size_t cap = (size_t)num_sms() * 16;
    return (int)(want < 1 ? 1 : want < cap ? want : cap);
}

// The most shared memory one block may have on the current device once a kernel opts in
// (227 KiB on an H100 or H200; without opting in, 48 KiB).
inline size_t max_block_smem() {
    static int cached_dev = -1, cached_bytes = 0;
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (dev != cached_dev) {
        CUDA_CHECK(cudaDeviceGetAttribute(&cached_bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        cached_dev = dev;
    }
    return (size_t)cached_bytes;
}

// Opts a kernel into more than the default 48 KiB of dynamic shared memory when it needs it.
inline void allow_dynamic_smem(const void* kernel, size_t bytes) {
    if (bytes <= 48 * 1024) return;
    const size_t optin = max_block_smem();
    if (bytes > optin)
        throw std::runtime_error("kernel needs " + std::to_string(bytes) + " bytes of shared memory; the GPU allows " +
                                 std::to_string(optin));
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

[[noreturn]] inline void bad_args(const std::string& what) { throw std::runtime_error(what); }

}  // namespace kvk
