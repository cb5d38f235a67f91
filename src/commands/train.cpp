#include "src/commands/train.h"
#include "src/formats/checkpoint.h"
#include "src/commands/args.h"
#include "src/text/stories.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <algorithm>
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

double clip_grad_norm(Weights& grad, float max_norm) {
    double ss = 0.0;
    for (auto* t : grad.tensors())
        for (float g : *t) ss += (double)g * g;
    const double norm = std::sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        const float s = (float)(max_norm / norm);
        for (auto* t : grad.tensors())
            for (float& g : *t) g *= s;
    }
    return norm;
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
    const double c1 = 1.0 - std::pow((double)beta1_, t_), c2 = 1.0 - std::pow((double)beta2_, t_);
    for (size_t i = 0; i < params.size(); i++) {
        Tensor& p = *params[i];
        const Tensor& g = *grads[i];
        if (p.size() != m_[i].size() || g.size() != p.size()) fail("AdamW: tensor sizes changed between steps");
        const float wd = decays(model.weights, params[i]) ? wd_ : 0.0f;
        float* mi = m_[i].data();
        float* vi = v_[i].data();
#pragma omp parallel for schedule(static)
        for (size_t j = 0; j < p.size(); j++) {
            mi[j] = beta1_ * mi[j] + (1.0f - beta1_) * g[j];
            vi[j] = beta2_ * vi[j] + (1.0f - beta2_) * g[j] * g[j];
            const double mhat = mi[j] / c1, vhat = vi[j] / c2;
            p[j] -= (float)(lr * (mhat / (std::sqrt(vhat) + eps_) + wd * (double)p[j]));
        }
    }
}

// ---------------------------------------------------------------------------
// the loop

double validation_loss(const Model& m, const std::vector<int>& tokens, const TrainOptions& o) {
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
        total += model_loss(m, batch.data(), b, o.seq, o.iterations) * b;
        done += b;
    }
    return total / windows;
}

static void save_checkpoint(const std::string& path, Model& m) {
    if (path.empty()) return;
    m.random_weights = false;
    const std::string tmp = path + ".tmp";
    save_model(tmp, m);  // then rename, so an interrupted save leaves the last checkpoint whole
    if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename '" + tmp + "' to '" + path + "'");
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
    Rng rng(o.seed);
    std::vector<int> batch(o.batch * len);
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
        const double loss = model_loss_and_grad(m, batch.data(), o.batch, o.seq, o.iterations, &grad);
        if (!std::isfinite(loss)) fail("train: the loss became " + std::to_string(loss) + " at step " + std::to_string(step + 1) + " (try a lower --lr)");
        const double norm = clip_grad_norm(grad, o.grad_clip);
        const float lr = learning_rate(o, step);
        opt.step(m, grad, lr);
        window_time += now_seconds() - t0;
        window_loss += loss;
        window_steps++;

        const bool last = step + 1 == o.steps;
        const bool eval = last || (o.eval_every > 0 && (step + 1) % o.eval_every == 0);
        const bool log = eval || (o.log_every > 0 && (step + 1) % o.log_every == 0);
        double val = -1;
        if (eval && !val_tokens.empty()) val = validation_loss(m, val_tokens, o);
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
    "\n"
    "data:\n"
    "  --text FILE        train on this text; its last --val-frac is held out for validation\n"
    "  --stories N        train on N generated stories, validate on N/10 held-out ones\n"
    "  --val-frac F       fraction of --text held out (default 0.1)\n"
    "  --tokenizer, -z T  a llama2.c tokenizer.bin (default: the built-in byte tokenizer)\n"
    "model (a new one from a preset or explicit sizes, or --init):\n"
    "  --preset NAME      tiny, demo, stories15M, ... (default demo)\n"
    "  --dim D --hidden-dim H --layers L --heads N --kv-heads K --context C\n"
    "                     override the preset's sizes\n"
    "  --vocab V          the tokenizer's size (default: 259 for the byte tokenizer, else\n"
    "                     the preset's; tokenizer.bin does not record it)\n"
    "  --init MODEL       continue training MODEL (any format kvshare reads)\n"
    "  --plan PLAN        sharing plan (default standard; with --init, the model's own)\n"
    "training:\n"
    "  --steps N          optimizer steps (default 1000)\n"
    "  --batch B          sequences per step (default 8)\n"
    "  --seq N            tokens per sequence (default 64)\n"
    "  --lr F             peak learning rate (default 1e-3), cosine down to 0.1x\n"
    "  --warmup N         linear warmup steps (default min(100, steps / 10))\n"
    "  --weight-decay F   AdamW decay of the projection matrices (default 0.1)\n"
    "  --clip F           global gradient-norm clip (default 1.0; 0 = off)\n"
    "  --eval-every N     validation loss and checkpoint every N steps (default 100)\n"
    "  --eval-windows N   validation windows of seq + 1 tokens (default 16)\n"
    "  --log-every N      progress line every N steps (default 10)\n"
    "  --iterations m,b   plans with upward sources: m iterations without gradient, then b\n"
    "                     with (default 7,2; b >= 2 so upward-read K/V weights learn)\n"
    "  -s SEED            seed for the initial weights and the batches (default 1)\n";

static TrainIterations parse_iterations(const std::string& s) {
    const std::vector<std::string> parts = split(s, ',');
    if (parts.size() != 2) fail("kvshare train --iterations: expected m,b (e.g. 7,2), got '" + s + "'");
    TrainIterations it;
    it.m = parse_int(parts[0], "kvshare train --iterations m");
    it.b = parse_int(parts[1], "kvshare train --iterations b");
    if (it.m < 0 || it.b < 1) fail("kvshare train --iterations: need m >= 0 and b >= 1, got '" + s + "'");
    return it;
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
    if (a.has("--text") == a.has("--stories")) fail("kvshare train: give exactly one of --text FILE or --stories N");
    if (a.has("--tokenizer") && a.has("-z")) fail("kvshare train: give --tokenizer or -z, not both");
    if (a.has("--init"))
        for (const char* o : {"--preset", "--dim", "--hidden-dim", "--layers", "--heads", "--kv-heads", "--context", "--vocab"})
            if (a.has(o)) fail(std::string("kvshare train: ") + o + " describes a new model; it cannot go with --init");

    TrainOptions o;
    o.steps = a.get_int("--steps", o.steps);
    o.batch = a.get_int("--batch", o.batch);
    o.seq = a.get_int("--seq", o.seq);
    o.lr = a.get_float("--lr", o.lr);
    o.warmup = a.get_int("--warmup", std::min(o.warmup, o.steps / 10));
    o.weight_decay = a.get_float("--weight-decay", o.weight_decay);
    o.grad_clip = a.get_float("--clip", o.grad_clip);
    o.eval_every = a.get_int("--eval-every", o.eval_every);
    o.eval_windows = a.get_int("--eval-windows", o.eval_windows);
    o.log_every = a.get_int("--log-every", o.log_every);
    if (a.has("--iterations")) o.iterations = parse_iterations(a.get("--iterations"));
    const int seed = a.get_int("-s", 1);
    o.seed = (uint64_t)seed;
    o.out_path = out;
    if (o.steps < 1) fail("kvshare train --steps must be at least 1");
    if (o.batch < 1) fail("kvshare train --batch must be at least 1");
    if (o.seq < 1) fail("kvshare train --seq must be at least 1");
    if (o.warmup < 0) fail("kvshare train --warmup must not be negative");
    if (!(o.lr > 0)) fail("kvshare train --lr must be positive");
    if (o.weight_decay < 0) fail("kvshare train --weight-decay must not be negative");
    if (o.grad_clip < 0) fail("kvshare train --clip must not be negative");
    if (o.eval_every < 0 || o.log_every < 0) fail("kvshare train --eval-every and --log-every must not be negative");
    if (o.eval_windows < 1) fail("kvshare train --eval-windows must be at least 1");

    // tokenizer and model
    const std::string tok_path = a.get("--tokenizer", a.get("-z"));
    Model m;
    Tokenizer tok = Tokenizer::bytes();
    if (a.has("--init")) {
        m = load_model(a.get("--init"), a.get("--plan"));
        if (!tok_path.empty()) tok = Tokenizer::load(tok_path, m.config.vocab_size);
        else if (tok.vocab_size() != m.config.vocab_size)
            fail("kvshare train: " + a.get("--init") + " has a vocabulary of " + std::to_string(m.config.vocab_size) +
                 " tokens, the built-in byte tokenizer " + std::to_string(tok.vocab_size()) + "; give its tokenizer with --tokenizer");
    } else {
        Config c = preset_config(a.get("--preset", "demo"));
        c.dim = a.get_int("--dim", c.dim);
        c.hidden_dim = a.get_int("--hidden-dim", c.hidden_dim);
        c.n_layers = a.get_int("--layers", c.n_layers);
        c.n_heads = a.get_int("--heads", c.n_heads);
        c.n_kv_heads = a.get_int("--kv-heads", a.has("--heads") && !a.has("--kv-heads") ? c.n_heads : c.n_kv_heads);
        c.max_seq_len = a.get_int("--context", c.max_seq_len);
        // tokenizer.bin does not store its size: --vocab, else the preset's with a tokenizer
        // file, else the byte tokenizer's 259
        c.vocab_size = a.get_int("--vocab", tok_path.empty() ? tok.vocab_size() : c.vocab_size);
        if (!tok_path.empty()) tok = Tokenizer::load(tok_path, c.vocab_size);
        else if (c.vocab_size != tok.vocab_size())
            fail("kvshare train: the built-in byte tokenizer has " + std::to_string(tok.vocab_size()) +
                 " tokens, not --vocab " + std::to_string(c.vocab_size) + "; give a tokenizer with --tokenizer");
        validate_config(c);
        m = init_model(c, parse_plan(a.get("--plan", "standard"), c.n_layers), (uint64_t)seed);
    }
    if (o.seq > m.config.max_seq_len)
        fail("kvshare train --seq " + std::to_string(o.seq) + " exceeds the model's context of " + std::to_string(m.config.max_seq_len));

    // data
    std::vector<int> train_tokens, val_tokens;
    if (a.has("--text")) {
        const float frac = a.get_float("--val-frac", 0.1f);
        if (!(frac >= 0 && frac < 1)) fail("kvshare train --val-frac must be in [0, 1)");
        const std::vector<int> all = tok.encode(read_text_file(a.get("--text")), true, false);
        const size_t n_val = (size_t)(all.size() * (double)frac);
        train_tokens.assign(all.begin(), all.end() - n_val);
        val_tokens.assign(all.end() - n_val, all.end());
        if (frac > 0 && val_tokens.size() < (size_t)o.seq + 1)
            fail("kvshare train: the held-out part of --text has " + std::to_string(val_tokens.size()) +
                 " tokens, fewer than --seq + 1; use a longer text, a larger --val-frac or --val-frac 0");
    } else {
        if (a.has("--val-frac")) fail("kvshare train: --val-frac goes with --text; --stories holds out its own stories");
        const int n = a.get_int("--stories", 0);
        if (n < 1) fail("kvshare train --stories must be at least 1");
        for (const std::string& s : story_split(Split::Train, n)) {
            std::vector<int> t = tok.encode(s, true, false);
            train_tokens.insert(train_tokens.end(), t.begin(), t.end());
        }
        for (const std::string& s : story_split(Split::Validation, std::max(1, n / 10))) {
            std::vector<int> t = tok.encode(s, true, false);
            val_tokens.insert(val_tokens.end(), t.begin(), t.end());
        }
        if (val_tokens.size() < (size_t)o.seq + 1) val_tokens.clear();  // too few held-out stories to measure
    }

    std::fprintf(stderr, "kvshare train: %s, plan %s (%d KV layers), %.2fM parameters, %zu train / %zu validation tokens\n",
                 a.has("--init") ? a.get("--init").c_str() : "new model", m.plan.spec().c_str(), m.plan.n_kv_layers(),
                 m.n_params() / 1e6, train_tokens.size(), val_tokens.size());
    if (m.plan.iterates())
        std::fprintf(stderr, "kvshare train: cyclic blocks train with m = %d iterations without gradient, b = %d with\n",
                     o.iterations.m, o.iterations.b);
    train(m, train_tokens, val_tokens, o);
    std::fprintf(stderr, "kvshare train: wrote %s\n", out.c_str());
    return 0;
}
