// Is there a usable GPU? Asked once; every CUDA test and subcommand goes through here.
#include "cuda/check.h"
#include "src/backend.h"

bool cuda_available(std::string* why) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        if (why) *why = std::string("no CUDA GPU is available (") + (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") + ")";
        cudaGetLastError();  // clear the sticky error from the failed query
        return false;
    }
    return true;
}

bool cuda_memory_info(size_t* free_bytes, size_t* total_bytes) {
    if (!cuda_available(nullptr)) return false;
    CUDA_CHECK(cudaMemGetInfo(free_bytes, total_bytes));
    return true;
}
