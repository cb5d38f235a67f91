// Linked instead of cuda/ when the build found no nvcc.
#include "src/model/backend.h"
#include "src/util.h"

bool cuda_available(std::string* why) {
    if (why) *why = "this kvshare was built without CUDA (no nvcc found by make); rebuild on a machine with the CUDA toolkit";
    return false;
}

bool cuda_memory_info(size_t*, size_t*) { return false; }

double cuda_copy_gbs(size_t, int, int, double*) { fail("this kvshare was built without CUDA"); }
double cuda_gemm_gflops(int, int, int) { fail("this kvshare was built without CUDA"); }

std::unique_ptr<Backend> make_cuda_backend(const Model&, int, int, CudaDecodeOptions) {
    fail("this kvshare was built without CUDA");
}
