// kvshare bench throughput: the papers' efficiency experiment on the user's own machine.
#include "src/bench/throughput.h"
#include "src/commands/args.h"
#include "src/bench/common.h"
#include "src/bench/svg.h"
#include "src/model/config.h"
#include "src/model/kv_cache.h"
#include "src/util.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

int max_batch_for(size_t budget, size_t fixed, size_t per_sequence, int cap) {
    if (fixed > budget) return 0;
    if (per_sequence == 0) return cap;
    const size_t fits = (budget - fixed) / per_sequence;
    return (int)std::min<size_t>(fits, (size_t)cap);
}

// ---------------------------------------------------------------------------
// CSV and SVG

std::string throughput_csv(const std::vector<ThroughputRow>& rows) {
    std::ostringstream o;
    o << "plan,kv_layers,kv_bytes_per_token,max_batch,batch,memory_bytes,prefill_s,decode_tok_s,total_tok_s\n";
    char buf[512];
    for (const ThroughputRow& r : rows) {
        std::snprintf(buf, sizeof buf, "%s,%d,%zu,%d,%d,%zu,%.6f,%.3f,%.3f\n", r.plan.c_str(), r.kv_layers,
                      r.kv_bytes_per_token, r.max_batch, r.batch, r.memory, r.prefill_s, r.decode_tok_s(), r.total_tok_s());
        o << buf;
    }
    return o.str();
}

std::string throughput_svg(const std::vector<ThroughputRow>& rows, const std::string& title) {
    const double W = 760, H = 460, left = 80, right = 190, top = 50, bottom = 60;
    const double pw = W - left - right, ph = H - top - bottom;
    // one line per plan, in the order the plans first appear; points sorted by batch
    std::vector<std::string> plans;
    std::map<std::string, std::vector<std::pair<int, double>>> lines;
    int max_b = 1;
    double max_y = 0;
    for (const ThroughputRow& r : rows) {
        if (r.batch < 1) continue;
        if (!lines.count(r.plan)) plans.push_back(r.plan);
        lines[r.plan].push_back({r.batch, r.total_tok_s()});
        max_b = std::max(max_b, r.batch);
        max_y = std::max(max_y, r.total_tok_s());
    }
    if (max_y <= 0) max_y = 1;
    const double y_step = nice_step(max_y), y_top = std::ceil(max_y / y_step) * y_step;
    const double x_top = std::max(1.0, std::ceil(std::log2((double)max_b)));
    auto X = [&](double batch) { return left + pw * std::log2(batch) / x_top; };
    auto Y = [&](double v) { return top + ph * (1 - v / y_top); };
    const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};

    std::ostringstream o;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  W, H, W, H);
    o << buf;
    o << "<text x=\"" << W / 2 << "\" y=\"24\" text-anchor=\"middle\" font-size=\"14\">" << xml_escape(title) << "</text>\n";
    for (double v = 0; v <= y_top + y_step / 2; v += y_step) {  // horizontal grid and y labels
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                      left, Y(v), left + pw, Y(v), left - 6, Y(v) + 4, v);
        o << buf;
    }
    for (int e = 0; e <= (int)x_top; e++) {  // batch ticks at powers of two
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d</text>\n",
                      X(std::pow(2.0, e)), top, X(std::pow(2.0, e)), top + ph, X(std::pow(2.0, e)), top + ph + 18, 1 << e);
        o << buf;
    }
    o << plot_frame(left, top, pw, ph, H, "batch (sequences generated together)", "generated tokens/s");
    for (size_t i = 0; i < plans.size(); i++) {
        auto pts = lines[plans[i]];
        std::sort(pts.begin(), pts.end());
        const char* color = colors[i % 8];
        o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
        for (auto& p : pts) {
            std::snprintf(buf, sizeof buf, "%.1f,%.1f ", X(p.first), Y(p.second));
            o << buf;
        }
        o << "\"/>\n";
        for (auto& p : pts) {
            std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", X(p.first),
                          Y(p.second), color);
            o << buf;
        }
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"/>"
                      "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n",
                      left + pw + 16, top + 10 + 20.0 * i, left + pw + 40, top + 10 + 20.0 * i, color, left + pw + 46,
                      top + 14 + 20.0 * i, xml_escape(plans[i]).c_str());
        o << buf;
    }
    o << "</svg>\n";
    return o.str();
}

// ---------------------------------------------------------------------------
// measuring one plan

namespace {

// The plan's columns of a row, before anything ran.
ThroughputRow plan_row(const Model& m, int gen) {
    ThroughputRow row;
    row.plan = m.plan.name;
    row.kv_layers = m.plan.n_kv_layers();
    row.kv_bytes_per_token = (size_t)m.plan.n_kv_layers() * 2 * m.config.kv_dim() * sizeof(float);
    row.gen = gen;
    return row;
}

// A row for a run at `batch`: the plan's columns from `base`, the measurements from `r`.
ThroughputRow with_run(ThroughputRow base, int batch, const GenerationRun& r) {
    base.batch = batch;
    base.memory = r.memory;
    base.prefill_s = r.prefill_s;
    base.decode_s = r.decode_s;
    return base;
}

// Fits the largest batch under the budget from two measured probes (batch 1 and batch
// `probe`), then checks the fit with the real run and steps down while it does not fit.
ThroughputRow fit_and_run(Model& m, const GenerationSettings& s, size_t budget, int cap, bool verbose) {
    ThroughputRow row = plan_row(m, s.gen);
    const size_t one = time_generation(m, s, 1, 1, 1).memory;
    if (one > budget) {  // not even one sequence: nothing more to measure
        if (verbose)
            std::fprintf(stderr, "  %s: batch 1 uses %s, over the budget\n", m.plan.name.c_str(), format_bytes((double)one).c_str());
        return row;
    }
    const int probe = std::min(cap, 8);
    size_t per_sequence = 0;
    if (probe > 1) {
        const size_t many = time_generation(m, s, probe, 1, 1).memory;
        per_sequence = many > one ? (many - one + (probe - 2)) / (probe - 1) : 0;  // rounded up
    }
    const size_t fixed = one > per_sequence ? one - per_sequence : 0;
    int batch = max_batch_for(budget, fixed, per_sequence, cap);
    if (verbose)
        std::fprintf(stderr, "  %s: batch 1 uses %s, each more sequence %s -> batch %d\n", m.plan.name.c_str(),
                     format_bytes((double)one).c_str(), format_bytes((double)per_sequence).c_str(), batch);
    row.max_batch = batch;
    while (batch > 0) {
        GenerationRun r = time_generation(m, s, batch, s.gen, s.repeats);
        if (r.memory <= budget) return with_run(row, batch, r);
        // over budget: step down by what the excess costs per sequence (at least one)
        const size_t excess = r.memory - budget;
        const int down = per_sequence ? (int)std::max<size_t>(1, (excess + per_sequence - 1) / per_sequence) : 1;
        if (verbose)
            std::fprintf(stderr, "  %s: batch %d measured %s, over budget; trying %d\n", m.plan.name.c_str(), batch,
                         format_bytes((double)r.memory).c_str(), std::max(0, batch - down));
        batch = std::max(0, batch - down);
        row.max_batch = batch;
    }
    return row;
}

}  // namespace

// ---------------------------------------------------------------------------
// the command

int bench_throughput(int argc, char** argv) {
    Args a = parse_args(argc, argv, 1, "kvshare bench throughput",
                        {"--preset", "--plans", "--device", "--prompt", "-n", "--budget", "--batch", "--max-batch",
                         "--repeats", "--prefill", "--csv", "--svg", "-s"},
                        {"--sweep", "--verbose"});
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare bench throughput (MODEL | --preset NAME) [--plans \"P1 P2 ...\"] [--device cpu|cuda]\n"
            "         [--prompt N] [-n GEN] [--budget SIZE | --batch B] [--max-batch CAP] [--sweep]\n"
            "         [--repeats R] [--prefill MODE] [--csv FILE] [--svg FILE] [-s SEED] [--verbose]\n"
            "For each plan (default: standard, cla:2, yoco, sandwich-middle:L/2, lckv:2), finds the largest\n"
            "batch whose measured memory (weights + KV cache + run state) fits SIZE (default: what the\n"
            "device has free; 512M, 2G, ...), capped at CAP (default 64 on the CPU, 1024 on CUDA), prefills\n"
            "that many random prompts of N tokens (default 64) and generates GEN tokens each (default 64).\n"
            "One row per plan: KV layers, KV bytes per token, max batch, memory, prefill time, decode\n"
            "tokens/s, total (generated tokens / (prefill + decode time)) and its ratio to standard.\n"
            "--batch B runs every plan at B instead (no budget). --sweep also runs batches 1, 2, 4, ...\n"
            "up to each plan's max (the chart's points). A MODEL file needs the standard plan, so that\n"
            "every plan can be applied to it; --preset makes random weights per plan. Ranges: N and GEN 1..\n"
            "with N + GEN at most the model's max_seq_len, SIZE at most what the device has available,\n"
            "CAP and B 1..65535, R 1..1000, SEED any 32-bit integer. --csv and --svg are written only when\n"
            "the run succeeds.\n");
        return 0;
    }
    if (!a.has("--preset") && a.positional.empty()) fail("kvshare bench throughput: give MODEL or --preset NAME");
    if (a.has("--batch") && (a.has("--budget") || a.has("--sweep")))
        fail("kvshare bench throughput: --batch runs a fixed batch; it does not combine with --budget or --sweep");
    const std::string csv = a.output_file("--csv"), svg = a.output_file("--svg");
    GenerationSettings s;
    s.device = parse_device(a.get("--device", "cpu"));
    s.repeats = a.get_int("--repeats", 1, 1, 1000);
    s.prefill = parse_prefill(a.get("--prefill", "parallel"));
    const int cap = a.get_int("--max-batch", s.device == Device::CUDA ? 1024 : 64, 1, 65535);
    const int fixed_batch = a.get_int("--batch", 0, 1, 65535);
    if (s.device == Device::CUDA) {
        std::string why;
        if (!cuda_available(&why)) fail("--device cuda: " + why);
    }

    // the model: random weights per plan, or one standard checkpoint re-planned per plan
    const PlanModels models = plan_models(a);
    const Config& config = models.config;
    s.prompt = a.get_int("--prompt", 64, 1, config.max_seq_len);
    s.gen = a.get_int("-n", 64, 1, config.max_seq_len);
    if (s.prompt + s.gen > config.max_seq_len)
        fail("kvshare bench throughput: --prompt + -n = " + std::to_string(s.prompt + s.gen) + " exceeds the context " +
             std::to_string(config.max_seq_len));
    const std::vector<Plan> plans = bench_plan_list(a, models);  // all errors up front

    const size_t available = available_bytes(s.device);
    const size_t budget = a.has("--budget") ? parse_bytes(a.get("--budget"), "kvshare bench throughput --budget") : available;
    if (budget > available)
        fail("kvshare bench throughput: --budget " + a.get("--budget") + " is " + format_bytes((double)budget) + ", more than the " +
             format_bytes((double)available) + (s.device == Device::CUDA ? " free on the GPU" : " of memory available"));
    const bool verbose = a.has("--verbose");
    std::vector<ThroughputRow> rows;  // the table: one per plan
    std::vector<ThroughputRow> points;  // every run (the sweep's too), for CSV and SVG
    for (const Plan& p : plans) {
        Model m = models.make(p);
        // warm-up before the first plan: the first run pays for thread pools, the CUDA
        // context and lazy loading (on the first plan's model: a 1.1B one takes seconds to make)
        if (&p == &plans[0]) time_generation(m, s, 1, 2, 1);
        ThroughputRow row;
        if (fixed_batch > 0) {
            row = with_run(plan_row(m, s.gen), fixed_batch, time_generation(m, s, fixed_batch, s.gen, s.repeats));
            row.max_batch = -1;  // no search
        } else {
            row = fit_and_run(m, s, budget, cap, verbose);
        }
        if (a.has("--sweep"))
            for (int b = 1; b < row.batch; b *= 2)
                points.push_back(with_run(row, b, time_generation(m, s, b, s.gen, s.repeats)));
        rows.push_back(row);
        if (row.batch > 0) points.push_back(row);
        if (verbose) std::fprintf(stderr, "  %s done\n", p.name.c_str());
    }

    // the table
    const Device d = s.device;
    std::printf("bench throughput: %s, device %s, prompt %d, generate %d, prefill %s, %s\n",
                models.name.c_str(),
                d == Device::CUDA ? "cuda" : "cpu", s.prompt, s.gen, a.get("--prefill", "parallel").c_str(),
                fixed_batch > 0 ? ("fixed batch " + std::to_string(fixed_batch)).c_str()
                                : ("budget " + format_bytes((double)budget) + ", batch cap " + std::to_string(cap)).c_str());
    const ThroughputRow* standard = nullptr;
    for (const ThroughputRow& r : rows)
        if (r.plan == "standard" && r.batch > 0) standard = &r;
    if (!standard && !rows.empty() && rows[0].batch > 0) standard = &rows[0];
    std::printf("%-20s %4s %10s %9s %10s %10s %12s %12s %11s\n", "plan", "kv", "KV/token", "max batch", "memory",
                "prefill s", "decode tok/s", "total tok/s", standard ? ("vs " + standard->plan).c_str() : "");
    for (const ThroughputRow& r : rows) {
        const std::string mb = r.max_batch < 0 ? "-" : std::to_string(r.max_batch);
        if (r.batch == 0) {
            std::printf("%-20s %4d %10s %9s   does not fit the budget at batch 1\n", r.plan.c_str(), r.kv_layers,
                        format_bytes((double)r.kv_bytes_per_token).c_str(), mb.c_str());
            continue;
        }
        std::printf("%-20s %4d %10s %9s %10s %10.3f %12.1f %12.1f %10.2fx\n", r.plan.c_str(), r.kv_layers,
                    format_bytes((double)r.kv_bytes_per_token).c_str(), mb.c_str(), format_bytes((double)r.memory).c_str(),
                    r.prefill_s, r.decode_tok_s(), r.total_tok_s(),
                    standard ? r.total_tok_s() / standard->total_tok_s() : 0.0);
    }
    if (a.has("--sweep")) {
        std::printf("sweep (total tok/s by batch):\n");
        for (const ThroughputRow& r : points)
            std::printf("  %-20s batch %5d  memory %10s  total %10.1f tok/s\n", r.plan.c_str(), r.batch,
                        format_bytes((double)r.memory).c_str(), r.total_tok_s());
    }
    bool any = false;
    for (const ThroughputRow& r : rows) any = any || r.batch > 0;
    if (!any) fail("kvshare bench throughput: no plan fits the budget at batch 1; raise --budget");
    // headline figures (bench/gpu-report.sh): the baseline's tokens/s, and each plan's batch
    // and its tokens/s over the baseline's, at the budget
    const std::string key = "throughput_" + headline_model(models.name) + (d == Device::CPU ? "_cpu" : "");
    if (standard) print_headline(key + "_" + standard->plan + "_tok_s", standard->total_tok_s(), "tok/s");
    for (const ThroughputRow& r : rows) {
        if (r.batch == 0) continue;
        print_headline(key + "_" + r.plan + "_batch", r.batch, "sequences");
        if (standard && &r != standard)
            print_headline(key + "_" + r.plan + "_vs_" + standard->plan, r.total_tok_s() / standard->total_tok_s(), "x");
    }
    if (!csv.empty()) write_file_atomic(csv, throughput_csv(points));
    if (!svg.empty()) {
        const std::string title = std::string("generated tokens/s by batch, ") +
                                  (a.has("--preset") ? a.get("--preset") : std::string("model")) + ", " +
                                  (d == Device::CUDA ? "cuda" : "cpu") + ", prompt " + std::to_string(s.prompt) +
                                  ", generate " + std::to_string(s.gen);
        write_file_atomic(svg, throughput_svg(points, title));
    }
    return 0;
}
