// Perplexity of a model + plan on a token stream; used by eval, calibrate and the tests.
#pragma once
#include "src/model/backend.h"
#include <string>
#include <vector>

struct EvalResult {
    size_t predicted = 0;  // tokens predicted
    int windows = 0;
    double mean_loss = 0;  // nats per token
    double perplexity = 0;
};

struct RecallResult {
    int probes = 0, correct = 0;
};

// -log softmax(logits)[target], in double.
double cross_entropy(const float* logits, int vocab, int target);

// Non-overlapping windows of `context` inputs over tokens (batch-1 backend).
struct Tokenizer;
struct RecallProbe;
// Each document encoded with BOS, concatenated: how `train --stories` sees stories.
std::vector<int> encode_documents(const Tokenizer& tok, const std::vector<std::string>& docs);
// Greedy continuation of a probe's prompt must spell out its answer word: 1 if it does, 0 if
// not, -1 when the probe does not fit the backend's context (not counted).
int recall_probe(Backend& be, const Model& m, const Tokenizer& tok, const RecallProbe& p, const PrefillOptions& prefill);
// recall_probe over a list.
RecallResult recall_accuracy(Backend& be, const Model& m, const Tokenizer& tok, const std::vector<RecallProbe>& probes,
                             const PrefillOptions& prefill);

EvalResult evaluate(Backend& be, const Model& m, const std::vector<int>& tokens, int context, const PrefillOptions& prefill);
