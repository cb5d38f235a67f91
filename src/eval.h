// Perplexity of a model + plan on a token stream; used by eval, calibrate and the tests.
#pragma once
#include "src/backend.h"
#include <vector>

struct EvalResult {
    size_t predicted = 0;  // tokens predicted
    int windows = 0;
    double mean_loss = 0;  // nats per token
    double perplexity = 0;
};

// -log softmax(logits)[target], in double.
double cross_entropy(const float* logits, int vocab, int target);

// Non-overlapping windows of `context` inputs over tokens (batch-1 backend).
EvalResult evaluate(Backend& be, const Model& m, const std::vector<int>& tokens, int context, const PrefillOptions& prefill);
