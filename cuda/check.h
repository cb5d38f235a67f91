// CUDA_CHECK every runtime call; CUDA_CHECK_LAST() after every launch.
//
// A launch returns at once. A bad configuration shows at once, in cudaGetLastError, but a
// fault inside the kernel (an illegal address, a trap) shows only at the next call that
// waits for the GPU: often far away, after other launches, in a place that says nothing
// about which kernel it was. The debug switch KVSHARE_CUDA_SYNC=1 (the environment) makes
// CUDA_CHECK_LAST() also wait for the GPU after every launch, so that the error names the
// launch that faulted. It costs a round trip per launch: for finding a fault, and for the
// tests, which turn it on (tests/main.cpp). A launch into a CUDA graph being captured is
// not waited for (a capture may not wait, and nothing has run): the GPU forward waits
// after launching the graph instead, with the switch on.
//
// CUDA_CHECK_LAST() names the launch by file, line and function; CUDA_CHECK_LAST("kernel")
// adds the kernel's name.
#pragma once
#include <cuda_runtime.h>
#include <stdexcept>
#include <string>

#define CUDA_CHECK(call)                                                          \
    do {                                                                          \
        cudaError_t err_ = (call);                                                \
        if (err_ != cudaSuccess) kvk::cuda_failed(err_, #call, __FILE__, __LINE__); \
    } while (0)

#define CUDA_CHECK_LAST(...) kvk::check_launch("" __VA_ARGS__, __FILE__, __LINE__, __func__)

namespace kvk {
// Throws std::runtime_error: "CUDA error: <what the runtime says> (call) at file:line",
// with a hint to turn on KVSHARE_CUDA_SYNC when the error is a kernel's fault found later.
[[noreturn]] void cuda_failed(cudaError_t err, const char* call, const char* file, int line);
// After a launch: its configuration error, or with the switch on any fault of the kernel.
void check_launch(const char* kernel, const char* file, int line, const char* function);
}  // namespace kvk
