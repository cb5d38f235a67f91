// When a CPU op is worth more than one thread.
//
// An OpenMP parallel region costs a few microseconds on a quiet machine, and on a loaded
// one far more: every thread waits at the region's end for the slowest, and a thread the
// OS has parked for another job holds them all up for its time slice. A decode step of a
// tiny model is hundreds of such regions of a few thousand multiply-adds each, so `make
// run` on the shipped 0.7M model fell from 3,900 to 21 tokens/s when other jobs loaded both
// cores. So an op forks only when its work pays for it: `#pragma omp parallel ... if
// (worth_threads(work))`, with work counted in multiply-adds (or element operations).
#pragma once

// About 20 microseconds of one core's work at matrix-vector speed: enough to hide the
// region's cost, small enough that stories15M's projections (288 x 288) still split, while
// every op of the shipped 0.7M model (dim 96) runs in the calling thread.
constexpr double kParallelMinWork = 1 << 16;

static inline bool worth_threads(double work) { return work >= kParallelMinWork; }
