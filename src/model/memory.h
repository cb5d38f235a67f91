// What a run will allocate, known from the shapes before anything is allocated, and the one
// check of it against what the machine has: available RAM, and free GPU memory for
// --device cuda. The formulas are the ones the allocations use (allocate_weights, KVLayout,
// the backends' run state); tests/test_memory.cpp checks them against real allocations.
//
// Every size here is a saturating product: numbers a user gave (a batch of 1e9, a context
// of 2^31) can make a product pass 2^64, and then it stays at SIZE_MAX, more than any
// machine has, instead of wrapping to a small number that would pass the check.
#pragma once
#include "src/model/backend.h"
#include "src/model/config.h"
#include <cstddef>
#include <initializer_list>
#include <string>
#include <vector>

size_t sat_mul(size_t a, size_t b);
size_t sat_add(size_t a, size_t b);
// a * b * c * ... saturating.
size_t sat_product(std::initializer_list<size_t> factors);

// The parts of a run: what each is for, its bytes, and where it lives.
struct MemoryNeed {
    struct Part {
        std::string what;
        size_t bytes = 0;
        bool on_gpu = false;
    };
    std::vector<Part> parts;
    MemoryNeed& host(const std::string& what, size_t bytes);
    MemoryNeed& gpu(const std::string& what, size_t bytes);
    size_t host_bytes() const;
    size_t gpu_bytes() const;
};

// Every tensor of allocate_weights, fp32: W_K and W_V for the n_kv_layers KV layers only.
size_t weight_bytes(const Config& c, int n_kv_layers);
// K and V of KVLayout: n_kv_layers x batch x context x kv_dim floats, each.
size_t kv_cache_bytes(const Config& c, int n_kv_layers, int batch, int context);
// A backend's activations for passes of `rows` = batch x new positions, the residual saved at
// a cyclic block's entry when the plan iterates, and `kept` rows of logits and final hidden
// states (batch, or batch x prompt when every position is kept).
size_t run_state_bytes(const Config& c, bool iterates, size_t rows, size_t kept);

// One training step of reference/train_model.cpp on `batch` windows of `seq` tokens: every
// recorded layer execution's activations (the layers outside cyclic blocks once, each block's
// layers b times; with its K/V and their gradients for a KV layer), one unrecorded execution's,
// the unrecorded K/V, the logits and their gradient, and the backward's scratch. Weights, gradients and AdamW's two
// moments (4 x weight_bytes) are not in it.
size_t train_step_bytes(const Config& c, const Plan& plan, int batch, int seq, int b_iterations);

// A backend for `batch` sequences of `context` tokens whose prefills take at most `prompt`
// tokens per sequence and keep every position's logits when `all_positions`: KV cache and run
// state on the device it runs on; on CUDA also the weights' device copy and the decode
// workspace, with the logits' host copy. The host weights (already loaded) are not counted.
void add_backend(MemoryNeed& need, const Model& m, Device d, int batch, int context, int prompt, bool all_positions);

// What a run may still take: the CPU's MemAvailable (and a cgroup v2 memory.max, when set),
// the GPU's free memory (0 without a GPU).
size_t available_host_bytes();
size_t available_gpu_bytes();

// Fails, before anything is allocated, unless the host parts fit the available RAM and the
// GPU parts the GPU's free memory. The message names the size, its parts and what to change:
//   "kvshare generate needs 309.24 GB of memory (KV cache ... 309.24 GB, run state 1.10 MB)
//    but 22.10 GB is available; lower --batch or -n"
void check_memory(const MemoryNeed& need, const std::string& who, const std::string& hint);
