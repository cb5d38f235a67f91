// Helpers shared by the benchmarks (src/bench.cpp, src/throughput.cpp, src/bench_plans.cpp).
#pragma once
#include "src/args.h"
#include "src/backend.h"
#include "src/model.h"
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
