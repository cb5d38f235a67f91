// The [cuda] tests' comparison with the reference op, by DESIGN.md section 6: relative L2
// error and max abs error (scaled by the largest reference value, at least 1) within the
// bound, and no NaN or Inf in the result.
#pragma once
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include <algorithm>
#include <cmath>
#include <vector>

constexpr double ELEMENTWISE_BOUND = 1e-5, GEMM_BOUND = 1e-4, ATTENTION_BOUND = 1e-4;

inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double bound) {
    REQUIRE(got.size() == want.size());
    const ErrorStats e = compare(got, want);
    double scale = 1.0;
    for (float x : want) scale = std::max(scale, (double)std::fabs(x));
    INFO("rel_l2 " << e.rel_l2 << ", max_abs " << e.max_abs << ", max |ref| " << scale << ", bound " << bound);
    CHECK(e.finite);
    CHECK(e.rel_l2 <= bound);
    CHECK(e.max_abs <= bound * scale);
}
