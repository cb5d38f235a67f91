// The training forward and backward of the whole model on the CPU: the same function as
// reference/forward.cpp's parallel prefill (DESIGN.md sections 1, 2), with every position
// in parallel, the loss, and the gradient of every weight.
#pragma once
#include "src/model/model.h"

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

// tokens (batch, n + 1): inputs tokens[:, 0..n-1], targets tokens[:, 1..n].
// Returns the mean cross-entropy over batch * n predictions. When grad != nullptr
// (allocated like the model's weights, see allocate_weights), ACCUMULATES (+=) the
// gradient of that loss into it.
double model_loss_and_grad(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it,
                           Weights* grad);

// The same loss without gradient (every iteration unrecorded: m + b per block).
double model_loss(const Model& m, const int* tokens, int batch, int n, const TrainIterations& it);
