// Placeholder until the GPU forward lands (issue 4): a clear error, never a wrong answer.
#include "src/backend.h"
#include "src/util.h"

std::unique_ptr<Backend> make_cuda_backend(const Model&, int, int) {
    fail("--device cuda: the GPU forward is not implemented in this version yet; use --device cpu");
}
