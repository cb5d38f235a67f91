// The thread's launch stream and runtime call count (cuda/launch.h).
#include "cuda/launch.h"

namespace {
thread_local CUstream_st* current_stream = nullptr;  // null: the legacy default stream
thread_local const SplitKScratch* current_scratch = nullptr;
thread_local size_t calls = 0;
}  // namespace

LaunchStream::LaunchStream(CUstream_st* stream, const SplitKScratch* scratch)
    : previous_(current_stream), previous_scratch_(current_scratch) {
    current_stream = stream;
    current_scratch = scratch;
}
LaunchStream::~LaunchStream() {
    current_stream = previous_;
    current_scratch = previous_scratch_;
}
CUstream_st* current_launch_stream() { return current_stream; }
const SplitKScratch* current_split_scratch() { return current_scratch; }

size_t runtime_calls() { return calls; }
void count_runtime_call() { calls++; }
