// kvshare generate: prefill the prompt, then sample token by token, as llama2.c's run.c does.
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/commands/commands.h"
#include "src/text/sampler.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cctype>
#include <cstdio>
#include <ctime>

static const int kBOS = 1;

// Print a piece unless it is a lone unprintable byte (raw byte tokens can be anything).
static void print_piece(std::string& out, const std::string& piece) {
    if (piece.size() == 1) {
        unsigned char c = (unsigned char)piece[0];
        if (!(std::isprint(c) || std::isspace(c))) return;
    }
    out += piece;
}

int cmd_generate(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare generate",
                        {"-z", "-i", "-n", "-t", "-p", "-s", "--plan", "--prefill", "--batch", "--device"}, {});
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare generate MODEL [options]\n"
            "  -z TOKENIZER    tokenizer.bin (default: built-in bytes for a 259-token model, else ./tokenizer.bin)\n"
            "  -i PROMPT       prompt text (default: empty, i.e. just BOS)\n"
            "  -n STEPS        positions to run, prompt included (default 256, 0 = max_seq_len)\n"
            "  -t TEMP         temperature, 0 = greedy (default 1.0)\n"
            "  -p TOPP         top-p nucleus sampling (default 0.9)\n"
            "  -s SEED         random seed (default: time)\n"
            "  --plan PLAN     sharing plan applied at load (default: the model's own)\n"
            "  --prefill MODE  parallel (default), sequential, iterations:N\n"
            "  --batch B       B sequences from the same prompt, seeds SEED..SEED+B-1 (default 1)\n"
            "  --device D      cpu (default) or cuda\n"
            "Text goes to stdout as it comes; tokens/s and KV memory go to stderr.\n");
        return 0;
    }
    const std::string path = a.need_positional(0, "MODEL");
    if (a.positional.size() > 1) fail("kvshare generate: unexpected argument '" + a.positional[1] + "' (quote the prompt after -i)");
    Model m = load_model(path, a.get("--plan"));
    Tokenizer tok = tokenizer_for(a.get("-z"), m);
    const float temperature = a.get_float("-t", 1.0f), topp = a.get_float("-p", 0.9f);
    const int batch = a.get_int("--batch", 1);
    const long seed_arg = a.has("-s") ? a.get_int("-s", 0) : (long)std::time(nullptr);
    if (batch < 1 || batch > 4096) fail("kvshare generate: --batch must be 1..4096");
    int steps = a.get_int("-n", 256);
    if (steps < 0) fail("kvshare generate: -n must be >= 0");
    if (steps == 0 || steps > m.config.max_seq_len) steps = m.config.max_seq_len;
    PrefillOptions prefill = parse_prefill(a.get("--prefill"), m);
    Device device = parse_device(a.get("--device", "cpu"));

    std::vector<int> prompt = tok.encode(a.get("-i"), true, false);
    const int n_prompt = (int)prompt.size();
    if (n_prompt > m.config.max_seq_len)
        fail("the prompt has " + std::to_string(n_prompt) + " tokens, more than the model's context of " + std::to_string(m.config.max_seq_len));
    if (n_prompt > steps) fail("the prompt has " + std::to_string(n_prompt) + " tokens, more than -n " + std::to_string(steps));

    std::unique_ptr<Backend> be = make_backend(m, device, batch, steps);
    std::vector<Sampler> samplers;
    for (int b = 0; b < batch; b++) samplers.emplace_back(m.config.vocab_size, temperature, topp, (uint64_t)(seed_arg + b));
    std::vector<int> tokens((size_t)batch * n_prompt);
    for (int b = 0; b < batch; b++) std::copy(prompt.begin(), prompt.end(), tokens.begin() + (size_t)b * n_prompt);

    // the prompt is echoed, as run.c does
    std::vector<std::string> text(batch);
    for (int b = 0; b < batch; b++)
        for (int t = 1; t < n_prompt; t++) print_piece(text[b], tok.decode_piece(prompt[t - 1], prompt[t]));
    if (batch == 1) { std::fputs(text[0].c_str(), stdout); std::fflush(stdout); text[0].clear(); }

    if (m.random_weights)
        std::fprintf(stderr, "note: %s has random weights (made by kvshare init), so its text is noise\n", path.c_str());
    double t0 = now_seconds();
    be->prefill(tokens.data(), n_prompt, prefill);
    double t1 = now_seconds();
    // The backend samples (on the GPU: on the device, and only the token ids come back),
    // with each sequence's draws from its own seeded Sampler, as Sampler::sample would.
    const SamplingSettings sampling = samplers[0].settings();
    std::vector<int> last(batch, prompt.back()), next(batch);
    std::vector<float> draws(batch, 0.0f);
    std::vector<bool> done(batch, false);
    int decoded = 0, running = batch;
    auto draw_all = [&] {
        for (int b = 0; b < batch; b++) draws[b] = done[b] ? 0.0f : samplers[b].next_draw();
    };
    draw_all();
    be->sample(sampling, draws.data(), next.data());
    for (;;) {
        for (int b = 0; b < batch; b++) {
            if (done[b]) continue;  // its tokens are still computed, and ignored
            if (next[b] == kBOS) { done[b] = true; running--; continue; }  // BOS ends a story
            print_piece(text[b], tok.decode_piece(last[b], next[b]));
            last[b] = next[b];
        }
        if (batch == 1 && !text[0].empty()) { std::fputs(text[0].c_str(), stdout); std::fflush(stdout); text[0].clear(); }
        if (running == 0 || be->pos() >= steps) break;
        draw_all();
        be->decode_sample(sampling, draws.data(), next.data());  // appends the sampled tokens
        decoded++;
    }
    double t2 = now_seconds();
    if (batch == 1) std::printf("\n");
    else
        for (int b = 0; b < batch; b++) std::printf("%s%s\n", b ? "---\n" : "", text[b].c_str());
    std::fflush(stdout);

    std::fprintf(stderr, "prefill: %d tokens x %d in %.3f s (%.1f tok/s); decode: %d steps x %d in %.3f s (%.1f tok/s) on %s\n",
                 n_prompt, batch, t1 - t0, n_prompt * batch / (t1 - t0 + 1e-12), decoded, batch, t2 - t1,
                 decoded * batch / (t2 - t1 + 1e-12), be->device_name().c_str());
    std::fprintf(stderr, "%s; allocated %s for %d positions x %d sequences\n", kv_summary(m, batch, steps).c_str(),
                 format_bytes((double)be->kv_cache_bytes()).c_str(), steps, batch);
    return 0;
}
