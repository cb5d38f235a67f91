// kvshare eval: mean next-token cross-entropy and perplexity of a model + plan on a text.
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/commands/commands.h"
#include "src/commands/eval.h"
#include "reference/parallel.h"
#include "src/model/memory.h"
#include "src/text/stories.h"
#include <algorithm>
#include <cctype>
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <climits>
#include <cmath>
#include <cstdio>

double cross_entropy(const float* logits, int vocab, int target) {
    float max = logits[0];  // a max is exact in any order, so it may be vectorized
#pragma omp simd reduction(max : max)
    for (int i = 1; i < vocab; i++) max = logits[i] > max ? logits[i] : max;
    double sum = 0.0;
    for (int i = 0; i < vocab; i++) sum += std::exp((double)logits[i] - max);
    return std::log(sum) + max - logits[target];
}

EvalResult evaluate(Backend& be, const Model& m, const std::vector<int>& tokens, int context, const PrefillOptions& prefill) {
    if (tokens.size() < 2) fail("the evaluation text has fewer than 2 tokens");
    PrefillOptions opt = prefill;
    opt.all_positions = true;
    EvalResult r;
    double total = 0.0;
    std::vector<double> losses;  // of one window's positions
    // non-overlapping windows of context inputs; each predicts its next tokens
    for (size_t start = 0; start + 1 < tokens.size(); start += context) {
        const int n = (int)std::min<size_t>(context, tokens.size() - 1 - start);
        be.prefill(&tokens[start], n, opt);
        const float* logits = be.logits();
        check_finite_logits(logits, (size_t)n * m.config.vocab_size, "window " + std::to_string(r.windows + 1));
        // every position's loss on its own, added in order: the same total on any number of threads
        const int V = m.config.vocab_size;
        losses.resize(n);
#pragma omp parallel for schedule(static) if (worth_threads(16.0 * n * V))  // an exp is ~16 multiply-adds
        for (int t = 0; t < n; t++) losses[t] = cross_entropy(logits + (size_t)t * V, V, tokens[start + t + 1]);
        for (int t = 0; t < n; t++) total += losses[t];
        r.predicted += n;
        r.windows++;
    }
    r.mean_loss = total / r.predicted;
    r.perplexity = std::exp(r.mean_loss);
    return r;
}

std::vector<int> encode_documents(const Tokenizer& tok, const std::vector<std::string>& docs) {
    std::vector<int> tokens;
    for (const std::string& d : docs) {
        if (d.empty()) continue;
        std::vector<int> t = tok.encode(d, tok.add_bos, false);
        tokens.insert(tokens.end(), t.begin(), t.end());
    }
    return tokens;
}

int recall_probe(Backend& be, const Model& m, const Tokenizer& tok, const RecallProbe& p, const PrefillOptions& prefill) {
    std::vector<int> prompt = tok.encode(p.prompt, tok.add_bos, false);
    const std::string want = " " + p.answer;
    if ((int)prompt.size() + (int)want.size() > be.context()) return -1;  // does not fit: not counted
    be.prefill(prompt.data(), (int)prompt.size(), prefill);
    // greedy until the continuation is one character past the answer (to see the word end)
    std::string got;
    int prev = prompt.back();
    std::vector<int> next(1);
    for (;;) {
        const float* logits = be.logits();
        check_finite_logits(logits, m.config.vocab_size, "a recall probe");
        next[0] = (int)(std::max_element(logits, logits + m.config.vocab_size) - logits);
        got += tok.decode_piece(prev, next[0]);
        prev = next[0];
        if (got.size() > want.size() || be.pos() >= be.context()) break;
        be.decode(next.data());
    }
    // the word must be complete: followed by a non-letter or nothing
    return got.compare(0, want.size(), want) == 0 && (got.size() == want.size() || !std::isalpha((unsigned char)got[want.size()]));
}

RecallResult recall_accuracy(Backend& be, const Model& m, const Tokenizer& tok, const std::vector<RecallProbe>& probes,
                             const PrefillOptions& prefill) {
    RecallResult r;
    for (const RecallProbe& p : probes) {
        const int score = recall_probe(be, m, tok, p, prefill);
        if (score < 0) continue;
        r.probes++;
        r.correct += score;
    }
    return r;
}

int cmd_eval(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare eval", {"-z", "--data", "--plan", "--device", "--prefill", "--upward-rule", "--context", "--probes"},
                        {"--per-line"});
    if (a.has("--help")) {
        std::printf("usage: kvshare eval MODEL [-z TOKENIZER] --data FILE [--plan PLAN] [--device cpu|cuda]\n"
                    "                   [--prefill MODE] [--upward-rule paper|authors] [--context N] [--per-line]\n"
                    "                   [--probes N]\n"
                    "Mean next-token loss (nats) and perplexity over FILE, read in non-overlapping windows of\n"
                    "N tokens (1..the model's max_seq_len, the default), each starting a fresh sequence.\n"
                    "--per-line encodes every non-empty line as its own document with BOS, as\n"
                    "`kvshare train --stories` does with each story (use it for `kvshare stories` output).\n"
                    "--probes N (1..2147483647) also (or, without --data, only) runs N recall probes from the\n"
                    "story generator: a story prefix whose next word is a name or object mentioned earlier;\n"
                    "greedy decoding must produce it. Probes are made one at a time; a long run reports its\n"
                    "progress on stderr every 10 seconds. --upward-rule: as kvshare generate --help says.\n");
        return 0;
    }
    const std::string path = a.need_model(0);
    a.at_most_positional(1);
    if (!a.has("--data") && !a.has("--probes")) fail("kvshare eval: --data FILE (or --probes N) is required");
    const std::string data = a.input_file("--data");
    const int probes = a.get_int("--probes", 0, 1, INT_MAX);
    const std::string tok_path = a.input_file("-z");
    const Device device = parse_device(a.get("--device", "cpu"));
    if (a.has("--prefill")) parse_prefill(a.get("--prefill"));  // its errors before the model is loaded
    const UpwardRule rule = parse_upward_rule(a.get("--upward-rule", "paper"));
    Model m = load_model(path, a.get("--plan"));
    m.plan.upward_rule = rule;
    const PrefillOptions prefill = parse_prefill(a.get("--prefill"), m);
    Tokenizer tok = tokenizer_for(tok_path, m);
    const int context = a.get_int("--context", m.config.max_seq_len, 1, m.config.max_seq_len);

    MemoryNeed need;
    add_backend(need, m, device, 1, context, context, true);
    if (!data.empty()) {
        const size_t bytes = file_size(data);
        // the text, its lines (--per-line), and at most one token per byte plus a BOS per line
        need.host("--data text and its tokens", sat_add(sat_mul(bytes, 2 + 2 * sizeof(int)), 64));
    }
    check_memory(need, "kvshare eval", "a smaller --context or --data file");
    auto be = make_backend(m, device, 1, context);

    if (probes > 0) {
        ProbeStream stream(12345);
        RecallResult r;
        double last_report = now_seconds();
        for (int i = 0; i < probes; i++) {
            const int score = recall_probe(*be, m, tok, stream.next(), prefill);
            if (score >= 0) {
                r.probes++;
                r.correct += score;
            }
            if (now_seconds() - last_report > 10 && i + 1 < probes) {
                std::fprintf(stderr, "probes: %d of %d done, recall so far %d of %d\n", i + 1, probes, r.correct, r.probes);
                last_report = now_seconds();
            }
        }
        if (r.probes == 0)
            fail("kvshare eval: no recall probe fits the context of " + std::to_string(context) +
                 " tokens (a probe is a story prefix of a few hundred bytes); use a longer --context or model");
        std::printf("plan %s: recall %d of %d probes (%.1f%%)\n", m.plan.name.c_str(), r.correct, r.probes,
                    r.probes ? 100.0 * r.correct / r.probes : 0.0);
        std::fflush(stdout);
        if (data.empty()) return 0;
    }
    const std::string text = read_text_file(data, "kvshare eval --data");
    if (text.empty()) fail("kvshare eval: '" + data + "' is empty");
    std::vector<int> tokens = a.has("--per-line") ? encode_documents(tok, split(text, '\n')) : tok.encode(text, tok.add_bos, false);
    double t0 = now_seconds();
    EvalResult r = evaluate(*be, m, tokens, context, prefill);
    double t1 = now_seconds();
    if (!std::isfinite(r.mean_loss)) fail("kvshare eval: the mean loss is not finite (" + std::to_string(r.mean_loss) + ")");
    std::printf("plan %s: %zu tokens in %d windows, mean loss %.4f, perplexity %.3f\n", m.plan.name.c_str(), r.predicted,
                r.windows, r.mean_loss, r.perplexity);
    std::fprintf(stderr, "%.1f tokens/s on %s\n", r.predicted / (t1 - t0 + 1e-12), be->device_name().c_str());
    return 0;
}
