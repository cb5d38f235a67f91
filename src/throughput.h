// Throughput under a memory budget (walkthrough chapter 8): fewer KV layers leave room for
// a larger batch in the same memory, and a larger batch makes more tokens per second.
// `kvshare bench throughput` finds, for each plan, the largest batch whose measured
// allocations (weights + KV cache + run state) fit the budget, generates at that batch and
// prints one row per plan; it can also write the rows as CSV and an SVG chart.
#pragma once
#include "src/backend.h"
#include <cstddef>
#include <string>
#include <vector>

// Bytes the device has allocated now: for the CPU, what malloc has handed out and not
// taken back (glibc's mallinfo2); for CUDA, total minus free device memory.
size_t allocated_bytes(Device d);
// Bytes a run could still take: the CPU's MemAvailable, or the GPU's free memory.
size_t available_bytes(Device d);

// Largest batch b <= cap with fixed + b * per_sequence <= budget; 0 if not even one fits.
int max_batch_for(size_t budget, size_t fixed, size_t per_sequence, int cap);

// "512M", "2G", "1.5G", "300000" (bytes); K, M, G are powers of 1024.
size_t parse_bytes(const std::string& s, const std::string& what);

// What to run: random prompts of `prompt` tokens, then `gen` generated tokens each.
struct GenerationSettings {
    Device device = Device::CPU;
    int prompt = 64, gen = 64, repeats = 1;
    PrefillOptions prefill;
};

// Timed generation, shared by bench decode and bench throughput: a backend for `batch`
// sequences of prompt + gen tokens, `warmup` untimed and then `repeats` timed rounds of a
// prefill and `steps` decode steps, each waiting for its logits on the host (so GPU times
// are real); medians of the rounds. Memory is what the backend holds at the end (its run
// state only grows) plus, on the CPU, the host weights it reads (on the GPU the backend's
// upload is part of the measurement).
struct GenerationRun {
    size_t memory = 0;
    double prefill_s = 0, decode_s = 0;
    std::string device_name;  // the backend's (the GPU's name on CUDA)
};
GenerationRun time_generation(Model& m, const GenerationSettings& s, int batch, int steps, int repeats, int warmup = 0);

// One generation run: `batch` random prompts of `prompt` tokens, then `gen` decode steps.
struct ThroughputRow {
    std::string plan;       // the plan's name
    int kv_layers = 0;
    size_t kv_bytes_per_token = 0;  // per sequence, all KV layers, K and V
    int max_batch = 0;      // largest batch that fits the budget (0: none; -1: not searched)
    int batch = 0;          // the batch this row ran
    size_t memory = 0;      // measured: weights + KV cache + run state, at this batch
    double prefill_s = 0;   // time of the batched prefill (median over repeats)
    double decode_s = 0;    // time of the gen decode steps (median)
    int gen = 0;            // tokens generated per sequence

    double decode_tok_s() const { return decode_s > 0 ? batch * (double)gen / decode_s : 0; }
    // Generated tokens per second, end to end: prefill included, as a user waits for it.
    double total_tok_s() const { return prefill_s + decode_s > 0 ? batch * (double)gen / (prefill_s + decode_s) : 0; }
};

// The rows as CSV, one header line; and as an SVG line chart of total tokens/s against
// batch (log2 axis), one line per plan. Plain text, no dependencies.
std::string throughput_csv(const std::vector<ThroughputRow>& rows);
std::string throughput_svg(const std::vector<ThroughputRow>& rows, const std::string& title);

int bench_throughput(int argc, char** argv);  // argv[0] is "throughput"
