// Where the launch functions of cuda/*.h queue their work, and how many runtime calls that
// took. Plain C++ (no CUDA types: CUstream_st* is what the CUDA headers call cudaStream_t),
// so the GPU forward, tests and benchmarks built by g++ can use it.
#pragma once
#include <cstddef>

struct CUstream_st;

// Every launch function queues its kernels on the calling thread's launch stream: the
// legacy default stream, unless a LaunchStream is alive on the thread. The GPU forward
// sets its own stream this way, so that a whole decode step can be captured into a CUDA
// graph (a capture records the work of one stream, and never the legacy stream's).
class LaunchStream {
public:
    explicit LaunchStream(CUstream_st* stream);
    ~LaunchStream();  // back to the stream that was current before
    LaunchStream(const LaunchStream&) = delete;
    LaunchStream& operator=(const LaunchStream&) = delete;

private:
    CUstream_st* previous_;
};
CUstream_st* current_launch_stream();

// Runtime calls this thread has made that queue work or wait for it: every kernel launch of
// the launch functions (counted by kvk::launch_stream in cuda/common.cuh), and the copies,
// graph launches and synchronizations of the GPU forward, which count themselves. Checks
// such as cudaGetLastError are not counted. bench plans reports the count per decode step.
size_t runtime_calls();
void count_runtime_call();
