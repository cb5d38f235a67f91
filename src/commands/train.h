// `kvshare train`: AdamW with warmup + cosine learning rate and global-norm gradient
// clipping over random windows of a token stream, periodic validation loss and
// checkpoints, on the CPU reference forward/backward (reference/train_model.h).
#pragma once
#include "reference/train_model.h"
#include "src/model/model.h"
#include <cstdint>
#include <string>
#include <vector>

struct TrainOptions {
    int steps = 1000;
    int batch = 8;              // sequences per step
    int seq = 64;               // positions per sequence (windows of seq + 1 tokens)
    float lr = 1e-3f;           // peak learning rate
    float min_lr_ratio = 0.1f;  // the cosine ends at lr * min_lr_ratio
    int warmup = 100;           // linear warmup steps
    float beta1 = 0.9f, beta2 = 0.95f, adam_eps = 1e-8f;
    float weight_decay = 0.1f;  // on projection matrices only (see AdamW)
    float grad_clip = 1.0f;     // global L2 norm; 0 turns clipping off
    int eval_every = 100;       // validation loss (and checkpoint) every N steps and at the end; 0: end only
    int eval_windows = 16;      // validation windows of seq + 1 tokens, spread over the held-out tokens
    int log_every = 10;         // progress line every N steps (and at validations)
    TrainIterations iterations; // m, b for plans with cyclic blocks
    uint64_t seed = 1;          // window sampling
    std::string out_path;       // checkpoint written at every validation and at the end; empty: none
    bool quiet = false;         // no progress lines
};

// Warmup then cosine: lr * (step + 1) / warmup for step < warmup, then from lr down to
// lr * min_lr_ratio along half a cosine, reached at the last step (steps - 1).
float learning_rate(const TrainOptions& o, int step);

// Scales every gradient by max_norm / ||g|| when the global L2 norm ||g|| (in double)
// exceeds max_norm; returns ||g|| before clipping.
double clip_grad_norm(Weights& grad, float max_norm);

// AdamW (decoupled weight decay, bias-corrected moments). Weight decay applies to the
// projection matrices wq, wk, wv, wo, w1, w2, w3 and a separate classifier wcls; not to
// the RMSNorm weights (a decay would pull them toward 0, not toward their neutral 1) nor to
// the token embedding (rows of rare tokens get almost no gradient and would only shrink,
// and with a tied classifier that also shrinks their logits).
class AdamW {
public:
    AdamW(const Model& m, float beta1, float beta2, float eps, float weight_decay);
    void step(Model& m, Weights& grad, float lr);
    int steps_taken() const { return t_; }
    static bool decays(const Weights& w, const Tensor* tensor);

private:
    float beta1_, beta2_, eps_, wd_;
    int t_ = 0;
    std::vector<std::vector<float>> m_, v_;  // first and second moments, per tensor of Weights::tensors()
};

// Mean loss over o.eval_windows windows of o.seq + 1 tokens spread evenly over tokens
// (with a workspace, in its buffers).
double validation_loss(const Model& m, const std::vector<int>& tokens, const TrainOptions& o,
                       TrainWorkspace* workspace = nullptr);

// Trains m in place. train_tokens needs at least seq + 1 tokens; val_tokens may be empty
// (no validation) or must hold at least seq + 1.
void train(Model& m, const std::vector<int>& train_tokens, const std::vector<int>& val_tokens, const TrainOptions& o);

// kvshare train OUT.kvs ... (see --help); throws std::runtime_error on bad input.
int cmd_train(int argc, char** argv);
