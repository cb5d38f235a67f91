// The training forward and backward of the whole model on the CPU: the same function as
// reference/forward.cpp's parallel prefill (DESIGN.md sections 1, 2), with every position
// in parallel, the loss, and the gradient of every weight.
#pragma once
#include "src/model/model.h"
#include <memory>

// Plans with cyclic blocks train as LCKV does: each block runs m parallel iterations
// without gradient, then b more that record their activations; the loss comes from the
// last. Backprop goes through the b recorded iterations: the K/V a recorded iteration
// makes and the next one's upward readers read gets gradient; the K/V of the last
// unrecorded iteration (zeros when m = 0) is a constant. Plans without blocks ignore it.
//
// Why b >= 2: a layer reading an upper source in iteration j reads the K/V made in
// iteration j - 1. With b = 1 that is an unrecorded, constant K/V, so the source's W_K
// and W_V get no gradient through any upward reader; only readers at or above the source
// in the same iteration (if any) contribute. b = 1 is accepted (it still trains every
// other weight) but is not what LCKV does.
struct TrainIterations {
    int m = 7;
    int b = 2;
};
// m and b at most this: each is a pass over the block per step, and b recorded passes keep
// their activations.
const int kMaxTrainIterations = 100;

// The buffers of a training pass (every recorded activation, the K/V objects and their
// gradients, the logits and the backward's scratch), kept from one call to the next: a
// training loop that passes the same workspace to every step allocates them at its first
// step only. A step of the SmolLM2-135M shape (8 x 256 tokens) holds about 3 GB; allocated
// anew every step, their page faults took a sixth of the step.
class TrainWorkspace {
public:
    TrainWorkspace();
    ~TrainWorkspace();
    TrainWorkspace(const TrainWorkspace&) = delete;
    TrainWorkspace& operator=(const TrainWorkspace&) = delete;
    struct Buffers;
    std::unique_ptr<Buffers> buffers;
};

// tokens (batch, n + 1): inputs tokens[:, 0..n-1], targets tokens[:, 1..n].
// Returns the mean cross-entropy over batch * n predictions. When grad != nullptr
// (allocated like the model's weights, see allocate_weights), ACCUMULATES (+=) the
// gradient of that loss into it. Without a workspace, the call allocates its own.
double model_loss_and_grad(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                           Weights* grad, TrainWorkspace* workspace = nullptr);

// The same loss without gradient (every iteration unrecorded: m + b per block).
double model_loss(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                  TrainWorkspace* workspace = nullptr);
