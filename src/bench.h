// Helpers shared by the benchmarks (src/bench.cpp, src/throughput.cpp).
#pragma once
#include <cstdint>
#include <vector>

// The median; 0 for an empty list.
double median(std::vector<double> v);
// `count` seeded token ids, avoiding the special tokens 0..2 when the vocabulary allows.
std::vector<int> random_tokens(int count, int vocab, uint64_t seed);
