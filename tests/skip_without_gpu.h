// For the [cuda] test cases: without a usable GPU, say why ("SKIPPED: ...") and pass.
#pragma once
#include <catch2/catch.hpp>
#include "src/model/backend.h"
#include <string>

#define SKIP_WITHOUT_GPU()                \
    do {                                  \
        std::string why_;                 \
        if (!cuda_available(&why_)) {     \
            WARN("SKIPPED: " << why_);    \
            return;                       \
        }                                 \
    } while (0)
