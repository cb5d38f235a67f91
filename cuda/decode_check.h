// Host-vector wrappers around the kernels of cuda/decode_kernels.h, for the tests (plain
// C++, as cuda/kernel_check.h): inputs copied to the device, outputs filled with NaN before
// the launch and surrounded by NaN guard zones that must come back untouched; each
// synchronizes and copies the result back.
#pragma once
#include "cuda/strided.h"
#include <cstdint>
#include <string>
#include <vector>

// decode_qkv_gpu at position pos. wk and wv empty: a layer that shares (Q only). The caches
// (batch, context, kv_dim) start as `cache_in` (so the test sees what else was written).
struct QkvOut {
    std::vector<float> q, key_cache, value_cache;
};
QkvOut check_decode_qkv(const std::vector<float>& x, const std::vector<float>& norm_weight, const std::vector<float>& wq,
                        const std::vector<float>& wk, const std::vector<float>& wv, const std::vector<float>& cache_in,
                        int batch, int dim, int n_heads, int n_kv_heads, int head_size, int context, int pos,
                        float theta, float eps, int split);
std::vector<float> check_decode_ffn_up(const std::vector<float>& x, const std::vector<float>& norm_weight,
                                       const std::vector<float>& w1, const std::vector<float>& w3, int batch, int dim,
                                       int hidden, float eps, int split);
// x + in @ w^T
std::vector<float> check_decode_residual(const std::vector<float>& x, const std::vector<float>& in,
                                         const std::vector<float>& w, int batch, int k, int d, int split);
std::vector<float> check_decode_matvec(const std::vector<float>& in, const std::vector<float>& w, int batch, int k, int d,
                                       int split);
// attention_decode_counter_gpu with the counter at pos; q (batch, q_dim), k, v (batch, context, kv_dim).
std::vector<float> check_attention_decode_counter(const std::vector<float>& q, const std::vector<float>& k,
                                                  const std::vector<float>& v, int batch, int pos, int context, int mask,
                                                  int n_heads, int n_kv_heads, int head_size);
// argmax_gpu (temperature 0) or sample_gpu over logits rows b * row_stride.
std::vector<int> check_sample(const std::vector<float>& logits, size_t row_stride, int batch, int vocab, float temperature,
                              float topp, const std::vector<float>& draws);
// store_kv_at_counter_gpu: rows (batch, kv_dim) into a copy of slot (batch, context, kv_dim)
// with the counter at pos.
std::vector<float> check_store_kv_at_counter(const std::vector<float>& slot, const std::vector<float>& rows, int batch,
                                             int context, int kv_dim, int pos);
// strided_fill_gpu over a copy of dst.
std::vector<float> check_strided_fill(const std::vector<float>& dst, float value, const StridedRows& r);
// The position kernels: the counter set to `counter` and advanced once, positions_from_counter
// over `rows` rows after that, and a prefill's positions (batch, n) from p0.
struct PositionsCheck {
    int counter = -1;
    std::vector<int> from_counter, prefill;
};
PositionsCheck check_positions(int counter, int rows, int batch, int n, int p0);
// strided_copy_gpu from src into a copy of dst.
std::vector<float> check_strided_copy(const std::vector<float>& dst, const std::vector<float>& src, const StridedRows& r);

// Stream capture and graph replay through the runtime, as the GPU forward uses them: what
// a capture recorded, what a replay did, and which calls a capture refused.
struct GraphCheck {
    int counter_after_capture = -1;  // the counter after capturing two advances (not run yet: 0)
    int counter_after_replays = -1;  // after three replays of the graph (6)
    size_t nodes = 0;                // nodes of the captured graph (3: two advances and a copy)
    bool copied = false;             // the captured copy ran at each replay with the data of that time
    bool sync_copy_refused = false;  // a synchronous cudaMemcpy during a capture fails...
    bool invalidated = false;        // ...and the capture then ends with an error
    bool legacy_refused = false;     // a launch on the legacy default stream during a capture fails
};
GraphCheck check_graph_capture();

// On the CPU emulator, the kernels that have run to their end so far (tests/cuda_on_cpu:
// work queued on a stream runs only when the host waits for it): what a test reads to see
// how much of the queued work a host wait made the device finish. -1 on a GPU.
long long device_kernels_finished();
// On the emulator, the kernels run to their end since the last call, each name once (as
// written at its launch: "fused_kernel<NB, true, Job>"); empty on a GPU.
std::vector<std::string> device_kernel_names_since();
