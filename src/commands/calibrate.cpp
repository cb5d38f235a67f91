#include "src/commands/calibrate.h"
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/formats/hf_config.h"
#include "src/commands/commands.h"
#include "src/commands/eval.h"
#include "src/model/memory.h"
#include "src/text/stories.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>

// ---------------------------------------------------------------------------
// measurements

// Final hidden states after the final norm for every position: (count, n, dim).
static std::vector<float> final_hidden(const Model& m, const std::vector<int>& sequences, int count, int n, Device device) {
    auto be = make_backend(m, device, count, n);
    PrefillOptions opt;
    opt.all_positions = true;
    be->prefill(sequences.data(), n, opt);
    return std::vector<float>(be->hidden(), be->hidden() + (size_t)count * n * m.config.dim);
}

std::vector<std::vector<float>> mean_kv_per_layer(const Model& m, const std::vector<int>& sequences, int count, int n,
                                                  Device device) {
    auto be = make_backend(m, device, count, n);
    be->prefill(sequences.data(), n, PrefillOptions{});
    const size_t per = (size_t)n * m.config.kv_dim();  // one sequence's K (or V)
    std::vector<std::vector<float>> mean(m.config.n_layers, std::vector<float>(2 * per, 0.0f));
    std::vector<float> k, v;
    for (int l = 0; l < m.config.n_layers; l++) {
        be->read_kv(l, k, v);  // (count, n, kv_dim) each
        std::vector<double> acc(2 * per, 0.0);
        for (int s = 0; s < count; s++)
            for (size_t i = 0; i < per; i++) {
                acc[i] += k[s * per + i];
                acc[per + i] += v[s * per + i];
            }
        for (size_t i = 0; i < 2 * per; i++) mean[l][i] = (float)(acc[i] / count);
    }
    return mean;
}

double euclidean_distance(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0.0;
    for (size_t i = 0; i < a.size(); i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return std::sqrt(s);
}

// Mean over sequences of cos(a_s, b_s), each sequence's states flattened: (count, per).
static double mean_cosine(const std::vector<float>& a, const std::vector<float>& b, int count, size_t per) {
    double total = 0.0;
    for (int s = 0; s < count; s++) {
        double dot = 0, na = 0, nb = 0;
        for (size_t i = s * per; i < (s + 1) * per; i++) {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        total += (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
    }
    return total / count;
}

double mean_hidden_similarity(const Model& a, const Model& b, const std::vector<int>& sequences, int count, int n,
                              Device device) {
    return mean_cosine(final_hidden(a, sequences, count, n, device), final_hidden(b, sequences, count, n, device), count,
                       (size_t)n * a.config.dim);
}

// ---------------------------------------------------------------------------
// the greedy search

CalibrationResult calibrate(const Model& m, const std::vector<int>& sequences, int count, int n, const CalibrateOptions& o) {
    const int L = m.config.n_layers;
    const int already = L - m.plan.n_kv_layers();
    if (o.shared_layers < 1 || already + o.shared_layers > L - 1)
        fail("calibrate: can share 1.." + std::to_string(L - 1 - already) + " more layers of this " + std::to_string(L) +
             "-layer model (one KV layer must remain), not " + std::to_string(o.shared_layers));
    if (count < 1 || n < 1 || sequences.size() != (size_t)count * n) fail("calibrate: no calibration sequences");

    // 1-3: mean K/V per layer, distances of pairs i > j, in the chosen order
    auto mean = mean_kv_per_layer(m, sequences, count, n, o.device);
    CalibrationResult r;
    for (int i = 0; i < L; i++)
        for (int j = 0; j < i; j++) r.pairs.push_back(PairTrial{i, j, euclidean_distance(mean[i], mean[j])});
    auto by_distance = [](const PairTrial& a, const PairTrial& b) { return a.distance > b.distance; };
    std::stable_sort(r.pairs.begin(), r.pairs.end(), by_distance);
    if (o.order == PairOrder::Similar) std::reverse(r.pairs.begin(), r.pairs.end());
    if (o.order == PairOrder::Random) {
        Rng rng(o.seed);
        for (size_t i = r.pairs.size(); i > 1; i--) std::swap(r.pairs[i - 1], r.pairs[rng.next_u32() % i]);
    }

    // 4: greedy, each change kept only while the output stays close to the original's
    const std::vector<float> original = final_hidden(m, sequences, count, n, o.device);
    std::vector<int> source = m.plan.source;
    for (PairTrial& t : r.pairs) {
        if (r.shared >= o.shared_layers) break;
        t.reached = true;
        if (source[t.layer] != t.layer || source[t.with] == t.layer) continue;  // already reads another layer
        std::vector<int> candidate = source;
        candidate[t.layer] = source[t.with];  // root(j): sources are always resolved
        Plan plan = make_plan(candidate, m.plan.diag_all, "candidate");
        Model shared = apply_plan(m, plan);
        t.tried = true;
        t.source = source[t.with];
        t.similarity = mean_cosine(original, final_hidden(shared, sequences, count, n, o.device), count, (size_t)n * m.config.dim);
        if (!std::isfinite(t.similarity))
            fail("calibrate: the similarity of layer " + std::to_string(t.layer) + " reading layer " + std::to_string(t.source) +
                 " is not finite (the model's hidden states overflow)");
        if (t.similarity > o.threshold) {
            t.accepted = true;
            source = plan.source;
            r.shared = (L - plan.n_kv_layers()) - already;
            r.after_each.push_back(plan);
        }
    }
    r.plan = make_plan(source, m.plan.diag_all, "kvsharer");
    r.plan.name = r.plan.spec();
    return r;
}

// ---------------------------------------------------------------------------
// kvshare calibrate

static const char* order_name(PairOrder o) {
    return o == PairOrder::Dissimilar ? "dissimilar" : o == PairOrder::Similar ? "similar" : "random";
}

int cmd_calibrate(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare calibrate",
                        {"-z", "--data", "--sequences", "--tokens", "--shared", "--ratio", "--threshold", "--order", "-s", "-o",
                         "--device", "--plan", "--layer-types", "--each"},
                        {});
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare calibrate MODEL [-z TOKENIZER] [--data FILE] (--shared C | --ratio R) [options]\n"
            "KVSharer: find layers that can reuse a dissimilar earlier layer's KV cache.\n"
            "  --data FILE        calibration text (default: the project's story generator)\n"
            "  --sequences N      calibration sequences (default 30) [1..4096]\n"
            "  --tokens T         tokens per sequence (default 64) [2..the model's max_seq_len]\n"
            "  --shared C         layers to share [1..L-1, fewer if the plan shares already]; or --ratio R,\n"
            "                     the fraction of layers (C = round(R L)) [above 0, below 1]\n"
            "  --threshold X      keep a change while the mean cosine similarity of final hidden\n"
            "                     states to the original model stays above X (default 0.5) [-1..1]\n"
            "  --order O          dissimilar (default, most distant pairs first), similar, random\n"
            "  -s SEED            seed for --order random (default 1) [any 32-bit integer]\n"
            "  -o FILE            where to write the plan (default kvsharer.plan)\n"
            "  --layer-types FILE also write the plan as an LCKV layer_types string (\"0_0_2_2\"), for the\n"
            "                     config.json of the LCKV authors' code (kvshare export writes it too)\n"
            "  --each PREFIX      also write the plan after each accepted change, PREFIX.1.plan ..\n"
            "                     PREFIX.C.plan: the plans of searches for 1 .. C shared layers, in one run\n"
            "  --plan PLAN        starting plan (default: the model's own)\n"
            "  --device D         cpu (default) or cuda\n");
        return 0;
    }
    const std::string path = a.need_model(0);
    if (a.positional.size() > 1)
        fail("kvshare calibrate: unexpected argument '" + a.positional[1] + "' (the plan file goes after -o)");
    const std::string out = a.output_file("-o", "kvsharer.plan");
    const std::string each = a.get("--each");
    if (a.has("--each")) check_output_file(each + ".1.plan", "kvshare calibrate --each");
    const std::string data = a.input_file("--data");
    const std::string tok_path = a.input_file("-z");
    if (a.has("--shared") == a.has("--ratio")) fail("kvshare calibrate: give one of --shared C or --ratio R");
    CalibrateOptions o;
    o.threshold = a.get_float("--threshold", 0.5f, -1.0f, 1.0f);
    const std::string order = a.get("--order", "dissimilar");
    if (order == "dissimilar") o.order = PairOrder::Dissimilar;
    else if (order == "similar") o.order = PairOrder::Similar;
    else if (order == "random") o.order = PairOrder::Random;
    else fail("kvshare calibrate: --order must be dissimilar, similar or random");
    o.seed = (uint64_t)a.get_int("-s", 1, INT_MIN, INT_MAX);
    o.device = parse_device(a.get("--device", "cpu"));
    const int count = a.get_int("--sequences", 30, 1, 4096);
    Model m = load_model(path, a.get("--plan"));
    const int L = m.config.n_layers;
    if (a.has("--ratio")) {
        const float ratio = a.get_float("--ratio", 0, 0.0f, 1.0f);
        if (!(ratio > 0 && ratio < 1)) fail("kvshare calibrate: --ratio must be above 0 and below 1, got " + a.get("--ratio"));
        o.shared_layers = std::max(1, (int)std::lround(ratio * L));
    } else {
        o.shared_layers = a.get_int("--shared", 1, 1, std::max(1, L - 1));
    }
    const int n = a.get_int("--tokens", 64, 2, std::max(2, m.config.max_seq_len));
    if (n > m.config.max_seq_len) fail("kvshare calibrate: the model's context of " + std::to_string(m.config.max_seq_len) + " is too short to calibrate");

    // every backend holds all sequences at once; the candidate is a copy of the model
    MemoryNeed need;
    add_backend(need, m, o.device, count, n, n, true);
    need.host("a candidate copy of the weights", weight_bytes(m.config, m.plan.n_kv_layers()));
    need.host("hidden states and mean K/V", sat_product({(size_t)count + (size_t)L, (size_t)n, (size_t)m.config.dim + 2 * m.config.kv_dim(), 2 * sizeof(float)}));
    if (!data.empty()) need.host("--data text and its tokens", sat_mul(file_size(data), 1 + sizeof(int)));
    check_memory(need, "kvshare calibrate", "fewer --sequences or --tokens, or a smaller --data file");

    // calibration tokens: the text cut into `count` windows of n tokens
    Tokenizer tok = tokenizer_for(tok_path, m);
    std::vector<int> stream;
    if (!data.empty()) {
        const std::string text = read_text_file(data, "kvshare calibrate --data");
        if (text.empty()) fail("kvshare calibrate: '" + data + "' is empty");
        stream = tok.encode(text, tok.add_bos, false);
    } else {  // stories, each with BOS, as `train --stories` saw them
        stream = encode_documents(tok, story_split(Split::Train, count * 4));
    }
    const int windows = std::min<int>(count, (int)(stream.size() / n));
    if (windows < 1)
        fail("kvshare calibrate: the calibration text has " + std::to_string(stream.size()) + " tokens, fewer than one sequence of " +
             std::to_string(n));
    stream.resize((size_t)windows * n);

    CalibrationResult r = calibrate(m, stream, windows, n, o);
    std::printf("KVSharer calibration of %s: %d sequences x %d tokens, order %s, threshold %.3f, target %d shared layers\n",
                path.c_str(), windows, n, order_name(o.order), o.threshold, o.shared_layers);
    std::printf("%-6s %-6s %-12s %-8s %-12s %s\n", "layer", "with", "distance", "source", "similarity", "decision");
    for (const PairTrial& t : r.pairs) {
        if (!t.tried) {
            std::printf("%-6d %-6d %-12.4g %-8s %-12s %s\n", t.layer, t.with, t.distance, "-", "-",
                        t.reached ? "skipped: already shares" : "not reached");
            continue;
        }
        std::printf("%-6d %-6d %-12.4g %-8d %-12.6f %s\n", t.layer, t.with, t.distance, t.source, t.similarity,
                    t.accepted ? "accepted" : "rejected");
    }
    std::printf("shared %d of %d layers; plan %s\n", r.shared, o.shared_layers, r.plan.spec().c_str());
    std::printf("LCKV layer_types \"%s\"\n", lckv_layer_types(r.plan).c_str());
    Model shared = apply_plan(m, r.plan);
    std::printf("%s\n", kv_summary(shared, 1, m.config.max_seq_len).c_str());
    if (r.shared < o.shared_layers)
        std::printf("note: only %d layers could share above the threshold\n", r.shared);
    write_plan_file(out, r.plan,
                    "kvshare calibrate (KVSharer) on " + path + ": " + std::to_string(r.shared) + " shared layers, order " +
                        order_name(o.order) + ", threshold " + std::to_string(o.threshold));
    std::fprintf(stderr, "wrote %s (use it with --plan %s)\n", out.c_str(), out.c_str());
    for (size_t c = 0; a.has("--each") && c < r.after_each.size(); c++) {
        const std::string file = each + "." + std::to_string(c + 1) + ".plan";
        write_plan_file(file, r.after_each[c],
                        "kvshare calibrate (KVSharer) on " + path + ": the first " + std::to_string(c + 1) +
                            " accepted changes of order " + order_name(o.order) + ", threshold " + std::to_string(o.threshold));
        std::fprintf(stderr, "wrote %s\n", file.c_str());
    }
    if (a.has("--layer-types")) {
        write_file_atomic(a.get("--layer-types"), lckv_layer_types(r.plan) + "\n");
        std::fprintf(stderr, "wrote %s (LCKV layer_types)\n", a.get("--layer-types").c_str());
    }
    return 0;
}
