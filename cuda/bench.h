// `kvshare bench kernels [FILTER...] [--size N] [--runs R] [--warmup W]`: times every
// version of every CUDA kernel with device events (median of R runs after W warm-up runs)
// and prints GFLOP/s or GB/s next to the ceiling measured on the same GPU: cuBLAS SGEMM
// for GEMM, the fp32 FMA rate for prefill attention, a device-to-device copy for the
// memory-bound kernels; 'headline:' lines summarize it for make gpu-report.
// argv[0] may be the word "kernels". Fails (one error line) on bad options and without a GPU.
#pragma once

int bench_kernels(int argc, char** argv);
