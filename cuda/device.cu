// Is there a usable GPU? Asked once; every CUDA test and subcommand goes through here.
// Also the ceilings the benchmarks compare against: a copy for memory-bound work, the
// hand-written GEMM for compute-bound work.
#include "cuda/check.h"
#include "cuda/kernels.h"
#include "src/model/backend.h"
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

// ---- the debug switch and the error messages of cuda/check.h ----

namespace {
bool& sync_after_launch() {
    static bool on = [] {
        const char* e = std::getenv("KVSHARE_CUDA_SYNC");
        return e && *e && std::string(e) != "0";
    }();
    return on;
}

// The errors of a kernel that faulted: they show at the next wait for the GPU.
bool kernel_fault(cudaError_t err) {
    return err == cudaErrorIllegalAddress || err == cudaErrorLaunchFailure || err == cudaErrorAssert ||
           err == cudaErrorMisalignedAddress || err == cudaErrorIllegalInstruction || err == cudaErrorLaunchTimeout;
}

std::string describe(cudaError_t err) {
    return std::string(cudaGetErrorString(err)) + " (" + cudaGetErrorName(err) + ")";
}
}  // namespace

bool cuda_sync_after_launch() { return sync_after_launch(); }
void set_cuda_sync_after_launch(bool on) { sync_after_launch() = on; }

void kvk::cuda_failed(cudaError_t err, const char* call, const char* file, int line) {
    std::string msg = "CUDA error: " + describe(err) + " in " + call + " at " + file + ":" + std::to_string(line);
    if (kernel_fault(err) && !sync_after_launch())
        msg += "; a kernel's fault shows at the next wait for the GPU, and KVSHARE_CUDA_SYNC=1 names the kernel";
    throw std::runtime_error(msg);
}

// Whether the thread's launch stream is being captured into a graph (cuda/launch.h): its
// launches are recorded, not run, so there is nothing to wait for, and a capture may not
// wait; their faults show when the graph is launched (the GPU forward waits after it).
static bool launch_stream_capturing() {
    cudaStream_t s = current_launch_stream();
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    return s && cudaStreamIsCapturing(s, &status) == cudaSuccess && status != cudaStreamCaptureStatusNone;
}

void kvk::check_launch(const char* kernel, const char* file, int line, const char* function) {
    cudaError_t err = cudaGetLastError();
    const bool waited = err == cudaSuccess && sync_after_launch() && !launch_stream_capturing();
    if (waited) err = cudaDeviceSynchronize();
    if (err == cudaSuccess) return;
    const std::string name = *kernel ? std::string("kernel ") + kernel : std::string("the kernel");
    throw std::runtime_error("CUDA error: " + describe(err) + " in " + name + " launched at " + file + ":" +
                             std::to_string(line) + " (" + function + ")" +
                             (waited ? ", found by waiting after the launch (KVSHARE_CUDA_SYNC)" : ""));
}

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

namespace {
// Two device buffers, released on every exit (CUDA_CHECK throws).
struct Scratch {
    void* src = nullptr;
    void* dst = nullptr;
    ~Scratch() {
        cudaFree(src);
        cudaFree(dst);
    }
};

// Two events, released on every exit.
struct EventPair {
    cudaEvent_t start = nullptr, stop = nullptr;
    EventPair() {
        CUDA_CHECK(cudaEventCreate(&start));
        CUDA_CHECK(cudaEventCreate(&stop));
    }
    ~EventPair() {
        cudaEventDestroy(start);
        cudaEventDestroy(stop);
    }
};

// The median time in ms of `runs` calls of `work` after `warmup` untimed ones, each timed
// with events around it on the default stream.
template <class Work>
double median_event_ms(int runs, int warmup, Work work) {
    EventPair e;
    std::vector<float> ms;
    for (int i = 0; i < warmup + runs; i++) {
        CUDA_CHECK(cudaEventRecord(e.start));
        work();
        CUDA_CHECK(cudaEventRecord(e.stop));
        CUDA_CHECK(cudaEventSynchronize(e.stop));
        float t = 0;
        CUDA_CHECK(cudaEventElapsedTime(&t, e.start, e.stop));
        if (i >= warmup) ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}
}  // namespace

double cuda_copy_gbs(size_t bytes, int runs, int warmup, double* median_ms) {
    std::string why;
    if (!cuda_available(&why)) throw std::runtime_error("copy ceiling: " + why);
    if (bytes == 0 || runs < 1) throw std::runtime_error("copy ceiling: needs bytes > 0 and runs >= 1");
    Scratch s;
    CUDA_CHECK(cudaMalloc(&s.src, bytes));
    CUDA_CHECK(cudaMalloc(&s.dst, bytes));
    // both written once, so no first-touch cost lands in a timed copy (the contents do not matter)
    CUDA_CHECK(cudaMemset(s.src, 1, bytes));
    CUDA_CHECK(cudaMemset(s.dst, 0, bytes));
    const double med = median_event_ms(runs, warmup, [&] {
        CUDA_CHECK(cudaMemcpy(s.dst, s.src, bytes, cudaMemcpyDeviceToDevice));
    });
    if (median_ms) *median_ms = med;
    return 2.0 * (double)bytes / (med * 1e-3) / 1e9;
}

double cuda_gemm_gflops(int size, int runs, int warmup) {
    std::string why;
    if (!cuda_available(&why)) throw std::runtime_error("GEMM ceiling: " + why);
    if (size < 1 || runs < 1 || warmup < 0) throw std::runtime_error("GEMM ceiling: needs size >= 1 and runs >= 1");
    const size_t floats = (size_t)size * size;
    Scratch s;  // src holds x and w side by side, dst the output
    CUDA_CHECK(cudaMalloc(&s.src, 2 * floats * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&s.dst, floats * sizeof(float)));
    CUDA_CHECK(cudaMemset(s.src, 0x3c, 2 * floats * sizeof(float)));  // every float 0.0115: no NaN, no overflow
    const float* x = static_cast<const float*>(s.src);
    const float* w = x + floats;
    const double med = median_event_ms(runs, warmup, [&] { gemm(0, static_cast<float*>(s.dst), x, w, size, size, size); });
    return 2.0 * (double)floats * size / (med * 1e-3) / 1e9;
}
