// KVSharer (Yang et al., 2024): a training-free search, on a pretrained model and a few
// calibration sequences, for layers that may reuse a *dissimilar* earlier layer's KV cache.
#pragma once
#include "src/model/backend.h"
#include <string>
#include <vector>

enum class PairOrder { Dissimilar, Similar, Random };

struct CalibrateOptions {
    int shared_layers = 1;         // C: stop once this many layers read another layer's KV
    double threshold = 0.5;        // keep a change while mean cosine similarity stays above it
    PairOrder order = PairOrder::Dissimilar;
    uint64_t seed = 1;             // for PairOrder::Random
    Device device = Device::CPU;
};

struct PairTrial {
    int layer, with;       // layer i > j: try source[i] = root(j)
    double distance;       // Euclidean distance of the layers' mean [K; V]
    int source = -1;       // root(j), when tried
    double similarity = 0; // mean cosine similarity of final hidden states, when tried
    bool reached = false;  // the search got to this pair before sharing C layers
    bool tried = false, accepted = false;
};

struct CalibrationResult {
    Plan plan;
    std::vector<PairTrial> pairs;   // in the order they were considered
    int shared = 0;
    // The plan after each accepted change: after_each[c - 1] shares c layers, and is the plan
    // a search for c shared layers returns (the greedy pass is the same up to there).
    std::vector<Plan> after_each;
};

// Mean over sequences of each layer's K (after RoPE) and V, flattened as [K; V]:
// (n_layers, 2 * n * kv_dim). sequences: (count, n).
std::vector<std::vector<float>> mean_kv_per_layer(const Model& m, const std::vector<int>& sequences, int count, int n,
                                                  Device device);
double euclidean_distance(const std::vector<float>& a, const std::vector<float>& b);

// Mean over sequences of the cosine similarity of the flattened final hidden states
// (after the final norm) of two models on the same sequences.
double mean_hidden_similarity(const Model& a, const Model& b, const std::vector<int>& sequences, int count, int n,
                              Device device);

// The greedy search of DESIGN.md section 3 on a model whose plan is the starting point
// (usually standard). Layers already sharing stay as they are.
CalibrationResult calibrate(const Model& m, const std::vector<int>& sequences, int count, int n, const CalibrateOptions& o);

int cmd_calibrate(int argc, char** argv);
