// cp.async (sm_80 and later): copies from global to shared memory that bypass the registers and
// complete in the background, in commit groups the thread waits for. A kernel issues the
// copies of stage s + STAGES - 1, commits them as one group, and computes on stage s while they
// are in flight; cp_async_wait<N>() returns when at most N of its committed groups are still
// pending (each thread waits for its own copies: a __syncthreads after the wait makes every
// thread's copies visible to the whole block).
//
// `valid` false copies nothing and writes zeros to the destination (cp.async's src-size
// operand of 0), which is how out-of-range tile elements become zeros without a branch; the
// source pointer is then not read but must still be an ordinary address.
#pragma once
#include <cuda_runtime.h>

#ifdef __CUDACC__

__device__ __forceinline__ unsigned shared_address(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

// 4 bytes, cached in L1 too (.ca: the only variant for sizes below 16).
__device__ __forceinline__ void cp_async4(float* dst, const float* src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(dst)), "l"(src),
                 "r"(valid ? 4 : 0)
                 : "memory");
}

// 16 bytes (dst and src 16-byte aligned), L2 only (.cg: a streamed tile has no use for L1).
__device__ __forceinline__ void cp_async16(float* dst, const float* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

#else  // g++ for the CPU emulator (tests/cuda_on_cpu): the same calls, emulated there

inline void cp_async4(float* dst, const float* src, bool valid) { kvs_emu::async_copy(dst, src, 4, valid); }
inline void cp_async16(float* dst, const float* src, bool valid) { kvs_emu::async_copy(dst, src, 16, valid); }
inline void cp_async_commit() { kvs_emu::async_commit(); }
template <int N>
inline void cp_async_wait() {
    kvs_emu::async_wait(N);
}

#endif
