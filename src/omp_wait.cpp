// How long OpenMP's threads spin while they wait, set before OpenMP starts.
#include "src/omp_wait.h"
#include <cstdlib>
#include <omp.h>
#include <unistd.h>

// About 25 microseconds of pause instructions on this project's machines (24 ns each).
constexpr const char* kSpinCount = "1000";

void spin_briefly_in_openmp_waits(char** argv) {
    if (std::getenv("GOMP_SPINCOUNT") || std::getenv("OMP_WAIT_POLICY") || omp_get_max_threads() < 2) return;
    if (setenv("GOMP_SPINCOUNT", kSpinCount, 0) != 0) return;
    execv("/proc/self/exe", argv);  // returns only if it failed (no /proc): go on as we started
    unsetenv("GOMP_SPINCOUNT");
}
