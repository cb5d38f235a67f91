// The thread's launch stream and runtime call count (cuda/launch.h).
#include "cuda/launch.h"

namespace {
thread_local CUstream_st* current_stream = nullptr;  // null: the legacy default stream
thread_local size_t calls = 0;
}  // namespace

LaunchStream::LaunchStream(CUstream_st* stream) : previous_(current_stream) { current_stream = stream; }
LaunchStream::~LaunchStream() { current_stream = previous_; }
CUstream_st* current_launch_stream() { return current_stream; }

size_t runtime_calls() { return calls; }
void count_runtime_call() { calls++; }
