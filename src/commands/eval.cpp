// kvshare eval: mean next-token cross-entropy and perplexity of a model + plan on a text.
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/commands/commands.h"
#include "src/commands/eval.h"
#include "src/text/stories.h"
#include <algorithm>
#include <cctype>
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cmath>
#include <cstdio>

double cross_entropy(const float* logits, int vocab, int target) {
    double max = logits[0];
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
    // non-overlapping windows of context inputs; each predicts its next tokens
    for (size_t start = 0; start + 1 < tokens.size(); start += context) {
        const int n = (int)std::min<size_t>(context, tokens.size() - 1 - start);
        be.prefill(&tokens[start], n, opt);
        const float* logits = be.logits();
        for (int t = 0; t < n; t++) total += cross_entropy(logits + (size_t)t * m.config.vocab_size, m.config.vocab_size, tokens[start + t + 1]);
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
        std::vector<int> t = tok.encode(d, true, false);
        tokens.insert(tokens.end(), t.begin(), t.end());
    }
    return tokens;
}

RecallResult recall_accuracy(Backend& be, const Model& m, const Tokenizer& tok, const std::vector<RecallProbe>& probes,
                             const PrefillOptions& prefill) {
    RecallResult r;
    std::vector<int> next(1);
    for (const RecallProbe& p : probes) {
        std::vector<int> prompt = tok.encode(p.prompt, true, false);
        const std::string want = " " + p.answer;
        if ((int)prompt.size() + (int)want.size() > be.context()) continue;  // does not fit: not counted
        be.prefill(prompt.data(), (int)prompt.size(), prefill);
        // greedy until the continuation is one character past the answer (to see the word end)
        std::string got;
        int prev = prompt.back();
        for (;;) {
            const float* logits = be.logits();
            next[0] = (int)(std::max_element(logits, logits + m.config.vocab_size) - logits);
            got += tok.decode_piece(prev, next[0]);
            prev = next[0];
            if (got.size() > want.size() || be.pos() >= be.context()) break;
            be.decode(next.data());
        }
        r.probes++;
        // the word must be complete: followed by a non-letter or nothing
        if (got.compare(0, want.size(), want) == 0 && (got.size() == want.size() || !std::isalpha((unsigned char)got[want.size()])))
            r.correct++;
    }
    return r;
}

int cmd_eval(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare eval", {"-z", "--data", "--plan", "--device", "--prefill", "--context", "--probes"}, {"--per-line"});
    if (a.has("--help")) {
        std::printf("usage: kvshare eval MODEL [-z TOKENIZER] --data FILE [--plan PLAN] [--device cpu|cuda]\n"
                    "                   [--prefill MODE] [--context N] [--per-line] [--probes N]\n"
                    "Mean next-token loss (nats) and perplexity over FILE, read in non-overlapping windows of\n"
                    "N tokens (default: the model's max_seq_len), each starting a fresh sequence.\n"
                    "--per-line encodes every non-empty line as its own document with BOS, as\n"
                    "`kvshare train --stories` does with each story (use it for `kvshare stories` output).\n"
                    "--probes N also (or, without --data, only) runs N recall probes from the story generator:\n"
                    "a story prefix whose next word is a name or object mentioned earlier; greedy decoding\n"
                    "must produce it.\n");
        return 0;
    }
    Model m = load_model(a.need_positional(0, "MODEL"), a.get("--plan"));
    if (!a.has("--data") && !a.has("--probes")) fail("kvshare eval: --data FILE (or --probes N) is required");
    Tokenizer tok = tokenizer_for(a.get("-z"), m);
    const int context = a.get_int("--context", m.config.max_seq_len);
    if (context < 1 || context > m.config.max_seq_len)
        fail("kvshare eval: --context must be 1.." + std::to_string(m.config.max_seq_len));
    const PrefillOptions prefill = parse_prefill(a.get("--prefill"), m);
    auto be = make_backend(m, parse_device(a.get("--device", "cpu")), 1, context);
    if (a.has("--probes")) {
        const int n = a.get_int("--probes", 0);
        if (n < 1) fail("kvshare eval: --probes must be >= 1");
        RecallResult r = recall_accuracy(*be, m, tok, recall_probes(12345, n), prefill);
        std::printf("plan %s: recall %d of %d probes (%.1f%%)\n", m.plan.name.c_str(), r.correct, r.probes,
                    r.probes ? 100.0 * r.correct / r.probes : 0.0);
        if (!a.has("--data")) return 0;
    }
    const std::string text = read_text_file(a.get("--data"));
    if (text.empty()) fail("kvshare eval: '" + a.get("--data") + "' is empty");
    std::vector<int> tokens = a.has("--per-line") ? encode_documents(tok, split(text, '\n')) : tok.encode(text, true, false);
    double t0 = now_seconds();
    EvalResult r = evaluate(*be, m, tokens, context, prefill);
    double t1 = now_seconds();
    std::printf("plan %s: %zu tokens in %d windows, mean loss %.4f, perplexity %.3f\n", m.plan.name.c_str(), r.predicted,
                r.windows, r.mean_loss, r.perplexity);
    std::fprintf(stderr, "%.1f tokens/s on %s\n", r.predicted / (t1 - t0 + 1e-12), be->device_name().c_str());
    return 0;
}
