// Shared by the tests: comparisons by normalized error (DESIGN.md section 6), random data.
#pragma once
#include "src/util.h"
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>
#include <vector>

struct ErrorStats {
    double rel_l2 = 0;   // ||a - b|| / ||b||
    double max_abs = 0;  // max |a - b|
    bool finite = true;  // no NaN or Inf in a
};

inline ErrorStats compare(const float* a, const float* b, size_t n) {
    ErrorStats e;
    double diff = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        if (!std::isfinite(a[i]) || !std::isfinite(b[i])) e.finite = false;
        double d = (double)a[i] - b[i];
        diff += d * d;
        ref += (double)b[i] * b[i];
        if (std::fabs(d) > e.max_abs) e.max_abs = std::fabs(d);
    }
    e.rel_l2 = ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff);
    return e;
}

inline ErrorStats compare(const std::vector<float>& a, const std::vector<float>& b) {
    return compare(a.data(), b.data(), a.size() < b.size() ? a.size() : b.size());
}

// Uniform [-1, 1] with a seed the test prints, so a failure can be replayed.
inline std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
    Rng rng(seed);
    std::vector<float> v(n);
    for (float& x : v) x = rng.uniform(lo, hi);
    return v;
}

// A scratch file in the system temp folder: tests may run from any build directory,
// and two test runs at once do not collide.
inline std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("kvshare_test_" + std::to_string(getpid()) + "_" + name)).string();
}

// How many times `piece` occurs in s (overlapping occurrences counted).
inline size_t count_occurrences(const std::string& s, const std::string& piece) {
    size_t n = 0;
    for (size_t at = s.find(piece); at != std::string::npos; at = s.find(piece, at + 1)) n++;
    return n;
}
