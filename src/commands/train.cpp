#include "src/commands/train.h"
#include "src/formats/checkpoint.h"
#include "src/commands/args.h"
#include "src/commands/commands.h"
#include "src/model/memory.h"
#include "src/text/sentencepiece.h"
#include "src/text/stories.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include "reference/parallel.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

static const double kPi = 3.14159265358979323846;

float learning_rate(const TrainOptions& o, int step) {
    if (o.warmup > 0 && step < o.warmup) return o.lr * (float)(step + 1) / (float)o.warmup;
    const int decay_steps = o.steps - 1 - o.warmup;  // the cosine spans steps warmup .. steps-1
    if (decay_steps <= 0) return o.lr;
    double progress = (double)(step - o.warmup) / decay_steps;
    progress = std::min(1.0, std::max(0.0, progress));
    const double min_lr = (double)o.lr * o.min_lr_ratio;
    return (float)(min_lr + 0.5 * (o.lr - min_lr) * (1.0 + std::cos(kPi * progress)));
}

// ---------------------------------------------------------------------------
// Loops over every weight. Each is one pass over all the parameters (135M for SmolLM2,
// several times a step), written so that GCC vectorizes it, and on threads when the tensor
// pays for them; each element is computed alone, so the result does not depend on the
// number of threads.

// sum of x[i]^2 in double, in chunks of a fixed size added in order: the same sum on any
// number of threads
static double sum_of_squares(const float* x, size_t n) {
    const size_t chunk = 1 << 16;
    const size_t chunks = (n + chunk - 1) / chunk;
    std::vector<double> part(chunks);
#pragma omp parallel for schedule(static) if (worth_threads((double)n))
    for (size_t c = 0; c < chunks; c++) {
        double s = 0.0;
        const size_t end = std::min(n, (c + 1) * chunk);
#pragma omp simd reduction(+ : s)
        for (size_t i = c * chunk; i < end; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (double s : part) total += s;
    return total;
}

double clip_grad_norm(Weights& grad, float max_norm) {
    double ss = 0.0;
    for (auto* t : grad.tensors()) ss += sum_of_squares(t->data(), t->size());
    const double norm = std::sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        const float s = (float)(max_norm / norm);
        for (auto* t : grad.tensors()) {
            float* g = t->data();
            const size_t n = t->size();
#pragma omp parallel for simd schedule(static) if (worth_threads((double)n))
            for (size_t i = 0; i < n; i++) g[i] *= s;
        }
    }
    return norm;
}

// NaN or Inf in n floats: x * 0 is 0 for every finite x, NaN for the rest
static bool all_finite(const float* x, size_t n) {
    float zero = 0.0f;
#pragma omp simd reduction(+ : zero)
    for (size_t i = 0; i < n; i++) zero += x[i] * 0.0f;
    return zero == 0.0f;
}

// ---------------------------------------------------------------------------
// AdamW

bool AdamW::decays(const Weights& w, const Tensor* t) {
    return t == &w.wq || t == &w.wk || t == &w.wv || t == &w.wo || t == &w.w1 || t == &w.w2 || t == &w.w3 ||
           t == &w.wcls;
}

AdamW::AdamW(const Model& m, float beta1, float beta2, float eps, float weight_decay)
    : beta1_(beta1), beta2_(beta2), eps_(eps), wd_(weight_decay) {
    for (auto* t : const_cast<Weights&>(m.weights).tensors()) {
        m_.emplace_back(t->size(), 0.0f);
        v_.emplace_back(t->size(), 0.0f);
    }
}

void AdamW::step(Model& model, Weights& grad, float lr) {
    auto params = model.weights.tensors(), grads = grad.tensors();
    if (params.size() != m_.size()) fail("AdamW: the model is not the one the optimizer was made for");
    t_++;
    // p -= lr * (m / c1 / (sqrt(v / c2) + eps) + wd * p), with the bias corrections c1, c2
    // folded into two constants: p -= step * m / (sqrt(v) * root + eps) + lr * wd * p
    const double c1 = 1.0 - std::pow((double)beta1_, t_), c2 = 1.0 - std::pow((double)beta2_, t_);
    const float step = (float)(lr / c1), root = (float)(1.0 / std::sqrt(c2));
    const float b1 = beta1_, b2 = beta2_, eps = eps_;
    for (size_t i = 0; i < params.size(); i++) {
        Tensor& p = *params[i];
        const Tensor& g = *grads[i];
        if (p.size() != m_[i].size() || g.size() != p.size()) fail("AdamW: tensor sizes changed between steps");
        const float decay = decays(model.weights, params[i]) ? lr * wd_ : 0.0f;
        float* pi = p.data();
        const float* gi = g.data();
        float* mi = m_[i].data();
        float* vi = v_[i].data();
        const size_t n = p.size();
#pragma omp parallel for simd schedule(static) if (worth_threads((double)n))
        for (size_t j = 0; j < n; j++) {
            mi[j] = b1 * mi[j] + (1.0f - b1) * gi[j];
            vi[j] = b2 * vi[j] + (1.0f - b2) * gi[j] * gi[j];
            pi[j] -= step * mi[j] / (std::sqrt(vi[j]) * root + eps) + decay * pi[j];
        }
    }
}

// ---------------------------------------------------------------------------
// the loop

double validation_loss(const Model& m, const std::vector<int>& tokens, const TrainOptions& o, TrainWorkspace* workspace) {
    const int len = o.seq + 1;
    if ((int)tokens.size() < len)
        fail("the validation text has " + std::to_string(tokens.size()) + " tokens, fewer than seq + 1 = " + std::to_string(len));
    const int windows = std::max(1, o.eval_windows);
    const size_t span = tokens.size() - len;  // last possible start
    std::vector<int> batch;
    double total = 0;
    int done = 0;
    while (done < windows) {
        const int b = std::min(o.batch, windows - done);
        batch.resize((size_t)b * len);
        for (int i = 0; i < b; i++) {
            const size_t start = windows == 1 ? 0 : span * (done + i) / (windows - 1);
            std::copy_n(tokens.begin() + start, len, batch.begin() + (size_t)i * len);
        }
        total += model_loss(m, batch.data(), b, o.seq, o.iterations, workspace) * b;
        done += b;
    }
    return total / windows;
}

static void save_checkpoint(const std::string& path, Model& m) {
    if (path.empty()) return;
    m.random_weights = false;
    save_model(path, m);  // all or nothing (OutputFile): an interrupted save leaves the last checkpoint whole
}

// NaN or Inf anywhere in the weights.
static bool weights_finite(Model& m) {
    for (auto* t : m.weights.tensors())
        if (!all_finite(t->data(), t->size())) return false;
    return true;
}

static std::string number_text(double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", x);
    return buf;
}

void train(Model& m, const std::vector<int>& train_tokens, const std::vector<int>& val_tokens, const TrainOptions& o) {
    const Config& c = m.config;
    if (o.steps < 1) fail("train: --steps must be at least 1");
    if (o.batch < 1) fail("train: --batch must be at least 1");
    if (o.seq < 1 || o.seq > c.max_seq_len)
        fail("train: --seq " + std::to_string(o.seq) + " must be in 1.." + std::to_string(c.max_seq_len) + " (the model's context)");
    if (o.warmup < 0) fail("train: --warmup must not be negative");
    if (!(o.lr > 0)) fail("train: --lr must be positive");
    if (m.plan.iterates() && (o.iterations.m < 0 || o.iterations.b < 1))
        fail("train: --iterations m,b needs m >= 0 and b >= 1");
    const size_t len = (size_t)o.seq + 1;
    if (train_tokens.size() < len)
        fail("train: the training text has " + std::to_string(train_tokens.size()) + " tokens, fewer than seq + 1 = " + std::to_string(len));
    if (!val_tokens.empty() && val_tokens.size() < len)
        fail("train: the validation text has " + std::to_string(val_tokens.size()) + " tokens, fewer than seq + 1 = " + std::to_string(len));
    for (const auto* v : {&train_tokens, &val_tokens})
        for (int t : *v)
            if (t < 0 || t >= c.vocab_size)
                fail("train: token id " + std::to_string(t) + " is outside the model's vocabulary of " + std::to_string(c.vocab_size));

    Model grad_model;
    grad_model.config = m.config;
    grad_model.plan = m.plan;
    allocate_weights(grad_model);
    Weights& grad = grad_model.weights;
    AdamW opt(m, o.beta1, o.beta2, o.adam_eps, o.weight_decay);
    TrainWorkspace workspace;  // the activations of a step, allocated at the first and reused
    Rng rng(o.seed);
    std::vector<int> batch((size_t)o.batch * len);
    const size_t starts = train_tokens.size() - len + 1;

    double window_loss = 0, window_time = 0;
    int window_steps = 0;
    for (int step = 0; step < o.steps; step++) {
        for (int b = 0; b < o.batch; b++) {
            const size_t start = starts > 0xFFFFFFFFull ? ((uint64_t)rng.next_u32() << 32 | rng.next_u32()) % starts
                                                       : rng.next_u32() % starts;
            std::copy_n(train_tokens.begin() + start, len, batch.begin() + (size_t)b * len);
        }
        const double t0 = now_seconds();
        for (auto* t : grad.tensors()) std::fill(t->begin(), t->end(), 0.0f);
        // NaN or Inf stops training where it appears, with the step: the last checkpoint
        // written stays the last good one, and no later one can hold NaN weights
        const std::string at = "at step " + std::to_string(step + 1) + " of " + std::to_string(o.steps);
        const std::string hint = "; try a lower --lr (it is " + number_text(o.lr) + ") or --clip";
        const double loss = model_loss_and_grad(m, batch.data(), o.batch, o.seq, o.iterations, &grad, &workspace);
        if (!std::isfinite(loss)) fail("train: the loss became " + number_text(loss) + " " + at + hint);
        const double norm = clip_grad_norm(grad, o.grad_clip);
        if (!std::isfinite(norm)) fail("train: the gradient norm became " + number_text(norm) + " " + at + hint);
        const float lr = learning_rate(o, step);
        opt.step(m, grad, lr);
        if (!weights_finite(m)) fail("train: the weights became NaN or Inf " + at + " (loss " + number_text(loss) + " before it)" + hint);
        window_time += now_seconds() - t0;
        window_loss += loss;
        window_steps++;

        const bool last = step + 1 == o.steps;
        const bool eval = last || (o.eval_every > 0 && (step + 1) % o.eval_every == 0);
        const bool log = eval || (o.log_every > 0 && (step + 1) % o.log_every == 0);
        double val = -1;
        if (eval && !val_tokens.empty()) {
            val = validation_loss(m, val_tokens, o, &workspace);
            if (!std::isfinite(val))
                fail("train: the validation loss became " + number_text(val) + " at step " + std::to_string(step + 1) +
                     "; try a lower --lr (it is " + number_text(o.lr) + ") or --clip");
        }
        if (log && !o.quiet) {
            char line[256];
            const double tps = window_time > 0 ? (double)window_steps * o.batch * o.seq / window_time : 0.0;
            int k = std::snprintf(line, sizeof line, "step %*d/%d | loss %.4f", (int)std::to_string(o.steps).size(),
                                  step + 1, o.steps, window_loss / window_steps);
            if (val >= 0) k += std::snprintf(line + k, sizeof line - k, " | val %.4f", val);
            std::snprintf(line + k, sizeof line - k, " | lr %.2e | grad norm %.3f | %.0f tok/s", lr, norm, tps);
            std::fprintf(stderr, "%s\n", line);
            window_loss = window_time = 0;
            window_steps = 0;
        }
        if (eval) save_checkpoint(o.out_path, m);
    }
    m.random_weights = false;
}

// ---------------------------------------------------------------------------
// kvshare train

static const char* kTrainHelp =
    "usage: kvshare train OUT.kvs (--text FILE | --stories N) [options]\n"
    "\n"
    "Trains a model on the CPU and writes it to OUT.kvs (at every validation and at the end).\n"
    "Ranges are in brackets. Training stops with an error at the step where the loss, the\n"
    "gradient or the weights become NaN or Inf; the last checkpoint written stays as it was.\n"
    "\n"
    "data:\n"
    "  --text FILE        train on this text; its last --val-frac is held out for validation\n"
    "  --stories N        train on N generated stories, validate on N/10 held-out ones [1..10000000]\n"
    "  --val-frac F       fraction of --text held out (default 0.1) [0..0.99]\n"
    "  --tokenizer, -z T  a tokenizer file: llama2.c's tokenizer.bin, SentencePiece's tokenizer.model or a\n"
    "                     byte-level tokenizer.json (default: with --init, the model's own, as generate\n"
    "                     finds it; else the built-in byte tokenizer). --text is encoded with BOS first\n"
    "                     when the tokenizer asks for one\n"
    "model (a new one from a preset or explicit sizes, or --init):\n"
    "  --preset NAME      tiny, demo, stories15M, ... (default demo)\n"
    "  --dim D --hidden-dim H --layers L --heads N --kv-heads K --context C\n"
    "                     override the preset's sizes [D 1..65536, H 1..262144, L 1..1024, N divides D,\n"
    "                     K divides N, C 1..1048576]\n"
    "  --vocab V          the tokenizer's size (default: 259 for the byte tokenizer, else\n"
    "                     the preset's; tokenizer.bin does not record it) [1..4194304]\n"
    "  --init MODEL       continue training MODEL (any format kvshare reads)\n"
    "  --plan PLAN        sharing plan (default standard; with --init, the model's own)\n"
    "training:\n"
    "  --steps N          optimizer steps (default 1000) [1..100000000]\n"
    "  --batch B          sequences per step (default 8) [1..4096]\n"
    "  --seq N            tokens per sequence (default 64) [1..the model's context]\n"
    "  --lr F             peak learning rate (default 1e-3), cosine down to 0.1x [above 0, at most 1]\n"
    "  --warmup N         linear warmup steps (default min(100, steps / 10)) [0..steps]\n"
    "  --weight-decay F   AdamW decay of the projection matrices (default 0.1) [0..10]\n"
    "  --clip F           global gradient-norm clip (default 1.0; 0 = off) [0..1000000]\n"
    "  --eval-every N     validation loss and checkpoint every N steps (default 100) [0..steps]\n"
    "  --eval-windows N   validation windows of seq + 1 tokens (default 16) [1..10000]\n"
    "  --log-every N      progress line every N steps (default 10) [0..steps]\n"
    "  --iterations m,b   plans with upward sources: m iterations without gradient, then b\n"
    "                     with (default 7,2; b >= 2 so upward-read K/V weights learn) [m 0..100, b 1..100]\n"
    "  -s SEED            seed for the initial weights and the batches (default 1) [any 32-bit integer]\n"
    "The weights, gradients, optimizer state, one step's activations and the tokens are checked\n"
    "against the memory available before anything is allocated.\n";

static TrainIterations parse_iterations(const std::string& s) {
    const std::vector<std::string> parts = split(s, ',');
    if (parts.size() != 2) fail("kvshare train --iterations: expected m,b (e.g. 7,2), got '" + s + "'");
    TrainIterations it;
    it.m = parse_int_in(parts[0], "kvshare train --iterations m", 0, kMaxTrainIterations);
    it.b = parse_int_in(parts[1], "kvshare train --iterations b", 1, kMaxTrainIterations);
    return it;
}

// Tokens of `count` stories of a split, each with BOS, encoded as they are made (no list of
// stories is ever built); progress on stderr every 10 seconds of a long run.
static std::vector<int> encode_stories(const Tokenizer& tok, Split split, int count) {
    std::vector<int> tokens;
    StoryStream stories(split);
    double last_report = now_seconds();
    for (int i = 0; i < count; i++) {
        const std::vector<int> t = tok.encode(stories.next(), true, false);
        tokens.insert(tokens.end(), t.begin(), t.end());
        if (now_seconds() - last_report > 10 && i + 1 < count) {
            std::fprintf(stderr, "kvshare train: encoded %d of %d stories\n", i + 1, count);
            last_report = now_seconds();
        }
    }
    return tokens;
}

int cmd_train(int argc, char** argv) {
    const Args a = parse_args(argc, argv, 2, "kvshare train",
                              {"--text", "--stories", "--val-frac", "--tokenizer", "-z", "--preset", "--dim",
                               "--hidden-dim", "--layers", "--heads", "--kv-heads", "--context", "--vocab", "--init", "--plan",
                               "--steps", "--batch", "--seq", "--lr", "--warmup", "--weight-decay", "--clip",
                               "--eval-every", "--eval-windows", "--log-every", "--iterations", "-s"},
                              {});
    if (a.has("--help")) {
        std::fputs(kTrainHelp, stdout);
        return 0;
    }
    const std::string out = a.need_positional(0, "the output model path OUT.kvs");
    if (a.positional.size() > 1) fail("kvshare train: unexpected argument '" + a.positional[1] + "' (see --help)");
    check_output_file(out, "kvshare train: OUT.kvs");
    if (a.has("--text") == a.has("--stories")) fail("kvshare train: give exactly one of --text FILE or --stories N");
    if (a.has("--tokenizer") && a.has("-z")) fail("kvshare train: give --tokenizer or -z, not both");
    if (a.has("--init"))
        for (const char* o : {"--preset", "--dim", "--hidden-dim", "--layers", "--heads", "--kv-heads", "--context", "--vocab"})
            if (a.has(o)) fail(std::string("kvshare train: ") + o + " describes a new model; it cannot go with --init");
    if (a.has("--stories") && a.has("--val-frac"))
        fail("kvshare train: --val-frac goes with --text; --stories holds out its own stories");

    TrainOptions o;
    o.steps = a.get_int("--steps", o.steps, 1, 100000000);
    o.batch = a.get_int("--batch", o.batch, 1, 4096);
    o.seq = a.get_int("--seq", o.seq, 1, 1 << 20);
    o.lr = a.get_float("--lr", o.lr, 0.0f, 1.0f);
    if (!(o.lr > 0)) fail("kvshare train --lr must be above 0 (and at most 1), got " + a.get("--lr"));
    o.warmup = a.get_int("--warmup", std::min(o.warmup, o.steps / 10), 0, o.steps);
    o.weight_decay = a.get_float("--weight-decay", o.weight_decay, 0.0f, 10.0f);
    o.grad_clip = a.get_float("--clip", o.grad_clip, 0.0f, 1e6f);
    o.eval_every = a.get_int("--eval-every", o.eval_every, 0, o.steps);
    o.eval_windows = a.get_int("--eval-windows", o.eval_windows, 1, 10000);
    o.log_every = a.get_int("--log-every", o.log_every, 0, o.steps);
    if (a.has("--iterations")) o.iterations = parse_iterations(a.get("--iterations"));
    const int seed = a.get_int("-s", 1, INT_MIN, INT_MAX);
    o.seed = (uint64_t)seed;
    o.out_path = out;
    const std::string text_path = a.input_file("--text");
    const float frac = a.get_float("--val-frac", 0.1f, 0.0f, 0.99f);
    const int n_stories = a.get_int("--stories", 0, 1, 10000000);
    const std::string tok_path = a.has("-z") ? a.input_file("-z") : a.input_file("--tokenizer");
    const std::string init_path = a.model_path("--init");  // any MODEL, a folder too

    // tokenizer and model: the new model's weights are checked (with the rest of the run)
    // before they are allocated; a loaded one's are checked as it loads
    Model m;
    Config c;
    Plan plan;
    Tokenizer tok = Tokenizer::bytes();
    if (!init_path.empty()) {
        m = load_model(init_path, a.get("--plan"));
        c = m.config;
        plan = m.plan;
        // -z, else the model's own (a GGUF's metadata, a folder's files), as generate and eval
        tok = tokenizer_for(tok_path, m);
    } else {
        c = preset_config(a.get("--preset", "demo"));
        c.dim = a.get_int("--dim", c.dim, 1, 1 << 16);
        c.hidden_dim = a.get_int("--hidden-dim", c.hidden_dim, 1, 1 << 18);
        c.n_layers = a.get_int("--layers", c.n_layers, 1, 1024);
        c.n_heads = a.get_int("--heads", c.n_heads, 1, 1 << 16);
        c.n_kv_heads = a.get_int("--kv-heads", a.has("--heads") && !a.has("--kv-heads") ? c.n_heads : c.n_kv_heads, 1, 1 << 16);
        c.max_seq_len = a.get_int("--context", c.max_seq_len, 1, 1 << 20);
        // tokenizer.bin does not store its size: --vocab, else the preset's with a tokenizer
        // file, else the byte tokenizer's 259
        c.vocab_size = a.get_int("--vocab", tok_path.empty() ? tok.vocab_size() : c.vocab_size, 1, 1 << 22);
        validate_config(c);
        plan = parse_plan(a.get("--plan", "standard"), c.n_layers);
        if (!tok_path.empty()) tok = load_tokenizer_file(tok_path, c.vocab_size);
        else if (c.vocab_size != tok.vocab_size())
            fail("kvshare train: the built-in byte tokenizer has " + std::to_string(tok.vocab_size()) +
                 " tokens, not --vocab " + std::to_string(c.vocab_size) + "; give a tokenizer with --tokenizer");
    }
    if (o.seq > c.max_seq_len)
        fail("kvshare train --seq " + std::to_string(o.seq) + " exceeds the model's context of " + std::to_string(c.max_seq_len));

    // everything the run will hold, before any of it is taken
    const size_t weights = weight_bytes(c, plan.n_kv_layers());
    // at most one token per byte (byte fallback) plus a BOS per story; --text is read, then
    // split into train and validation copies
    const size_t data_bytes =
        text_path.empty() ? (size_t)(n_stories * 1.1 * (mean_story_bytes() + 1)) * sizeof(int)
                          : sat_add(file_size(text_path), sat_mul(sat_add(file_size(text_path), 1), 3 * sizeof(int)));
    MemoryNeed need;
    if (init_path.empty()) need.host("weights", weights);
    need.host("gradients and AdamW's two moments", sat_mul(weights, 3));
    need.host("one step's activations (" + std::to_string(o.batch) + " x " + std::to_string(o.seq) + " tokens)",
              train_step_bytes(c, plan, o.batch, o.seq, o.iterations.b));
    need.host("the training tokens", data_bytes);
    check_memory(need, "kvshare train", "lower --batch or --seq, a smaller model, or less data");
    if (init_path.empty()) m = init_model(c, plan, (uint64_t)seed);

    // data
    std::vector<int> train_tokens, val_tokens;
    if (!text_path.empty()) {
        const std::vector<int> all = tok.encode(read_text_file(text_path, "kvshare train --text"), tok.add_bos, false);
        const size_t n_val = (size_t)(all.size() * (double)frac);
        train_tokens.assign(all.begin(), all.end() - n_val);
        val_tokens.assign(all.end() - n_val, all.end());
        if (frac > 0 && val_tokens.size() < (size_t)o.seq + 1)
            fail("kvshare train: the held-out part of --text has " + std::to_string(val_tokens.size()) +
                 " tokens, fewer than --seq + 1; use a longer text, a larger --val-frac or --val-frac 0");
    } else {
        train_tokens = encode_stories(tok, Split::Train, n_stories);
        val_tokens = encode_stories(tok, Split::Validation, std::max(1, n_stories / 10));
        if (val_tokens.size() < (size_t)o.seq + 1) val_tokens.clear();  // too few held-out stories to measure
    }

    std::fprintf(stderr, "kvshare train: %s, plan %s (%d KV layers), %.2fM parameters, %zu train / %zu validation tokens\n",
                 init_path.empty() ? "new model" : init_path.c_str(), m.plan.spec().c_str(), m.plan.n_kv_layers(),
                 m.n_params() / 1e6, train_tokens.size(), val_tokens.size());
    if (m.plan.iterates())
        std::fprintf(stderr, "kvshare train: cyclic blocks train with m = %d iterations without gradient, b = %d with\n",
                     o.iterations.m, o.iterations.b);
    train(m, train_tokens, val_tokens, o);
    std::fprintf(stderr, "kvshare train: wrote %s\n", out.c_str());
    return 0;
}
