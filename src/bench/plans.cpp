// kvshare bench plans and bench prefill (see bench_plans.h). Timing goes through
// time_generation (src/bench/throughput.h), the loop bench decode and bench throughput use.
#include "src/bench/plans.h"
#include "reference/matmul_blocked.h"
#include "src/commands/args.h"
#include "src/bench/common.h"
#include "src/model/memory.h"
#include "src/util.h"
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <memory>
#include <omp.h>

// ---------------------------------------------------------------------------
// arithmetic

size_t decode_step_bytes(const Config& c, int n_kv_layers, int batch, int positions) {
    const size_t D = c.dim, H = c.hidden_dim, L = c.n_layers, KV = c.kv_dim(), Q = c.q_dim();
    const size_t per_layer = 2 * D          // rms_att, rms_ffn
                             + Q * D        // W_Q
                             + D * Q        // W_O
                             + 3 * H * D;   // W1, W2, W3
    const size_t floats = L * per_layer
                          + (size_t)n_kv_layers * 2 * KV * D  // W_K, W_V of KV layers only
                          + D                                 // final norm
                          + (size_t)c.vocab_size * D          // classifier, all of it
                          + (size_t)batch * D;                // the batch's embedding rows
    const size_t cache = (size_t)batch * positions * n_kv_layers * 2 * KV;  // K and V
    return (floats + cache) * sizeof(float);
}

size_t decode_bytes(const Config& c, int n_kv_layers, int batch, int prompt, int steps) {
    size_t total = 0;
    for (int i = 0; i < steps; i++) total += decode_step_bytes(c, n_kv_layers, batch, prompt + i + 1);
    return total;
}

size_t decode_step_flops(const Config& c, int n_kv_layers, int batch, int positions) {
    const size_t D = c.dim, H = c.hidden_dim, L = c.n_layers, KV = c.kv_dim(), Q = c.q_dim();
    const size_t weights = L * (Q * D + D * Q + 3 * H * D)     // W_Q, W_O, W1, W2, W3
                           + (size_t)n_kv_layers * 2 * KV * D  // W_K, W_V of KV layers only
                           + (size_t)c.vocab_size * D;         // classifier
    const size_t attention = L * 2 * 2 * Q * (size_t)positions;  // q.k and the sum of V, every layer
    return (size_t)batch * (2 * weights + attention);
}

size_t decode_flops(const Config& c, int n_kv_layers, int batch, int prompt, int steps) {
    size_t total = 0;
    for (int i = 0; i < steps; i++) total += decode_step_flops(c, n_kv_layers, batch, prompt + i + 1);
    return total;
}

int prefill_layer_passes(const Plan& p, int iterations) {
    int in_blocks = 0;
    for (const Block& b : p.blocks) in_blocks += b.last - b.first + 1;
    return p.n_layers() - in_blocks + iterations * in_blocks;
}

// ---------------------------------------------------------------------------
// the CPU copy ceiling

// One memcpy of `bytes`, each of `threads` OpenMP threads copying its own slice; seconds.
static double timed_copy(char* dst, const char* src, size_t bytes, int threads) {
    const double t0 = now_seconds();
#pragma omp parallel num_threads(threads)
    {
        const size_t n = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        const size_t lo = bytes * t / n, hi = bytes * (t + 1) / n;
        std::memcpy(dst + lo, src + lo, hi - lo);
    }
    return now_seconds() - t0;
}

static double copy_gbs(char* dst, const char* src, size_t bytes, int threads, int runs) {
    timed_copy(dst, src, bytes, threads);  // warm-up
    std::vector<double> s;
    for (int r = 0; r < runs; r++) s.push_back(timed_copy(dst, src, bytes, threads));
    return 2.0 * (double)bytes / median(s) / 1e9;
}

CopyCeiling cpu_copy_ceiling(size_t bytes, int runs) {
    if (bytes == 0 || runs < 1) fail("copy ceiling: needs bytes > 0 and runs >= 1");
    std::unique_ptr<char[]> src(new char[bytes]), dst(new char[bytes]);
    CopyCeiling c;
    c.threads = omp_get_max_threads();
    // every page touched before timing, by the threads that will copy it
#pragma omp parallel num_threads(c.threads)
    {
        const size_t n = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        const size_t lo = bytes * t / n, hi = bytes * (t + 1) / n;
        std::memset(src.get() + lo, 1, hi - lo);
        std::memset(dst.get() + lo, 0, hi - lo);
    }
    c.one_thread_gbs = copy_gbs(dst.get(), src.get(), bytes, 1, runs);
    c.all_threads_gbs = c.threads > 1 ? copy_gbs(dst.get(), src.get(), bytes, c.threads, runs) : c.one_thread_gbs;
    c.gbs = std::max(c.one_thread_gbs, c.all_threads_gbs);
    return c;
}

// ---------------------------------------------------------------------------
// the CPU GEMM ceiling

double cpu_gemm_gflops(int size, int runs) {
    if (size < 1 || runs < 1) fail("GEMM ceiling: needs size >= 1 and runs >= 1");
    const size_t n = (size_t)size * size;
    std::vector<float> x(n, 0.0115f), w(n, 0.0115f), out(n);
    std::vector<double> s;
    for (int r = 0; r < runs + 1; r++) {  // the first is a warm-up
        const double t0 = now_seconds();
        matmul_blocked(out.data(), x.data(), w.data(), size, size, size);
        if (r > 0) s.push_back(now_seconds() - t0);
    }
    return 2.0 * (double)n * size / median(s) / 1e9;
}

// ---------------------------------------------------------------------------
// options

Args plan_bench_args(int argc, char** argv, const std::string& which) {
    std::set<std::string> with_value = {"--preset", "--plans", "--device", "--batch", "--prompt", "--repeats", "-s"};
    std::set<std::string> flags;
    if (which == "plans") {
        with_value.insert({"-n", "--copy-size", "--gemm-size"});
        flags = {"--no-graphs", "--unfused"};
    } else {
        with_value.insert("--iterations");
    }
    return parse_args(argc, argv, 1, "kvshare bench " + which, with_value, flags);
}

PlanBenchOptions parse_plan_bench(int argc, char** argv, const std::string& which) {
    return plan_bench_options(plan_bench_args(argc, argv, which), which);
}

PlanBenchOptions plan_bench_options(const Args& a, const std::string& which) {
    const bool plans = which == "plans";
    const std::string cmd = "kvshare bench " + which;
    PlanBenchOptions o;
    o.batch = a.get_int("--batch", 1, 1, 65535);
    o.repeats = a.get_int("--repeats", plans ? 5 : 3, 1, 1000);
    if (plans) {
        if (a.has("--copy-size")) o.copy_bytes = parse_bytes(a.get("--copy-size"), cmd + " --copy-size");
        o.gemm_size = a.get_int("--gemm-size", 0, 1, 16384);
        o.cuda.graphs = !a.has("--no-graphs");
        o.cuda.fused = !a.has("--unfused");
    } else {
        o.iterations = parse_int_list(a.get("--iterations", "1 2 4 9"), cmd + " --iterations", 1, 1024);
    }
    o.devices = parse_devices(a.get("--device", "cpu"));

    o.models = plan_models(a);
    const int ctx = o.models.config.max_seq_len;
    o.prompt = a.get_int("--prompt", std::min(plans ? 32 : 64, ctx), 1, ctx);
    o.steps = plans ? a.get_int("-n", std::min(64, ctx), 1, ctx) : 0;
    o.plans = bench_plan_list(a, o.models);
    const int need = o.prompt + o.steps;
    if (need > ctx)
        fail(cmd + ": --prompt" + (plans ? " + -n" : "") + " = " + std::to_string(need) + " exceeds the context " +
             std::to_string(ctx));
    // the ceilings' buffers: two copies of SIZE for the copy, three G x G matrices for the GEMM
    if (plans)
        for (Device d : o.devices) {
            const int g = o.gemm_size > 0 ? o.gemm_size : d == Device::CUDA ? 4096 : 1024;
            const size_t bytes = std::max(sat_mul(o.copy_bytes, 2), sat_product({3, (size_t)g, (size_t)g, sizeof(float)}));
            MemoryNeed need_ceiling;
            if (d == Device::CUDA) need_ceiling.gpu("the ceilings' buffers", bytes);
            else need_ceiling.host("the ceilings' buffers", bytes);
            check_memory(need_ceiling, cmd, "a smaller --copy-size or --gemm-size");
        }
    return o;
}

// ---------------------------------------------------------------------------
// bench plans

DecodeTable run_decode_table(const PlanBenchOptions& o) {
    DecodeTable t;
    for (Device d : o.devices) {  // measured first, on an idle device
        CeilingNote n;
        n.device = d;
        char how[256];
        if (d == Device::CUDA) {
            n.gbs = cuda_copy_gbs(o.copy_bytes, 10, 2);
            std::snprintf(how, sizeof how, "cudaMemcpy device to device of %s, read + write, events, median of 10",
                          format_bytes((double)o.copy_bytes).c_str());
        } else {
            const CopyCeiling c = cpu_copy_ceiling(o.copy_bytes, 5);
            n.gbs = c.gbs;
            std::snprintf(how, sizeof how, "memcpy of %s, read + write, median of 5: 1 thread %.1f GB/s, %d OpenMP threads %.1f GB/s",
                          format_bytes((double)o.copy_bytes).c_str(), c.one_thread_gbs, c.threads, c.all_threads_gbs);
        }
        n.how = how;
        const int size = o.gemm_size > 0 ? o.gemm_size : d == Device::CUDA ? 4096 : 1024;
        if (d == Device::CUDA) {
            n.gflops = cuda_gemm_gflops(size, 5, 1);
            std::snprintf(how, sizeof how, "kvshare's gemm at %d^3, events, median of 5", size);
        } else {
            n.gflops = cpu_gemm_gflops(size, 3);
            std::snprintf(how, sizeof how, "the blocked matmul at %d^3, %d OpenMP threads, median of 3", size,
                          omp_get_max_threads());
        }
        n.gemm_how = how;
        t.ceilings.push_back(n);
    }
    for (const Plan& p : o.plans) {
        Model m = o.models.make(p);
        const size_t bytes = decode_bytes(m.config, p.n_kv_layers(), o.batch, o.prompt, o.steps);
        const size_t flops = decode_flops(m.config, p.n_kv_layers(), o.batch, o.prompt, o.steps);
        for (size_t i = 0; i < o.devices.size(); i++) {
            GenerationSettings s;
            s.device = o.devices[i];
            s.prompt = o.prompt;
            s.gen = o.steps;
            s.cuda = o.cuda;
            const GenerationRun r = time_generation(m, s, o.batch, o.steps, o.repeats, 1);  // first round warms up
            DecodeRow row;
            row.plan = p.name;
            row.device = s.device;
            row.kv_layers = p.n_kv_layers();
            row.prefill_tok_s = r.prefill_s > 0 ? (double)o.batch * o.prompt / r.prefill_s : 0;
            row.decode_tok_s = r.decode_s > 0 ? (double)o.batch * o.steps / r.decode_s : 0;
            row.step_bytes = bytes / (size_t)o.steps;
            row.gbs = r.decode_s > 0 ? (double)bytes / r.decode_s / 1e9 : 0;
            row.ceiling_gbs = t.ceilings[i].gbs;
            row.step_flops = flops / (size_t)o.steps;
            row.gflops = r.decode_s > 0 ? (double)flops / r.decode_s / 1e9 : 0;
            row.ceiling_gflops = t.ceilings[i].gflops;
            row.host_us = r.host_us_per_step;
            row.calls = r.calls_per_step;
            t.rows.push_back(row);
        }
    }
    return t;
}

static const DecodeRow* find_row(const DecodeTable& t, const std::string& plan, Device d) {
    for (const DecodeRow& r : t.rows)
        if (r.plan == plan && r.device == d) return &r;
    return nullptr;
}

std::vector<std::string> decode_headlines(const PlanBenchOptions& o, const DecodeTable& t) {
    // standard's row per device, or the first plan's
    std::vector<std::string> lines;
    const std::string plan = find_row(t, "standard", o.devices[0]) ? "standard" : o.plans[0].name;
    for (Device d : o.devices) {
        const DecodeRow* r = find_row(t, plan, d);
        if (!r) continue;
        const std::string key = "decode_b" + std::to_string(o.batch) + "_" + headline_model(o.models.name) +
                                (plan == "standard" ? "" : "_" + plan) + (d == Device::CPU ? "_cpu" : "");
        lines.push_back(headline_line(key + "_tok_s", r->decode_tok_s, "tok/s"));
        if (r->ceiling_gbs > 0) lines.push_back(headline_line(key + "_pct_copy", 100.0 * r->gbs / r->ceiling_gbs, "%"));
        if (d == Device::CUDA) lines.push_back(headline_line(key + "_host_us_per_step", r->host_us, "us"));
    }
    return lines;
}

static void print_decode_table(const PlanBenchOptions& o, const DecodeTable& t) {
    std::printf("bench plans: %s, batch %d, prompt %d (prefilled as generate does by default), decode %d steps, "
                "median of %d repeats after 1 warm-up\n",
                o.models.name.c_str(), o.batch, o.prompt, o.steps, o.repeats);
    for (const CeilingNote& n : t.ceilings)
        if (n.device == Device::CUDA)
            std::printf("cuda decode: %s, %s kernels (greedy, the token sampled on the device)\n",
                        o.cuda.graphs ? "one CUDA graph per step" : "launch by launch",
                        o.cuda.fused ? "fused decode" : "unfused");
    for (const CeilingNote& n : t.ceilings) {
        std::printf("copy ceiling %-4s %8.1f GB/s      (%s)\n", device_word(n.device), n.gbs, n.how.c_str());
        std::printf("GEMM ceiling %-4s %8.1f GFLOP/s   (%s)\n", device_word(n.device), n.gflops, n.gemm_how.c_str());
    }
    const bool both = o.devices.size() > 1;
    std::printf("%-20s %-6s %4s %14s %14s %12s %9s %8s %10s %8s %12s %10s", "plan", "device", "kv", "prefill tok/s",
                "decode tok/s", "bytes/step", "GB/s", "% copy", "GFLOP/s", "% GEMM", "host us/step", "calls/step");
    if (both) std::printf(" %16s %15s", "gpu/cpu prefill", "gpu/cpu decode");
    std::printf("\n");
    for (const DecodeRow& r : t.rows) {
        std::printf("%-20s %-6s %4d %14.1f %14.1f %12s %9.2f %7.1f%% %10.2f %7.1f%%", r.plan.c_str(),
                    device_word(r.device), r.kv_layers, r.prefill_tok_s, r.decode_tok_s,
                    format_bytes((double)r.step_bytes).c_str(), r.gbs,
                    r.ceiling_gbs > 0 ? 100.0 * r.gbs / r.ceiling_gbs : 0.0, r.gflops,
                    r.ceiling_gflops > 0 ? 100.0 * r.gflops / r.ceiling_gflops : 0.0);
        if (r.device == Device::CUDA) std::printf(" %12.1f %10.1f", r.host_us, r.calls);
        else std::printf(" %12s %10s", "-", "-");
        const DecodeRow* cpu = find_row(t, r.plan, Device::CPU);
        if (both && r.device == Device::CUDA && cpu && cpu->prefill_tok_s > 0 && cpu->decode_tok_s > 0)
            std::printf(" %15.2fx %14.2fx", r.prefill_tok_s / cpu->prefill_tok_s, r.decode_tok_s / cpu->decode_tok_s);
        std::printf("\n");
    }
    std::printf("bytes/step: every weight once (embedding: the batch's rows; W_K/W_V: KV layers only) plus each\n"
                "sequence's visible K/V, averaged over the steps; GB/s = those bytes / decode time. GFLOP/s:\n"
                "2 per weight multiply-add of every matmul, per sequence, plus attention's, / decode time.\n"
                "A step is memory-bound while %% copy is the larger of the two, compute-bound once %% GEMM is.\n"
                "host us/step: host time issuing a decode step, without waiting for the GPU; calls/step: the\n"
                "runtime calls it makes (launches, copies, graph launches, synchronizations).\n");
    for (const DecodeRow& r : t.rows)
        if (r.gbs > r.ceiling_gbs && r.ceiling_gbs > 0) {
            std::printf("over 100%%: decode mostly reads, and a read stream can outrun a copy (which also writes),\n"
                        "or the weights partly stay in cache between steps.\n");
            break;
        }
    // headline figures (bench/gpu-report.sh)
    for (const std::string& line : decode_headlines(o, t)) std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

int bench_plans(int argc, char** argv) {
    const Args a = plan_bench_args(argc, argv, "plans");
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare bench plans (MODEL | --preset NAME) [--plans \"P1 P2 ...\"] [--device cpu|cuda|both]\n"
            "         [--batch B] [--prompt N] [-n STEPS] [--repeats R] [--copy-size SIZE] [--gemm-size G]\n"
            "         [--no-graphs] [--unfused] [-s SEED]\n"
            "For each plan (default: standard, cla:2, yoco, sandwich-middle:L/2, lckv:2) and device, prefills\n"
            "B random prompts of N tokens (default 1 x 32) and decodes STEPS tokens (default 64), R times\n"
            "(default 5) after one warm-up; one row per (plan, device): KV layers, median prefill and decode\n"
            "tokens/s, the bytes a decode step must move at least once (every weight once, the embedding's\n"
            "batch rows only, W_K/W_V of KV layers only, plus each sequence's visible K/V cache, averaged over\n"
            "the steps), the GB/s that implies, and its %% of a copy ceiling measured first on the same device:\n"
            "a device-to-device cudaMemcpy on CUDA, a memcpy on the CPU (the faster of one thread and all\n"
            "OpenMP threads), both SIZE bytes (default 256M) counted as read + write; and the arithmetic a\n"
            "step does (2 flops per weight multiply-add per sequence, plus attention's), its GFLOP/s, and its\n"
            "%% of a GEMM ceiling measured first on the device: the GEMM the forward runs at G^3 (default 1024\n"
            "on the CPU, 4096 on CUDA). Batch 1 is bound by memory; a large batch by the GEMM. --device both\n"
            "adds the GPU/CPU ratios per plan. Decode is greedy with the token picked by the backend (on the\n"
            "GPU, on the device); CUDA rows also give the host time and runtime calls per decode step. On\n"
            "CUDA a step is one graph launch of the fused kernels; --no-graphs launches kernel by kernel and\n"
            "--unfused uses the unfused kernels (the step before graphs and fusion). `headline:` lines give\n"
            "standard's (or the first plan's) decode tokens/s and %% of copy per device, and on CUDA its host\n"
            "time per step. A MODEL file needs the standard plan (every plan is applied to it); --preset makes\n"
            "random weights per plan. Ranges: B 1..65535, N and STEPS 1.. with N + STEPS at most the model's\n"
            "max_seq_len, R 1..1000, SIZE up to what memory holds twice, G 1..16384, SEED any 32-bit integer;\n"
            "the run is checked against the memory available before it starts.\n");
        return 0;
    }
    const PlanBenchOptions o = plan_bench_options(a, "plans");
    const DecodeTable t = run_decode_table(o);
    print_decode_table(o, t);
    return 0;
}

// ---------------------------------------------------------------------------
// bench prefill

static bool is_standard(const Plan& p) { return !p.iterates() && p.n_kv_layers() == p.n_layers() && !p.diag_all; }

static double prefill_seconds(Model& m, Device d, const PlanBenchOptions& o, const PrefillOptions& opt) {
    GenerationSettings s;
    s.device = d;
    s.prompt = o.prompt;
    s.gen = 0;
    s.prefill = opt;
    return time_generation(m, s, o.batch, 0, o.repeats, 1).prefill_s;  // first round warms up
}

std::vector<PrefillRow> run_prefill_table(const PlanBenchOptions& o, std::vector<double>* standard_s) {
    std::vector<PrefillRow> rows;
    auto add = [&](const Plan& p, Device d, const std::string& mode, int T, const std::string& passes, double s) {
        PrefillRow r;
        r.plan = p.name;
        r.device = d;
        r.mode = mode;
        r.iterations = T;
        r.passes = passes;
        r.seconds = s;
        r.tok_s = s > 0 ? (double)o.batch * o.prompt / s : 0;
        rows.push_back(r);
    };
    std::vector<double> baseline(o.devices.size(), 0);
    for (const Plan& p : o.plans) {
        Model m = o.models.make(p);
        for (size_t i = 0; i < o.devices.size(); i++) {
            const Device d = o.devices[i];
            PrefillOptions tbt;
            tbt.sequential = true;
            add(p, d, "token by token", 0, std::to_string(p.n_layers()) + "/token", prefill_seconds(m, d, o, tbt));
            if (!p.iterates()) {  // one pass is exact; iterations would change nothing
                const double s = prefill_seconds(m, d, o, PrefillOptions{});
                add(p, d, "one pass", 0, std::to_string(p.n_layers()), s);
                if (is_standard(p) && baseline[i] == 0) baseline[i] = s;
                continue;
            }
            for (int T : o.iterations) {
                PrefillOptions it;
                it.iterations = T;
                it.always_iterate = true;  // even where n <= T would go token by token
                add(p, d, "T=" + std::to_string(T), T, std::to_string(prefill_layer_passes(p, T)),
                    prefill_seconds(m, d, o, it));
            }
        }
    }
    for (size_t i = 0; i < o.devices.size(); i++)
        if (baseline[i] == 0) {  // standard was not asked for: time its one pass for the ratios
            Model m = o.models.make(parse_plan("standard", o.models.config.n_layers));
            baseline[i] = prefill_seconds(m, o.devices[i], o, PrefillOptions{});
        }
    // the ratios, once every time is known
    for (PrefillRow& r : rows) {
        double tbt = 0;
        for (const PrefillRow& q : rows)
            if (q.plan == r.plan && q.device == r.device && q.mode == "token by token") tbt = q.seconds;
        const size_t i = std::find(o.devices.begin(), o.devices.end(), r.device) - o.devices.begin();
        r.vs_token_by_token = tbt > 0 ? r.seconds / tbt : 0;
        r.vs_standard = baseline[i] > 0 ? r.seconds / baseline[i] : 0;
    }
    if (standard_s) *standard_s = baseline;
    return rows;
}

int bench_prefill(int argc, char** argv) {
    const Args a = plan_bench_args(argc, argv, "prefill");
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare bench prefill (MODEL | --preset NAME) [--plans \"P1 P2 ...\"] [--device cpu|cuda|both]\n"
            "         [--batch B] [--prompt N] [--iterations \"T1 T2 ...\"] [--repeats R] [-s SEED]\n"
            "For each plan (default: standard, cla:2, yoco, sandwich-middle:L/2, lckv:2), times the prefill of\n"
            "B random prompts of N tokens (default 1 x 64): token by token, then one pass (plans without a\n"
            "cyclic block) or parallel iterations T for each T in the list (default \"1 2 4 9\"; always\n"
            "iterating, even where N <= T). Median of R runs (default 3) after one warm-up. Each row: layer\n"
            "passes, time, tokens/s, time / the plan's token-by-token time, and time / standard's one-pass\n"
            "time on the same device (timed as well when standard is not in the list). Ranges: B 1..65535,\n"
            "N 1..the model's max_seq_len, each T 1..1024, R 1..1000, SEED any 32-bit integer.\n");
        return 0;
    }
    const PlanBenchOptions o = plan_bench_options(a, "prefill");
    std::vector<double> standard_s;
    const std::vector<PrefillRow> rows = run_prefill_table(o, &standard_s);

    std::printf("bench prefill: %s, batch %d, prompt %d, median of %d repeats after 1 warm-up\n", o.models.name.c_str(),
                o.batch, o.prompt, o.repeats);
    for (size_t i = 0; i < o.devices.size(); i++)
        std::printf("standard one pass on %s: %.3f ms (the \"vs standard\" baseline)\n", device_word(o.devices[i]),
                    1e3 * standard_s[i]);
    std::printf("%-20s %-6s %-15s %8s %11s %12s %11s %12s\n", "plan", "device", "mode", "passes", "time ms", "tok/s",
                "vs tbt", "vs standard");
    for (const PrefillRow& r : rows)
        std::printf("%-20s %-6s %-15s %8s %11.3f %12.1f %10.2fx %11.2fx\n", r.plan.c_str(), device_word(r.device),
                    r.mode.c_str(), r.passes.c_str(), 1e3 * r.seconds, r.tok_s, r.vs_token_by_token, r.vs_standard);
    std::printf("passes: layer passes over the prompt (token by token: per token). vs tbt: time / the plan's\n"
                "token-by-token time; vs standard: time / standard's one pass. Plans without a cyclic block get no\n"
                "T rows: one pass is exact for them and iterations change nothing.\n");
    // headline figures (bench/gpu-report.sh): standard's one pass, and each iterating plan's
    // largest T against its own token by token, per device
    for (size_t i = 0; i < o.devices.size(); i++) {
        const std::string key = "prefill_n" + std::to_string(o.prompt) + "_" + headline_model(o.models.name) +
                                (o.devices[i] == Device::CPU ? "_cpu" : "");
        if (standard_s[i] > 0) print_headline(key + "_tok_s", (double)o.batch * o.prompt / standard_s[i], "tok/s");
        const PrefillRow* last = nullptr;
        for (const PrefillRow& r : rows) {
            if (r.device != o.devices[i] || r.iterations == 0) continue;
            if (last && last->plan != r.plan)
                print_headline(key + "_" + last->plan + "_T" + std::to_string(last->iterations) + "_vs_tbt",
                               last->vs_token_by_token, "x");
            last = &r;
        }
        if (last)
            print_headline(key + "_" + last->plan + "_T" + std::to_string(last->iterations) + "_vs_tbt",
                           last->vs_token_by_token, "x");
    }
    return 0;
}
