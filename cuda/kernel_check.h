// Host-vector wrappers around the kernels of cuda/kernels.h, for the tests (plain C++, so
// the test files need no CUDA headers). Each copies its inputs to the device, fills the
// output with NaN before the launch (a kernel that skips an element is caught), launches,
// synchronizes and copies the result back. Every device buffer carries NaN guard zones
// on both sides; a kernel that writes outside its output throws std::runtime_error.
#pragma once
#include "cuda/gemm_plan.h"
#include "reference/ops.h"
#include <cstddef>
#include <string>
#include <vector>

// `offset` shifts x and w by that many floats on the device (offset 1 breaks 16-byte
// alignment, to exercise the kernels' scalar fallbacks).
std::vector<float> check_gemm(int version, const std::vector<float>& x, const std::vector<float>& w, int n, int k, int d,
                              int offset = 0);
// The same for one explicit plan (a tile configuration and split count: gemm_run).
std::vector<float> check_gemm_plan(const GemmPlan& plan, const std::vector<float>& x, const std::vector<float>& w, int n,
                                   int k, int d, int offset = 0);
// In place on x (rows, n): the result replaces x.
std::vector<float> check_softmax(int version, const std::vector<float>& x, int rows, int n);
std::vector<float> check_rmsnorm(int version, const std::vector<float>& x, const std::vector<float>& weight, int n, int dim,
                                 float eps);
std::vector<float> check_rope(const std::vector<float>& x, const std::vector<int>& positions, int n, int n_heads,
                              int head_size, float theta, RopeStyle style);
std::vector<float> check_swiglu(const std::vector<float>& hb, const std::vector<float>& hb2, int offset = 0);
std::vector<float> check_residual_add(const std::vector<float>& x, const std::vector<float>& y, int offset = 0);
std::vector<float> check_embedding(const std::vector<float>& table, const std::vector<int>& tokens, int dim);
// q (batch, n, q_dim); k, v (batch, context, kv_dim); returns out (batch, n, q_dim).
std::vector<float> check_attention_prefill(int version, const std::vector<float>& q, const std::vector<float>& k,
                                           const std::vector<float>& v, int batch, int n, int p0, int context, bool strict,
                                           int n_heads, int n_kv_heads, int head_size);
// q (batch, q_dim); returns out (batch, q_dim).
std::vector<float> check_attention_decode(int version, const std::vector<float>& q, const std::vector<float>& k,
                                          const std::vector<float>& v, int batch, int pos, int context, bool strict,
                                          int n_heads, int n_kv_heads, int head_size);

// The debug switch of cuda/check.h, tested: the error message when a kernel faults
// (__trap) and another kernel runs before the next wait for the GPU, with the switch on or
// off. Only where check_can_fault(): the CPU emulator. On a GPU a trap loses the context,
// and every later test would fail.
bool check_can_fault();
std::string check_fault_report(bool sync_after_launch);
// An async copy (kvk::copy_async, how the GPU forward copies) after a fault queued on its
// stream: with the switch on, the copy is waited for and its error says so; off, it returns
// at once and reports nothing (""). Only where check_can_fault().
std::string check_copy_fault_report(bool sync_after_launch);
// The error message of a launch with more threads per block than any GPU allows (a
// configuration error, found at the launch on a GPU too).
std::string check_bad_launch_report();
