// Where the launch functions of cuda/*.h queue their work, and how many runtime calls that
// took. Plain C++ (no CUDA types: CUstream_st* is what the CUDA headers call cudaStream_t),
// so the GPU forward, tests and benchmarks built by g++ can use it.
#pragma once
#include <cstddef>

struct CUstream_st;

// Split K's scratch (cuda/gemm.cu): the partial sums of a split GEMM and one arrival counter
// per output tile (zero between GEMMs), kGemmSplitScratchFloats and kGemmSplitMaxTiles of
// them (cuda/gemm_plan.h). Two GEMMs that may run at the same time need two scratches: one
// per stream, since the work of one stream never overlaps.
struct SplitKScratch {
    float* partials = nullptr;
    unsigned* tickets = nullptr;
};

// Every launch function queues its kernels on the calling thread's launch stream: the
// legacy default stream, unless a LaunchStream is alive on the thread. The GPU forward
// sets its own stream this way, so that a whole decode step can be captured into a CUDA
// graph (a capture records the work of one stream, and never the legacy stream's).
// Streams run side by side, so a stream that takes split GEMMs brings its own scratch; the
// legacy default stream, which waits for every other one, has one shared scratch per GPU.
class LaunchStream {
public:
    explicit LaunchStream(CUstream_st* stream, const SplitKScratch* scratch = nullptr);
    ~LaunchStream();  // back to the stream and scratch that were current before
    LaunchStream(const LaunchStream&) = delete;
    LaunchStream& operator=(const LaunchStream&) = delete;

private:
    CUstream_st* previous_;
    const SplitKScratch* previous_scratch_;
};
CUstream_st* current_launch_stream();
const SplitKScratch* current_split_scratch();  // null: none given with the stream

// Runtime calls this thread has made that queue work or wait for it: every kernel launch of
// the launch functions (counted by kvk::launch_stream in cuda/common.cuh), and the copies,
// graph launches and synchronizations of the GPU forward, which count themselves. Checks
// such as cudaGetLastError are not counted. bench plans reports the count per decode step.
size_t runtime_calls();
void count_runtime_call();
