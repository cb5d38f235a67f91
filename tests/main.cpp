// Catch2 v2's main, compiled once. The [cuda] tests run with KVSHARE_CUDA_SYNC=1
// (cuda/check.h): every launch waits for the GPU, so a kernel that faults is named in the
// error rather than found later by another call. KVSHARE_CUDA_SYNC=0 in the environment
// keeps it off.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cstdlib>

int main(int argc, char** argv) {
    setenv("KVSHARE_CUDA_SYNC", "1", 0);
    return Catch::Session().run(argc, argv);
}
