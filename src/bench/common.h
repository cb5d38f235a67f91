// Helpers shared by the benchmarks (bench.cpp, throughput.cpp, plans.cpp in this folder).
#pragma once
#include "src/commands/args.h"
#include "src/model/backend.h"
#include "src/model/model.h"
#include <cstdint>
#include <string>
#include <vector>

// The median; 0 for an empty list.
double median(std::vector<double> v);
// `count` seeded token ids, avoiding the special tokens 0..2 when the vocabulary allows.
std::vector<int> random_tokens(int count, int vocab, uint64_t seed);

// The models a per-plan table runs on: random weights of a preset's shape (--preset NAME,
// seed -s, the same for every plan), or one checkpoint (MODEL) re-planned per plan, which
// needs the K/V weights of every plan's KV layers (a standard checkpoint has them all).
struct PlanModels {
    std::string name;  // the preset's or the file's, for the table's header
    Config config;
    bool preset = false;
    uint64_t seed = 1;
    Model base;        // the checkpoint; unused for a preset
    Model make(const Plan& p) const;
};
PlanModels plan_models(const Args& a);

// --plans "P1 P2 ..." parsed for the models' layer count, or the default list (standard,
// cla:2, yoco, sandwich-middle:L/2, lckv:2); every plan parsed, and checked against a
// checkpoint's K/V weights, before anything runs, so a bad one fails at once.
std::vector<Plan> bench_plan_list(const Args& a, const PlanModels& models);

// --device cpu | cuda | both (cpu first); asking for CUDA without a usable GPU fails here,
// before anything runs.
std::vector<Device> parse_devices(const std::string& s);
const char* device_word(Device d);  // "cpu" or "cuda"

// "1 2 4 9": positive integers separated by spaces; anything else is an error naming `what`.
std::vector<int> parse_int_list(const std::string& s, const std::string& what);

// Bytes the device has allocated now: for the CPU, what malloc has handed out and not
// taken back (glibc's mallinfo2); for CUDA, total minus free device memory.
size_t allocated_bytes(Device d);
// Bytes a run could still take: the CPU's MemAvailable, or the GPU's free memory.
size_t available_bytes(Device d);

// "512M", "2G", "1.5G", "300000" (bytes); K, M, G are powers of 1024.
size_t parse_bytes(const std::string& s, const std::string& what);

// What to run: random prompts of `prompt` tokens, then `gen` generated tokens each.
struct GenerationSettings {
    Device device = Device::CPU;
    int prompt = 64, gen = 64, repeats = 1;
    PrefillOptions prefill;
    CudaDecodeOptions cuda;  // graphs and fused kernels, on the GPU
};

// Timed generation, shared by bench decode and bench throughput: a backend for `batch`
// sequences of prompt + gen tokens, `warmup` untimed and then `repeats` timed rounds of a
// prefill and `steps` greedy decode steps, as generate -t 0 runs them: the backend picks
// each token (on the GPU, on the device) and the host waits for the ids of every step (so
// GPU times are real; the logits stay on the device). Medians of the rounds. Memory is what
// the backend holds at the end (its run state only grows) plus, on the CPU, the host
// weights it reads (on the GPU the backend's upload is part of the measurement).
struct GenerationRun {
    size_t memory = 0;
    double prefill_s = 0, decode_s = 0;
    double host_us_per_step = 0;  // host time issuing a decode step, without the wait (0 on the CPU)
    double calls_per_step = 0;    // runtime calls per decode step (0 on the CPU)
    std::string device_name;      // the backend's (the GPU's name on CUDA)
};
GenerationRun time_generation(Model& m, const GenerationSettings& s, int batch, int steps, int repeats, int warmup = 0);


// One headline figure: a line "headline: KEY VALUE UNIT" on stdout. `make gpu-report`
// (bench/gpu-report.sh, whose header lists every key) collects them into its summary.
// The key is made a single word: anything but letters, digits, '.' and '_' becomes '_'.
void print_headline(const std::string& key, double value, const std::string& unit);
std::string headline_line(const std::string& key, double value, const std::string& unit);  // without "\n"
// A model for keys: a preset's name, or a file's name without its folder and extension.
std::string headline_model(const std::string& name);
