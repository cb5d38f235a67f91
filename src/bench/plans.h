// Per-plan tables for the walkthrough, one command each, runnable as they are on a GPU:
//   kvshare bench plans    prefill and decode tokens/s per (plan, device), and decode's
//                          achieved bandwidth against a copy ceiling measured in the same run
//   kvshare bench prefill  prefill time per plan by mode: token by token, one pass, and
//                          parallel iterations T (what chapter 3's iterations cost)
#pragma once
#include "src/model/backend.h"
#include "src/bench/common.h"
#include <cstddef>
#include <string>
#include <vector>

// ---------------------------------------------------------------------------
// arithmetic (pure)

// The bytes one decode step must move at least once, for `batch` sequences that each hold
// `positions` tokens once the step's token is appended: every weight read once (of the
// embedding only the batch's rows; the whole classifier, even when tied to the embedding;
// W_K and W_V of the n_kv_layers KV layers only) plus each sequence's K and V for every KV
// layer and position. Writes (one new K/V row per KV layer, activations) are left out: they
// are small, and a lower bound may leave them out. With diag=all the newest position is
// masked in every layer, one of `positions` we still count.
size_t decode_step_bytes(const Config& c, int n_kv_layers, int batch, int positions);
// Summed over `steps` steps after a prompt of `prompt` tokens: step i (from 0) sees
// prompt + i + 1 positions, as time_generation's decode steps do.
size_t decode_bytes(const Config& c, int n_kv_layers, int batch, int prompt, int steps);

// The arithmetic of one decode step for `batch` sequences that each hold `positions` tokens
// once the step's token is appended: 2 flops per multiply-add of every matmul (W_Q, W_O, W1,
// W2, W3 in every layer, W_K and W_V in the n_kv_layers KV layers, the classifier) for each
// sequence, plus attention in every layer: q.k and the weighted sum of V, 2 x 2 x n_heads x
// head_size per visible position (counted as `positions`, as decode_step_bytes does).
// Norms, RoPE, SwiGLU and softmax are left out: a few flops per activation, not per weight.
size_t decode_step_flops(const Config& c, int n_kv_layers, int batch, int positions);
// Summed over the steps, as decode_bytes.
size_t decode_flops(const Config& c, int n_kv_layers, int batch, int prompt, int steps);

// Layer passes of one parallel prefill with T iterations per cyclic block: layers outside
// the blocks once, each block's layers T times (lckv:2 on 8 layers, T = 9: 1 + 6 x 9 + 1 = 56).
int prefill_layer_passes(const Plan& p, int iterations);

// The CPU's copy ceiling: memcpy of `bytes` into a second buffer, counted as read + write,
// the median of `runs` after one warm-up copy, on one thread and on all OpenMP threads (each
// copying its own slice); the faster of the two is the ceiling, since the forward pass runs
// on all those threads and may reach whichever a single copy does.
struct CopyCeiling {
    double gbs = 0;            // the ceiling: max of the two
    double one_thread_gbs = 0;
    double all_threads_gbs = 0;
    int threads = 1;           // OpenMP threads in the all-threads copy
};
CopyCeiling cpu_copy_ceiling(size_t bytes, int runs);

// The CPU's GEMM ceiling: the blocked matmul (what the CPU forward runs) at
// n = k = d = `size` on all OpenMP threads, GFLOP/s of the median of `runs` after one
// warm-up. Decode at a large batch is bound by this, not by memory.
double cpu_gemm_gflops(int size, int runs);

// ---------------------------------------------------------------------------
// the commands' settings and rows

struct PlanBenchOptions {
    PlanModels models;
    std::vector<Plan> plans;
    std::vector<Device> devices;  // cpu before cuda
    int batch = 1, prompt = 32, steps = 64, repeats = 5;
    std::vector<int> iterations;  // bench prefill: T values
    size_t copy_bytes = (size_t)256 << 20;  // bench plans: size of the ceiling's copy
    int gemm_size = 0;  // bench plans: the GEMM ceiling's n = k = d; 0: 1024 on the CPU, 4096 on CUDA
    CudaDecodeOptions cuda;  // bench plans: --no-graphs, --unfused (the decode step before issue 15)
};
// `which` is "plans" or "prefill"; argv[0] is that word. plan_bench_args rejects unknown
// options (and notes -h/--help, which is the caller's business); plan_bench_options fails
// with one line on every bad value, before anything runs. parse_plan_bench does both.
Args plan_bench_args(int argc, char** argv, const std::string& which);
PlanBenchOptions plan_bench_options(const Args& a, const std::string& which);
PlanBenchOptions parse_plan_bench(int argc, char** argv, const std::string& which);

struct DecodeRow {
    std::string plan;
    Device device = Device::CPU;
    int kv_layers = 0;
    double prefill_tok_s = 0, decode_tok_s = 0;  // medians of the repeats
    size_t step_bytes = 0;     // decode_bytes over the steps / steps
    double gbs = 0;            // decode_bytes / decode time
    double ceiling_gbs = 0;    // the device's copy ceiling in this run
    size_t step_flops = 0;     // decode_flops over the steps / steps
    double gflops = 0;         // decode_flops / decode time
    double ceiling_gflops = 0; // the device's GEMM ceiling in this run
    double host_us = 0;        // host time issuing a decode step (CUDA; 0 on the CPU)
    double calls = 0;          // runtime calls per decode step (CUDA; 0 on the CPU)
};
struct CeilingNote {           // how a device's ceilings were measured, for the header
    Device device = Device::CPU;
    double gbs = 0;
    std::string how;
    double gflops = 0;
    std::string gemm_how;
};
struct DecodeTable {
    std::vector<CeilingNote> ceilings;
    std::vector<DecodeRow> rows;  // plan-major: every device for a plan, then the next plan
};
DecodeTable run_decode_table(const PlanBenchOptions& o);
// The `headline: KEY VALUE UNIT` lines bench/gpu-report.sh collects, for standard's row (or
// the first plan's) on each device: decode_bB_M[_P][_cpu]_tok_s and _pct_copy, and on CUDA
// _host_us_per_step (M: headline_model of the preset or file name).
std::vector<std::string> decode_headlines(const PlanBenchOptions& o, const DecodeTable& t);

struct PrefillRow {
    std::string plan;
    Device device = Device::CPU;
    std::string mode;          // "token by token", "one pass" or "T=4"
    int iterations = 0;        // T; 0 for the other modes
    std::string passes;        // layer passes: "6/token" token by token, else a count
    double seconds = 0;        // median prefill time
    double tok_s = 0;
    double vs_token_by_token = 0;  // seconds / this plan's token-by-token seconds
    double vs_standard = 0;        // seconds / standard's one-pass seconds, same device
};
// Standard's one pass is timed even when standard is not among the plans (the baseline);
// `standard_s` receives it per device, in o.devices' order.
std::vector<PrefillRow> run_prefill_table(const PlanBenchOptions& o, std::vector<double>* standard_s = nullptr);

int bench_plans(int argc, char** argv);    // argv[0] is "plans"
int bench_prefill(int argc, char** argv);  // argv[0] is "prefill"
