// kvshare generate: prefill the prompt, then sample token by token, as llama2.c's run.c does.
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/model/memory.h"
#include "src/commands/commands.h"
#include "src/text/sampler.h"
#include "src/text/tokenizer.h"
#include "src/text/unicode.h"
#include "src/util.h"
#include <climits>
#include <cstdio>
#include <ctime>

std::vector<int> encode_prompt(const Tokenizer& tok, const std::string& text) {
    std::vector<int> prompt = tok.encode(text, tok.add_bos, false);
    if (prompt.empty()) {
        if (tok.bos_id < 0) fail("the prompt is empty and the tokenizer has no BOS token to start from: give a prompt with -i");
        prompt.push_back(tok.bos_id);
    }
    return prompt;
}

int cmd_generate(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare generate",
                        {"-z", "-i", "-n", "-t", "-p", "-s", "--plan", "--prefill", "--upward-rule", "--batch", "--device"}, {});
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare generate MODEL [options]\n"
            "  -z TOKENIZER    tokenizer.bin, tokenizer.model or tokenizer.json (default: the model's own; built-in\n"
            "                  bytes for a 259-token model; else ./tokenizer.bin)\n"
            "  -i PROMPT       prompt text (default: empty, i.e. just BOS); special tokens' text (<|im_start|>)\n"
            "                  becomes their ids\n"
            "  -n STEPS        positions to run, prompt included: 0..1048576 (default 256; 0 or more than\n"
            "                  the model's max_seq_len = max_seq_len)\n"
            "  -t TEMP         temperature 0..100, 0 = greedy (default 1.0)\n"
            "  -p TOPP         top-p nucleus sampling 0..1 (default 0.9)\n"
            "  -s SEED         random seed, any 32-bit integer (default: time)\n"
            "  --plan PLAN     sharing plan applied at load (default: the model's own)\n"
            "  --prefill MODE  parallel (default), sequential, iterations:N (N 1..1048576)\n"
            "  --upward-rule R paper (default) or authors: how a layer reading an upper layer attends in a\n"
            "                  one-token step; authors reproduces the LCKV authors' code (a zero K/V row, then\n"
            "                  positions 0..p-2; walkthrough chapter 9.9)\n"
            "  --batch B       B sequences from the same prompt, seeds SEED..SEED+B-1: 1..4096 (default 1)\n"
            "  --device D      cpu (default) or cuda\n"
            "A prompt starts with BOS when the model asks for it (add_bos); generation stops at the model's\n"
            "EOS (a GGUF's, a folder's eos_token_id; llama2.c models: BOS), or after STEPS positions.\n"
            "Text goes to stdout as it comes; tokens/s and KV memory go to stderr. Before anything is\n"
            "allocated, the KV cache and run state for B x STEPS positions are checked against the\n"
            "memory available (the GPU's free memory with --device cuda).\n");
        return 0;
    }
    const std::string path = a.need_model(0);
    if (a.positional.size() > 1) fail("kvshare generate: unexpected argument '" + a.positional[1] + "' (quote the prompt after -i)");
    const std::string tok_path = a.input_file("-z");
    const float temperature = a.get_float("-t", 1.0f, 0.0f, 100.0f), topp = a.get_float("-p", 0.9f, 0.0f, 1.0f);
    const int batch = a.get_int("--batch", 1, 1, 4096);
    const long seed_arg = a.has("-s") ? a.get_int("-s", 0, INT_MIN, INT_MAX) : (long)std::time(nullptr);
    int steps = a.get_int("-n", 256, 0, 1 << 20);
    const Device device = parse_device(a.get("--device", "cpu"));
    if (a.has("--prefill")) parse_prefill(a.get("--prefill"));  // its errors before the model is loaded
    const UpwardRule rule = parse_upward_rule(a.get("--upward-rule", "paper"));
    Model m = load_model(path, a.get("--plan"));
    m.plan.upward_rule = rule;
    Tokenizer tok = tokenizer_for(tok_path, m);
    if (steps == 0 || steps > m.config.max_seq_len) steps = m.config.max_seq_len;
    const PrefillOptions prefill = parse_prefill(a.get("--prefill"), m);

    std::vector<int> prompt = encode_prompt(tok, a.get("-i"));
    const int n_prompt = (int)prompt.size();
    if (n_prompt > m.config.max_seq_len)
        fail("the prompt has " + std::to_string(n_prompt) + " tokens, more than the model's context of " + std::to_string(m.config.max_seq_len));
    if (n_prompt > steps) fail("the prompt has " + std::to_string(n_prompt) + " tokens, more than -n " + std::to_string(steps));

    MemoryNeed need;
    add_backend(need, m, device, batch, steps, n_prompt, false);
    need.host("samplers and text", sat_product({(size_t)batch, (size_t)m.config.vocab_size, 2 * sizeof(float)}));
    check_memory(need, "kvshare generate", "lower --batch or -n");
    std::unique_ptr<Backend> be = make_backend(m, device, batch, steps);
    std::vector<Sampler> samplers;
    for (int b = 0; b < batch; b++) samplers.emplace_back(m.config.vocab_size, temperature, topp, (uint64_t)(seed_arg + b));
    std::vector<int> tokens((size_t)batch * n_prompt);
    for (int b = 0; b < batch; b++) std::copy(prompt.begin(), prompt.end(), tokens.begin() + (size_t)b * n_prompt);

    // the prompt is echoed (but not a BOS), as run.c does; only whole UTF-8 characters are printed
    std::vector<std::string> text(batch);
    std::vector<Utf8Stream> utf8(batch);
    for (int b = 0; b < batch; b++)
        for (int t = tok.add_bos || a.get("-i").empty() ? 1 : 0; t < n_prompt; t++) text[b] += utf8[b].push(tok.decode_piece(t ? prompt[t - 1] : -1, prompt[t]));
    if (batch == 1) { std::fputs(text[0].c_str(), stdout); std::fflush(stdout); text[0].clear(); }

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
            if (tok.is_stop(next[b])) { done[b] = true; running--; continue; }  // EOS (llama2.c's stories: BOS)
            text[b] += utf8[b].push(tok.decode_piece(last[b], next[b]));
            last[b] = next[b];
        }
        if (batch == 1 && !text[0].empty()) { std::fputs(text[0].c_str(), stdout); std::fflush(stdout); text[0].clear(); }
        if (running == 0 || be->pos() >= steps) break;
        draw_all();
        be->decode_sample(sampling, draws.data(), next.data());  // appends the sampled tokens
        decoded++;
    }
    double t2 = now_seconds();
    for (int b = 0; b < batch; b++) text[b] += utf8[b].finish();
    if (batch == 1) std::printf("%s\n", text[0].c_str());
    else
        for (int b = 0; b < batch; b++) std::printf("%s%s\n", b ? "---\n" : "", text[b].c_str());
    std::fflush(stdout);

    if (m.random_weights)
        std::fprintf(stderr, "note: %s has random weights (made by kvshare init), so its text is noise\n", path.c_str());
    std::fprintf(stderr, "prefill: %d tokens x %d in %.3f s (%.1f tok/s); decode: %d steps x %d in %.3f s (%.1f tok/s) on %s\n",
                 n_prompt, batch, t1 - t0, n_prompt * batch / (t1 - t0 + 1e-12), decoded, batch, t2 - t1,
                 decoded * batch / (t2 - t1 + 1e-12), be->device_name().c_str());
    std::fprintf(stderr, "%s; allocated %s for %d positions x %d sequences\n", kv_summary(m, batch, steps).c_str(),
                 format_bytes((double)be->kv_cache_bytes()).c_str(), steps, batch);
    return 0;
}
