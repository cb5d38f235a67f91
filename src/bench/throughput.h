// Throughput under a memory budget (walkthrough chapter 8): fewer KV layers leave room for
// a larger batch in the same memory, and a larger batch makes more tokens per second.
// `kvshare bench throughput` finds, for each plan, the largest batch whose measured
// allocations (weights + KV cache + run state) fit the budget, generates at that batch and
// prints one row per plan; it can also write the rows as CSV and an SVG chart.
#pragma once
#include "src/model/backend.h"
#include <cstddef>
#include <string>
#include <vector>

// Largest batch b <= cap with fixed + b * per_sequence <= budget; 0 if not even one fits.
int max_batch_for(size_t budget, size_t fixed, size_t per_sequence, int cap);

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
