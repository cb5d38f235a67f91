// CUDA on the CPU, for the tests only: the part of the CUDA runtime API and of the device
// built-ins that cuda/*.cu use, so that g++ compiles the real kernels and the [cuda] tests
// run them on a machine without a GPU (`make test-emulated`, `make test-emulated-asan`).
//
// How: rewrite.pl turns each cuda/*.cu into C++ (a launch `k<<<grid, block>>>(args)` becomes
// `kvs_emu::launch(k, ...)(args)`, `extern __shared__` arrays point at the launch's dynamic
// shared memory); this header supplies the rest and runtime.cpp runs the launches.
//
// What it models:
//   - Launches run at once, one block after another; the threads of a block are fibers on
//     one OS thread. A thread runs until it reaches __syncthreads or a warp shuffle, then the
//     next one runs. __syncthreads waits for every thread of the block; a shuffle waits for
//     every lane of the warp. A barrier that can never complete (threads exited, or waiting
//     at another barrier) aborts with a message naming the kernel: a hang or worse on a GPU.
//   - KVS_EMU_ORDER=forward|reverse|random (KVS_EMU_SEED=n) picks the order in which threads
//     run between barriers, and blocks: a missing __syncthreads shows as a wrong result in
//     some order.
//   - Memory from cudaMalloc, shared arrays and dynamic shared memory start as 0xFF bytes
//     (NaN as floats), shared memory again for every block, so unwritten data shows.
//   - Global memory is malloc and shared arrays are function statics or malloc, so
//     AddressSanitizer (the -asan build) reports out-of-bounds accesses like a memcheck.
//   - The runtime's launch checks: block and grid shape (cudaErrorInvalidConfiguration),
//     dynamic shared memory over the kernel's limit (cudaErrorInvalidValue); more threads
//     than __launch_bounds__ or too much static + dynamic shared memory abort.
//   - Copies and memsets must stay inside one device allocation (cudaErrorInvalidValue).
//   - __trap() ends the launch, and like a kernel's fault on a GPU it shows only at the next
//     call that waits for the device (cudaDeviceSynchronize, cudaStreamSynchronize,
//     cudaEventSynchronize, cudaMemcpy, cudaMemcpy2D) as cudaErrorLaunchFailure. Once: a GPU
//     loses its context and fails every later call too, but the tests go on here.
//   - cp.async (cuda/async_copy.cuh): a copy may land any time between its issue and the
//     thread's wait for its group (cp.async.wait_group). In forward order each lands at the
//     wait, the latest moment, so a buffer read before the wait sees its old contents; in
//     reverse order at the issue, the earliest, so a buffer refilled while other threads
//     still read it (a missing barrier) changes under them; in random order either, per copy.
//     Misaligned copies, a source outside every device allocation or a destination outside
//     shared memory abort.
//   - Streams that run side by side. Work issued to a stream (launches, async copies and
//     memsets, event records, a graph's nodes) is queued, not run, and runs only when the host
//     waits for something (cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize, a
//     synchronous copy or memset, cudaFree, cudaFreeHost, work on the legacy default stream,
//     which waits for every blocking stream). Then the streams with queued work take turns, one
//     block of a kernel or one whole copy, memset or event at a time, until what the host waits
//     for is done: two kernels on two streams interleave block by block, so two launches that
//     share memory without ordering (a race between streams) show as wrong results, and a host
//     that reads a result before waiting for it reads what was there before. An event recorded
//     on a stream completes when the stream reaches it, and waiting for it runs only the work
//     before it. The legacy default stream runs its work at once, after every blocking stream.
//     An async copy with pageable host memory waits for its stream, then copies at once (the
//     runtime stages it; the host may reuse the memory when the call returns).
//   - CUDA graphs made by stream capture: between cudaStreamBeginCapture and
//     cudaStreamEndCapture, launches, async copies and memsets on the capturing stream are
//     recorded, not queued (a kernel's arguments are copied then, as a graph node copies them),
//     and so are event records made with cudaEventRecordExternal (a plain cudaEventRecord in a
//     capture, which a GPU turns into a dependency and not a node, is not emulated); a
//     cudaGraphLaunch queues the recorded work in order. Work on the legacy default stream
//     while a capture is active, and the calls a capture forbids (cudaMalloc, cudaFree, the
//     synchronous copies and memsets, cudaDeviceSynchronize, cudaStreamSynchronize, ...),
//     fail and invalidate the capture, as on a GPU. Pinned host memory (cudaMallocHost) is
//     tracked; a captured copy's host side must be pinned (stricter than some drivers), and
//     must still be when the graph runs: a replay into freed pinned memory is a fault
//     (cudaErrorIllegalAddress at the next wait), where a GPU writes memory that is gone.
//   - A thread that ends with cp.async copies it never waited for aborts (the copies land in
//     shared memory that the next block may already use).
// What it does NOT model:
//   - Warp-synchronous execution: lanes run one after another, not in lockstep, between
//     shuffles (code relying on implicit lockstep without __syncwarp is not emulated).
//   - The memory model: races show only through the order of whole barrier intervals;
//     atomics are plain read-modify-writes (threads never switch inside one), fences do
//     nothing, no caches (__ldg and __ldcg are plain loads), no bank conflicts.
//   - Concurrency between the blocks of one kernel (they run one after another) and inside a
//     copy; no timing. The interleaving of streams is one order of many (round robin, or
//     random with KVS_EMU_ORDER=random), so a race between streams shows in some orders only.
//   - GPU float rounding: expf, sincosf, ... are glibc's, fused multiply-adds happen
//     where g++ chooses, not where nvcc would.
//   - Device limits beyond those above (registers, occupancy, grid.x range of old GPUs).
#pragma once
#define KVS_EMU 1  // for code that must tell the emulator from a GPU (a test that traps)
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

// ---- qualifiers ------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)  // rewrite.pl turns it into a check at the kernel's entry
#define __align__(n) __attribute__((aligned(n)))
// Blocks run one at a time on one OS thread, so a function static is the block's shared
// memory (rewrite.pl adds the call that refills it with 0xFF bytes for every block).
#define __shared__ static

// ---- built-in types and variables ------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// Set by the scheduler before it switches to a thread (references: read-only to kernels).
extern const uint3& threadIdx;
extern const uint3& blockIdx;
extern const dim3& blockDim;
extern const dim3& gridDim;
constexpr int warpSize = 32;

// ---- device math: glibc's (<cmath> provides expf, fmaxf, sqrtf, sincosf, powf, ...) ------
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
// CUDA's integer and float min/max overloads in the global namespace.
#define KVS_EMU_MINMAX(T)                       \
    inline T min(T a, T b) { return b < a ? b : a; } \
    inline T max(T a, T b) { return a < b ? b : a; }
KVS_EMU_MINMAX(int)
KVS_EMU_MINMAX(unsigned)
KVS_EMU_MINMAX(long)
KVS_EMU_MINMAX(unsigned long)
KVS_EMU_MINMAX(long long)
KVS_EMU_MINMAX(unsigned long long)
KVS_EMU_MINMAX(float)
KVS_EMU_MINMAX(double)
#undef KVS_EMU_MINMAX

template <class T>
inline T __ldg(const T* p) {
    return *p;
}
template <class T>
inline T __ldcg(const T* p) {  // a load that skips L1: no caches here
    return *p;
}
// Threads switch only at barriers and shuffles, so a read-modify-write is atomic as it is;
// and memory is the host's, so a fence has nothing to order.
template <class T>
inline T atomicAdd(T* p, T v) {
    const T old = *p;
    *p = old + v;
    return old;
}
inline void __threadfence() {}

// ---- the emulator's side of the built-ins and of launches (runtime.cpp) ------------------
struct CUstream_st;
typedef CUstream_st* cudaStream_t;

namespace kvs_emu {

// Waits until every thread of the block is here.
void sync_threads(const char* file, int line);

enum class Shuffle { Index, Xor, Up, Down };
// Posts this lane's 8 bytes and waits for every lane of the warp; returns the source lane's.
uint64_t shuffle(Shuffle kind, const char* file, int line, unsigned mask, uint64_t value, int arg, int width);

template <class T>
T shuffle_as(Shuffle kind, const char* file, int line, unsigned mask, T v, int arg, int width = warpSize) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffles move 4 or 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    bits = shuffle(kind, file, line, mask, bits, arg, width);
    std::memcpy(&v, &bits, sizeof v);
    return v;
}

// __syncwarp(): waits until every lane of the warp is here (a shuffle that moves nothing).
void sync_warp(const char* file, int line, unsigned mask);

// cp.async (cuda/async_copy.cuh): a copy of `bytes` (4, 8 or 16) from global to shared memory,
// or zeros when !valid, landing at the latest or earliest moment a GPU may (see the top).
void async_copy(void* dst, const void* src, int bytes, bool valid);
void async_commit();           // closes the open group
void async_wait(int pending);  // completes all but the newest `pending` committed groups

// A __shared__ array: filled with 0xFF bytes when the first thread of a block reaches it.
void block_shared(void* array, size_t bytes);
// The current launch's dynamic shared memory (extern __shared__), 0xFF bytes per block.
void* dynamic_shared_memory();
// __launch_bounds__(max_threads, min_blocks): the launch fails on a GPU above max_threads.
void launch_bounds(int max_threads, int min_blocks = 0);
// __trap(): the launch ends here; its fault waits for the next call that waits for the device.
[[noreturn]] void trap(const char* file, int line);

struct LaunchConfig {
    const void* kernel;  // the function, as cudaFuncSetAttribute sees it
    const char* name;    // as written at the launch, e.g. "gemv_kernel<NB, true>"
    const char* file;
    int line;
    dim3 grid, block;
    size_t dynamic_smem;
    cudaStream_t stream;
};
// Work issued to a stream (see the top): queued, or recorded when the stream is capturing (the
// function then keeps copies of everything it needs, as a graph node does); on the legacy
// default stream run at once, after every blocking stream's work. False, with the error
// recorded for cudaGetLastError, when the stream may not take work now.
bool issue(cudaStream_t stream, const char* what, std::function<void()> work);
// A launch, issued like the above; it runs block by block, taking turns with other streams.
// thread_body(args) runs every thread. The configuration was checked by check_launch.
bool issue_kernel(const LaunchConfig& config, void (*thread_body)(const void*), std::shared_ptr<const void> args);
// The runtime's checks of a launch's shape: false, with the error recorded, when it fails.
bool check_launch(const LaunchConfig& config);
// Kernels that have run to their end so far: what a test reads to see how much work a host
// wait made the device finish.
size_t kernels_finished();
// The kernels run to their end since the last call, each once, named as at their launch
// ("gemv_kernel<NB, true>"): what a test reads to see which kernels some work launches.
std::vector<std::string> kernel_names_since();

template <class... P>
class Launch {
public:
    Launch(void (*kernel)(P...), const LaunchConfig& config) : kernel_(kernel), config_(config) {}
    void operator()(P... args) const {
        if (!check_launch(config_)) return;  // like the runtime: only cudaGetLastError tells
        // the arguments are copied here, at the launch, whether it is queued or captured
        issue_kernel(config_, &Launch::body, std::make_shared<const Call>(Call{kernel_, std::tuple<P...>(args...)}));
    }

private:
    struct Call {
        void (*kernel)(P...);
        std::tuple<P...> args;
    };
    // Every thread gets its own copy of the arguments, as on a GPU.
    static void body(const void* p) {
        const Call* call = static_cast<const Call*>(p);
        std::apply(call->kernel, call->args);
    }
    void (*kernel_)(P...);
    LaunchConfig config_;
};

// `kernel<<<grid, block, smem, stream>>>(args)` is rewritten to
// `kvs_emu::launch(kernel, "kernel", __FILE__, __LINE__, grid, block, smem, stream)(args)`.
template <class... P>
Launch<P...> launch(void (*kernel)(P...), const char* name, const char* file, int line, dim3 grid, dim3 block,
                    size_t dynamic_smem = 0, cudaStream_t stream = nullptr) {
    return Launch<P...>(kernel,
                        LaunchConfig{reinterpret_cast<const void*>(kernel), name, file, line, grid, block, dynamic_smem, stream});
}

}  // namespace kvs_emu

#define __syncthreads() kvs_emu::sync_threads(__FILE__, __LINE__)
#define __trap() kvs_emu::trap(__FILE__, __LINE__)
#define __shfl_sync(...) kvs_emu::shuffle_as(kvs_emu::Shuffle::Index, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) kvs_emu::shuffle_as(kvs_emu::Shuffle::Xor, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) kvs_emu::shuffle_as(kvs_emu::Shuffle::Up, __FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) kvs_emu::shuffle_as(kvs_emu::Shuffle::Down, __FILE__, __LINE__, __VA_ARGS__)
namespace kvs_emu {
struct SyncWarpAt {  // __syncwarp() and __syncwarp(mask) both, with the caller's line
    const char* file;
    int line;
    void operator()(unsigned mask = 0xffffffffu) const { sync_warp(file, line, mask); }
};
}  // namespace kvs_emu
#define __syncwarp(...) kvs_emu::SyncWarpAt{__FILE__, __LINE__}(__VA_ARGS__)

// ---- runtime API ----------------------------------------------------------------------
// The codes are the real runtime's, so messages and numbers read the same.
enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    // a kernel's faults, seen at the next wait for the device (only the last is emulated)
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchTimeout = 702,
    cudaErrorAssert = 710,
    cudaErrorIllegalInstruction = 715,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorStreamCaptureImplicit = 906,
};
typedef cudaError cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr {
    cudaDevAttrMaxThreadsPerBlock = 1,
    cudaDevAttrMaxSharedMemoryPerBlock = 8,
    cudaDevAttrWarpSize = 10,
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
};

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    size_t sharedMemPerBlock;
    size_t sharedMemPerBlockOptin;
    int warpSize;
    int maxThreadsPerBlock;
    int multiProcessorCount;
    int major, minor;
};

struct CUevent_st;
typedef CUevent_st* cudaEvent_t;
struct CUgraph_st;
typedef CUgraph_st* cudaGraph_t;
struct CUgraphExec_st;
typedef CUgraphExec_st* cudaGraphExec_t;
struct CUgraphNode_st;
typedef CUgraphNode_st* cudaGraphNode_t;

enum cudaStreamCaptureMode {
    cudaStreamCaptureModeGlobal = 0,
    cudaStreamCaptureModeThreadLocal = 1,
    cudaStreamCaptureModeRelaxed = 2,
};
enum cudaStreamCaptureStatus {
    cudaStreamCaptureStatusNone = 0,
    cudaStreamCaptureStatusActive = 1,
    cudaStreamCaptureStatusInvalidated = 2,
};
constexpr unsigned cudaStreamDefault = 0x0, cudaStreamNonBlocking = 0x1;
constexpr unsigned cudaHostAllocDefault = 0x0;

cudaError_t cudaGetDeviceCount(int* count);
cudaError_t cudaGetDevice(int* device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device);
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device);
cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);

cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t stream = nullptr);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream = nullptr);
cudaError_t cudaMemset2D(void* p, size_t pitch, int value, size_t width, size_t height);
cudaError_t cudaMemset2DAsync(void* p, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream = nullptr);

cudaError_t cudaEventCreate(cudaEvent_t* event);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream = nullptr);
// cudaEventRecordExternal: in a capture, a node that records the event at every replay.
constexpr unsigned cudaEventRecordDefault = 0x0, cudaEventRecordExternal = 0x1;
cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream = nullptr, unsigned flags = 0);
cudaError_t cudaEventQuery(cudaEvent_t event);  // cudaErrorNotReady until the stream reaches it
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end);

// Streams: queues of work that run side by side (see the top).
cudaError_t cudaStreamCreate(cudaStream_t* stream);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph);
cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status);
cudaError_t cudaStreamQuery(cudaStream_t stream);  // cudaErrorNotReady while work is queued

// Graphs made by capture: a list of recorded work, queued in order by cudaGraphLaunch.
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream);
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count);  // count only: nodes null
cudaError_t cudaGraphDestroy(cudaGraph_t graph);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec);

// Pinned (page-locked) host memory: ordinary memory here, remembered as pinned.
cudaError_t cudaMallocHost(void** p, size_t bytes);
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned flags);
cudaError_t cudaFreeHost(void* p);
