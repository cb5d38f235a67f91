// What the CUDA runtime says about each GPU of this machine: the first stage of
// `make gpu-report` (bench/gpu-report.sh), which builds it with nvcc. Its own small program,
// so that it runs even when kvshare's build fails. One "key: value" line per fact.
#include <cuda_runtime.h>
#include <cstdio>

static int attribute(cudaDeviceAttr what, int dev) {
    int v = 0;
    return cudaDeviceGetAttribute(&v, what, dev) == cudaSuccess ? v : -1;
}

int main() {
    int n = 0, runtime = 0, driver = 0;
    const cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess || n == 0) {
        std::printf("no CUDA GPU: %s\n", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 1;
    }
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    std::printf("cuda runtime: %d.%d\ncuda driver api: %d.%d\ndevices: %d\n", runtime / 1000, runtime % 1000 / 10,
                driver / 1000, driver % 1000 / 10, n);
    for (int d = 0; d < n; d++) {
        cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
            std::printf("device %d: cudaGetDeviceProperties failed\n", d);
            return 1;
        }
        std::printf("device %d: %s\n", d, p.name);
        std::printf("  compute capability: %d.%d\n", p.major, p.minor);
        std::printf("  multiprocessors: %d\n", p.multiProcessorCount);
        std::printf("  memory: %.1f GiB, bus %d bits\n", p.totalGlobalMem / 1073741824.0, p.memoryBusWidth);
        std::printf("  sm clock (max): %d MHz\n", attribute(cudaDevAttrClockRate, d) / 1000);
        std::printf("  memory clock (max): %d MHz\n", attribute(cudaDevAttrMemoryClockRate, d) / 1000);
        std::printf("  shared memory per block: %zu B, opt-in %zu B\n", p.sharedMemPerBlock, p.sharedMemPerBlockOptin);
        std::printf("  L2 cache: %d B\n", p.l2CacheSize);
    }
    return 0;
}
