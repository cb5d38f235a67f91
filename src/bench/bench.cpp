// kvshare bench: timings and measurements that never belong in tests.
//   decode    prefill and decode tokens/s of a model + plan (medians of repeats)
//   converge  error of parallel iterative prefill against token by token, by iteration count
//   kernels   the CUDA kernels against their ceilings (GPU builds)
//   throughput the largest batch each plan fits in a memory budget, and its tokens/s (src/bench/throughput.cpp)
//   plans     prefill/decode tokens/s and decode GB/s per plan and device (src/bench/plans.cpp)
//   prefill   prefill time per plan: token by token, one pass, T iterations (src/bench/plans.cpp)
//   gemm      the CPU products against OpenBLAS at model shapes (src/bench/gemm.cpp)
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/bench/common.h"
#include "src/bench/gemm.h"
#include "src/model/memory.h"
#include "src/bench/plans.h"
#include "src/commands/commands.h"
#include "src/bench/throughput.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#if defined(KVSHARE_CUDA) && __has_include("cuda/bench.h")
#include "cuda/bench.h"
#define KVSHARE_KERNEL_BENCH 1
#endif

// MODEL as a positional argument, or --preset NAME for random weights of that shape; never
// both (the preset would be benchmarked and MODEL silently ignored).
static Model bench_model(const Args& a) {
    if (a.has("--preset")) {
        if (!a.positional.empty())
            fail(a.command + ": give MODEL or --preset NAME, not both ('" + a.positional[0] + "' and --preset " + a.get("--preset") + ")");
        Config c = preset_config(a.get("--preset"));
        const Plan plan = parse_plan(a.get("--plan", "standard"), c.n_layers);
        const int seed = a.get_int("-s", 1, INT_MIN, INT_MAX);
        check_memory(MemoryNeed().host("weights", weight_bytes(c, plan.n_kv_layers())), a.command, "a smaller --preset");
        return init_model(c, plan, (uint64_t)seed);
    }
    const std::string path = a.need_model(0, "MODEL (or --preset NAME)");
    a.at_most_positional(1);
    return load_model(path, a.get("--plan"));
}

static int bench_decode(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare bench decode",
                        {"--preset", "--plan", "--device", "--batch", "--prompt", "-n", "--repeats", "-s"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare bench decode (MODEL | --preset NAME) [--plan PLAN] [--device cpu|cuda]\n"
                    "                            [--batch B] [--prompt N] [-n STEPS] [--repeats R] [-s SEED]\n"
                    "Prefills B random prompts of N tokens (default 32), decodes STEPS tokens (default 64),\n"
                    "R times (default 5); prints the median prefill and decode tokens/s, and the time MODEL took\n"
                    "to load (map or convert, check every weight, apply the plan). Ranges: B 1..65535 (and the KV\n"
                    "cache must fit the memory available), N 1.., STEPS 0.. with N + STEPS at most the model's\n"
                    "max_seq_len, R 1..1000, SEED (--preset's weights) any 32-bit integer.\n");
        return 0;
    }
    const int batch = a.get_int("--batch", 1, 1, 65535), repeats = a.get_int("--repeats", 5, 1, 1000);
    const Device device = parse_device(a.get("--device", "cpu"));
    const double load_start = now_seconds();
    Model m = bench_model(a);
    const double load_s = now_seconds() - load_start;
    const int ctx = m.config.max_seq_len;
    const int prompt = a.get_int("--prompt", 32, 1, ctx), steps = a.get_int("-n", 64, 0, ctx);
    if (prompt + steps > ctx)
        fail("kvshare bench decode: --prompt + -n = " + std::to_string(prompt + steps) + " exceeds max_seq_len " + std::to_string(ctx));
    GenerationSettings s;
    s.device = device;
    s.prompt = prompt;
    s.gen = steps;
    const GenerationRun r = time_generation(m, s, batch, steps, repeats, 1);  // the first round warms up
    std::printf("model %s, plan %s, device %s, batch %d, prompt %d, decode %d, %d repeats\n",
                a.has("--preset") ? a.get("--preset").c_str() : a.positional[0].c_str(), m.plan.name.c_str(),
                r.device_name.c_str(), batch, prompt, steps, repeats);
    std::printf("load     %10.3f s (%s)\n", load_s, a.has("--preset") ? "random weights made, not read" : "mapped or converted, every weight checked");
    std::printf("prefill  %10.1f tok/s (median)\n", batch * prompt / r.prefill_s);
    std::printf("decode   %10.1f tok/s (median)\n", steps > 0 ? batch * steps / r.decode_s : 0.0);
    std::printf("%s\n", kv_summary(m, batch, prompt + steps).c_str());
    return 0;
}

static int bench_converge(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare bench converge",
                        {"--preset", "--plan", "-n", "--max-iterations", "-s", "-z", "-i", "--device"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare bench converge (MODEL | --preset NAME) --plan PLAN [-n TOKENS] [--max-iterations K]\n"
                    "                              [-z TOKENIZER -i PROMPT] [-s SEED] [--device cpu|cuda]\n"
                    "Runs one prompt (-i, or N random tokens, default 32, 1..the model's max_seq_len) token by\n"
                    "token, then by parallel iterations T = 1..K (K 1..N, default N: at T = N every position is\n"
                    "exact); prints the logits' error against token by token and how many leading positions\n"
                    "are exact (equal to the last bit). SEED (random tokens, --preset's weights): any 32-bit integer.\n");
        return 0;
    }
    if (a.has("-i") && a.has("-n")) fail("kvshare bench converge: give -i PROMPT or -n TOKENS, not both");
    if (a.has("-z") && !a.has("-i")) fail("kvshare bench converge: -z goes with -i (random tokens need no tokenizer)");
    const std::string tok_path = a.input_file("-z");
    const Device device = parse_device(a.get("--device", "cpu"));
    Model m = bench_model(a);
    const int ctx = m.config.max_seq_len, V = m.config.vocab_size;
    std::vector<int> tokens;
    if (a.has("-i")) { const Tokenizer tok = tokenizer_for(tok_path, m); tokens = tok.encode(a.get("-i"), tok.add_bos, false); }
    else tokens = random_tokens(a.get_int("-n", std::min(32, ctx), 1, ctx), V, (uint64_t)a.get_int("-s", 1, INT_MIN, INT_MAX));
    const int n = (int)tokens.size();
    if (n > ctx)
        fail("kvshare bench converge: the prompt has " + std::to_string(n) + " tokens, more than the context of " + std::to_string(ctx));
    const int kmax = a.get_int("--max-iterations", n, 1, n);
    MemoryNeed need;
    add_backend(need, m, device, 1, n, n, true);
    need.host("the token-by-token logits", sat_product({(size_t)n, (size_t)V, sizeof(float)}));
    check_memory(need, "kvshare bench converge", "a shorter prompt");
    if (!m.plan.iterates())
        std::printf("note: plan %s has no upward source; one pass is exact and iterations change nothing\n", m.plan.name.c_str());
    auto be = make_backend(m, device, 1, n);

    PrefillOptions seq;
    seq.sequential = true;
    seq.all_positions = true;
    be->prefill(tokens.data(), n, seq);
    check_finite_logits(be->logits(), (size_t)n * V, "the token-by-token prefill");
    std::vector<float> ref(be->logits(), be->logits() + (size_t)n * V);

    std::printf("plan %s, %d tokens, device %s\n", m.plan.spec().c_str(), n, be->device_name().c_str());
    std::printf("%-10s %-12s %-12s %-12s %s\n", "iterations", "rel_l2", "max_abs", "last_rel_l2", "exact_positions");
    // relative errors against a zero reference fall back to the absolute one
    auto relative = [](double diff, double norm) { return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff); };
    for (int T = 1; T <= kmax; T++) {
        PrefillOptions it;
        it.iterations = T;
        it.always_iterate = true;
        it.all_positions = true;
        be->prefill(tokens.data(), n, it);
        const float* got = be->logits();
        check_finite_logits(got, (size_t)n * V, "T = " + std::to_string(T));
        double diff = 0, norm = 0, max_abs = 0, last_diff = 0, last_norm = 0;
        int exact = 0;
        bool still_exact = true;
        for (int p = 0; p < n; p++) {
            const float* g = got + (size_t)p * V;
            const float* r = ref.data() + (size_t)p * V;
            bool row_exact = std::memcmp(g, r, V * sizeof(float)) == 0;
            if (still_exact && row_exact) exact++;
            else still_exact = false;
            for (int i = 0; i < V; i++) {
                double d = (double)g[i] - r[i];
                diff += d * d;
                norm += (double)r[i] * r[i];
                max_abs = std::max(max_abs, std::fabs(d));
                if (p == n - 1) { last_diff += d * d; last_norm += (double)r[i] * r[i]; }
            }
        }
        std::printf("%-10d %-12.3e %-12.3e %-12.3e %d of %d\n", T, relative(diff, norm), max_abs, relative(last_diff, last_norm),
                    exact, n);
    }
    return 0;
}

int cmd_bench(int argc, char** argv) {
    const std::string what = argc > 2 ? argv[2] : "";
    if (what == "decode") return bench_decode(argc - 1, argv + 1);
    if (what == "converge") return bench_converge(argc - 1, argv + 1);
    if (what == "throughput") return bench_throughput(argc - 2, argv + 2);
    if (what == "plans") return bench_plans(argc - 2, argv + 2);
    if (what == "prefill") return bench_prefill(argc - 2, argv + 2);
    if (what == "gemm") return bench_gemm(argc - 2, argv + 2);
    if (what == "kernels") {
#ifdef KVSHARE_KERNEL_BENCH
        return bench_kernels(argc - 2, argv + 2);
#else
        fail("kvshare bench kernels: this kvshare was built without the CUDA kernels");
#endif
    }
    if (what == "--help" || what == "-h") {
        std::printf("usage: kvshare bench decode|converge|throughput|plans|prefill|gemm|kernels [options]   (each takes --help)\n");
        return 0;
    }
    fail("kvshare bench: say what to measure: decode, converge, throughput, plans, prefill, gemm or kernels (see kvshare bench --help)");
}
