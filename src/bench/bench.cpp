// kvshare bench: timings and measurements that never belong in tests.
//   decode    prefill and decode tokens/s of a model + plan (medians of repeats)
//   converge  error of parallel iterative prefill against token by token, by iteration count
//   kernels   the CUDA kernels against their ceilings (GPU builds)
//   throughput the largest batch each plan fits in a memory budget, and its tokens/s (src/bench/throughput.cpp)
//   plans     prefill/decode tokens/s and decode GB/s per plan and device (src/bench/plans.cpp)
//   prefill   prefill time per plan: token by token, one pass, T iterations (src/bench/plans.cpp)
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/model/backend.h"
#include "src/bench/common.h"
#include "src/bench/plans.h"
#include "src/commands/commands.h"
#include "src/bench/throughput.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>
#if defined(KVSHARE_CUDA) && __has_include("cuda/bench.h")
#include "cuda/bench.h"
#define KVSHARE_KERNEL_BENCH 1
#endif

// MODEL as a positional argument, or --preset NAME for random weights of that shape.
static Model bench_model(const Args& a) {
    if (a.has("--preset")) {
        Config c = preset_config(a.get("--preset"));
        return init_model(c, parse_plan(a.get("--plan", "standard"), c.n_layers), (uint64_t)a.get_int("-s", 1));
    }
    return load_model(a.need_positional(0, "MODEL (or --preset NAME)"), a.get("--plan"));
}

static int bench_decode(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare bench decode",
                        {"--preset", "--plan", "--device", "--batch", "--prompt", "-n", "--repeats", "-s"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare bench decode (MODEL | --preset NAME) [--plan PLAN] [--device cpu|cuda]\n"
                    "                            [--batch B] [--prompt N] [-n STEPS] [--repeats R]\n"
                    "Prefills B random prompts of N tokens (default 32), decodes STEPS tokens (default 64),\n"
                    "R times (default 5); prints the median prefill and decode tokens/s, and the time MODEL took\n"
                    "to load (map or convert, check every weight, apply the plan).\n");
        return 0;
    }
    const double load_start = now_seconds();
    Model m = bench_model(a);
    const double load_s = now_seconds() - load_start;
    const int batch = a.get_int("--batch", 1), prompt = a.get_int("--prompt", 32), steps = a.get_int("-n", 64);
    const int repeats = a.get_int("--repeats", 5);
    if (batch < 1 || prompt < 1 || steps < 0 || repeats < 1) fail("kvshare bench decode: sizes must be positive");
    if (prompt + steps > m.config.max_seq_len)
        fail("kvshare bench decode: --prompt + -n exceeds max_seq_len " + std::to_string(m.config.max_seq_len));
    GenerationSettings s;
    s.device = parse_device(a.get("--device", "cpu"));
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
                    "Runs one prompt (-i, or N random tokens, default 32) token by token, then by parallel\n"
                    "iterations T = 1..K (default N); prints the logits' error against token by token and\n"
                    "how many leading positions are exact (equal to the last bit).\n");
        return 0;
    }
    Model m = bench_model(a);
    if (!m.plan.iterates())
        std::printf("note: plan %s has no upward source; one pass is exact and iterations change nothing\n", m.plan.name.c_str());
    std::vector<int> tokens;
    if (a.has("-i")) tokens = tokenizer_for(a.get("-z"), m).encode(a.get("-i"), true, false);
    else tokens = random_tokens(a.get_int("-n", 32), m.config.vocab_size, (uint64_t)a.get_int("-s", 1));
    const int n = (int)tokens.size(), V = m.config.vocab_size;
    if (n > m.config.max_seq_len) fail("kvshare bench converge: the prompt does not fit the context");
    const int kmax = a.get_int("--max-iterations", n);
    auto be = make_backend(m, parse_device(a.get("--device", "cpu")), 1, n);

    PrefillOptions seq;
    seq.sequential = true;
    seq.all_positions = true;
    be->prefill(tokens.data(), n, seq);
    std::vector<float> ref(be->logits(), be->logits() + (size_t)n * V);

    std::printf("plan %s, %d tokens, device %s\n", m.plan.spec().c_str(), n, be->device_name().c_str());
    std::printf("%-10s %-12s %-12s %-12s %s\n", "iterations", "rel_l2", "max_abs", "last_rel_l2", "exact_positions");
    for (int T = 1; T <= kmax; T++) {
        PrefillOptions it;
        it.iterations = T;
        it.always_iterate = true;
        it.all_positions = true;
        be->prefill(tokens.data(), n, it);
        const float* got = be->logits();
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
        std::printf("%-10d %-12.3e %-12.3e %-12.3e %d of %d\n", T, std::sqrt(diff / norm), max_abs,
                    std::sqrt(last_diff / last_norm), exact, n);
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
    if (what == "kernels") {
#ifdef KVSHARE_KERNEL_BENCH
        return bench_kernels(argc - 2, argv + 2);
#else
        fail("kvshare bench kernels: this kvshare was built without the CUDA kernels");
#endif
    }
    if (what == "--help" || what == "-h") {
        std::printf("usage: kvshare bench decode|converge|throughput|plans|prefill|kernels [options]   (each takes --help)\n");
        return 0;
    }
    fail("kvshare bench: say what to measure: decode, converge, throughput, plans, prefill or kernels (see kvshare bench --help)");
}
