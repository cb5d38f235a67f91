// cuda/bench_kernels.cu times the kernels against cuBLAS; the emulator has neither a GPU's
// timing nor cuBLAS, so `kvshare bench kernels` is not part of the emulated build.
#include "cuda/bench.h"
#include <cstdio>

int bench_kernels(int, char**) {
    std::fprintf(stderr, "kvshare bench kernels: not available in the CPU emulator build (no cuBLAS, no GPU timing)\n");
    return 1;
}
