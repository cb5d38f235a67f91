// kvshare's command line: dispatch, and the small subcommands (init, info, plans).
#include "src/commands/cli.h"
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/text/bpe.h"
#include "src/text/stories.h"
#include "src/commands/calibrate.h"
#include "src/commands/commands.h"
#include "src/model/kv_cache.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cstdio>
#include <sys/stat.h>

static const char* kUsage =
    "usage: kvshare COMMAND [options]    (kvshare COMMAND --help for its options)\n"
    "\n"
    "  generate MODEL   generate text (llama2.c flags: -z -i -n -t -p -s), any sharing plan\n"
    "  info MODEL       config, plan, KV cache bytes against the standard plan\n"
    "  plans            every named sharing plan for a layer count\n"
    "  eval MODEL       mean loss and perplexity on a text file\n"
    "  init OUT         write a model with random weights (a preset or any shape)\n"
    "  train OUT        train a model on the CPU\n"
    "  calibrate MODEL  KVSharer: search for layers that may share a dissimilar layer's KV\n"
    "  export MODEL DIR write a model as a Hugging Face folder (config.json, safetensors, tokenizer.model)\n"
    "  tokenizer OUT    train a BPE tokenizer on the story generator or a text\n"
    "  stories N        print N generated stories (train or validation split)\n"
    "  bench WHAT       benchmarks: decode, converge, throughput, plans, prefill, kernels\n"
    "\n"
    "MODEL is a kvshare model file, a llama2.c .bin checkpoint, or a Hugging Face folder\n"
    "(config.json, model.safetensors or its sharded index, tokenizer.model; Llama or lckv-llama).\n"
    "PLAN is standard, pizza|sandwich|lasagna-bottom|middle|top:L, cla:G, yoco, lckv:W,\n"
    "an explicit map like 0,0,2,2, or a file holding one; append ,diag=all to mask every diagonal.\n";

Tokenizer tokenizer_for(const std::string& path, const Model& m) {
    const int vocab = m.config.vocab_size;
    if (!path.empty()) return load_tokenizer_file(path, vocab);
    if (!m.tokenizer_path.empty()) return load_tokenizer_file(m.tokenizer_path, vocab);
    if (vocab == 259) return Tokenizer::bytes();
    struct stat st;
    if (stat("tokenizer.bin", &st) == 0) return Tokenizer::load("tokenizer.bin", vocab);
    fail("the model has a " + std::to_string(vocab) + "-token vocabulary: pass its tokenizer with -z (e.g. llama2.c's tokenizer.bin)");
}

std::string kv_summary(const Model& m, int batch, int context) {
    const Config& c = m.config;
    KVLayout mine{m.plan.n_kv_layers(), batch, context, c.kv_dim()};
    KVLayout standard{c.n_layers, batch, context, c.kv_dim()};
    char buf[256];
    std::snprintf(buf, sizeof buf, "KV cache %s for %d KV layers of %d (standard: %s, %.1f%% saved)",
                  format_bytes((double)mine.bytes()).c_str(), mine.n_slots, c.n_layers,
                  format_bytes((double)standard.bytes()).c_str(), 100.0 * (1.0 - (double)mine.n_slots / c.n_layers));
    return buf;
}

// ---------------------------------------------------------------------------
// init

static int cmd_init(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare init",
                        {"--preset", "--dim", "--hidden", "--layers", "--heads", "--kv-heads", "--vocab", "--seq", "--plan", "-s"},
                        {"--untied", "--llama2c"});
    if (a.has("--help")) {
        std::printf("usage: kvshare init OUT (--preset NAME | --dim D --hidden H --layers L --heads N\n"
                    "                        --kv-heads K --vocab V --seq S) [--untied] [--plan PLAN] [-s SEED] [--llama2c]\n"
                    "Writes a model with random weights (N(0, 0.02)). Presets: %s.\n"
                    "Shape options override the preset's. --llama2c writes llama2.c's .bin format (standard plan).\n",
                    preset_names().c_str());
        return 0;
    }
    const std::string out = a.need_positional(0, "output file OUT");
    if (a.positional.size() > 1) fail("kvshare init: unexpected argument '" + a.positional[1] + "'");
    Config c;
    if (a.has("--preset")) c = preset_config(a.get("--preset"));
    else if (!a.has("--dim")) fail("kvshare init: give --preset NAME or the shape (--dim ...)");
    else { c.n_heads = c.n_kv_heads = 1; }
    c.dim = a.get_int("--dim", c.dim);
    c.hidden_dim = a.get_int("--hidden", c.hidden_dim ? c.hidden_dim : 4 * c.dim);
    c.n_layers = a.get_int("--layers", c.n_layers);
    c.n_heads = a.get_int("--heads", c.n_heads);
    c.n_kv_heads = a.get_int("--kv-heads", a.has("--heads") && !a.has("--preset") ? c.n_heads : c.n_kv_heads);
    c.vocab_size = a.get_int("--vocab", c.vocab_size ? c.vocab_size : 259);
    c.max_seq_len = a.get_int("--seq", c.max_seq_len ? c.max_seq_len : 256);
    if (a.has("--untied")) c.shared_classifier = false;
    validate_config(c);
    Plan plan = parse_plan(a.get("--plan", "standard"), c.n_layers);
    const int seed = a.get_int("-s", 1);
    Model m = init_model(c, plan, (uint64_t)seed);
    if (a.has("--llama2c")) save_llama2c(out, m);
    else save_model(out, m);
    std::fprintf(stderr, "wrote %s: %.2fM parameters, plan %s, random weights (seed %d)\n", out.c_str(), m.n_params() / 1e6,
                 plan.spec().c_str(), seed);
    return 0;
}

// ---------------------------------------------------------------------------
// info and plans

static std::string blocks_string(const Plan& p) {
    if (p.blocks.empty()) return "none";
    std::string s;
    for (const Block& b : p.blocks)
        s += (s.empty() ? "" : " ") + std::to_string(b.first) + "-" + std::to_string(b.last);
    return s;
}

static int cmd_info(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare info", {"--plan", "--context", "--batch"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare info MODEL [--plan PLAN] [--context N] [--batch B]\n"
                    "Prints the config, the sharing plan and the KV cache bytes per token and for B sequences\n"
                    "of N tokens (default: the model's max_seq_len, batch 1), against the standard plan.\n");
        return 0;
    }
    Model m = load_model(a.need_positional(0, "MODEL"), a.get("--plan"));
    const Config& c = m.config;
    const int context = a.get_int("--context", c.max_seq_len), batch = a.get_int("--batch", 1);
    if (context < 1 || batch < 1) fail("kvshare info: --context and --batch must be >= 1");
    std::printf("model      %s%s\n", a.positional[0].c_str(), m.random_weights ? " (random weights)" : "");
    std::printf("config     dim %d, hidden %d, layers %d, heads %d, kv heads %d, head size %d, vocab %d, max_seq_len %d, %s classifier\n",
                c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_size(), c.vocab_size, c.max_seq_len,
                c.shared_classifier ? "tied" : "separate");
    std::printf("parameters %.2fM (%s)\n", m.n_params() / 1e6, format_bytes(m.n_params() * 4.0).c_str());
    std::printf("plan       %s\n", m.plan.name.c_str());
    std::printf("source     %s%s\n", m.plan.map_string().c_str(), m.plan.diag_all ? " (diag=all)" : "");
    std::printf("kv layers  %d of %d, cyclic blocks: %s\n", m.plan.n_kv_layers(), c.n_layers, blocks_string(m.plan).c_str());
    const size_t per_token = 2ull * m.plan.n_kv_layers() * c.kv_dim() * sizeof(float);
    const size_t per_token_std = 2ull * c.n_layers * c.kv_dim() * sizeof(float);
    std::printf("kv/token   %s (standard %s)\n", format_bytes((double)per_token).c_str(), format_bytes((double)per_token_std).c_str());
    std::printf("kv total   %s, batch %d x context %d\n", kv_summary(m, batch, context).c_str(), batch, context);
    return 0;
}

static int cmd_plans(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare plans", {"--layers", "--kv"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare plans --layers L [--kv l]\n"
                    "Lists every named plan for L layers (with --kv, those with l KV layers): its source map,\n"
                    "KV layers, KV ratio against standard, and the cyclic blocks that prefill iterates.\n");
        return 0;
    }
    if (!a.has("--layers")) fail("kvshare plans: --layers L is required");
    const int L = a.get_int("--layers", 0), kv = a.get_int("--kv", 0);
    if (L < 1 || L > 1024) fail("kvshare plans: --layers must be 1..1024");
    if (a.has("--kv") && (kv < 1 || kv > L)) fail("kvshare plans: --kv must be 1.." + std::to_string(L));
    std::printf("%-20s %-4s %-6s %-16s %s\n", "plan", "kv", "ratio", "iterates", "source map");
    for (const std::string& name : named_plans(L, kv)) {
        Plan p = parse_plan(name, L);
        char ratio[32];
        std::snprintf(ratio, sizeof ratio, "%.3f", (double)p.n_kv_layers() / L);
        std::printf("%-20s %-4d %-6s %-16s %s\n", name.c_str(), p.n_kv_layers(), ratio, blocks_string(p).c_str(),
                    p.map_string().c_str());
    }
    return 0;
}

// ---------------------------------------------------------------------------
// tokenizer: train a BPE vocabulary on stories or a text

static int cmd_tokenizer(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare tokenizer", {"--stories", "--text", "--vocab"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare tokenizer OUT (--stories N | --text FILE) --vocab V\n"
                    "Trains a byte-fallback BPE vocabulary of V pieces and writes it as a llama2.c tokenizer.bin.\n");
        return 0;
    }
    const std::string out = a.need_positional(0, "output file OUT");
    if (a.has("--stories") == a.has("--text")) fail("kvshare tokenizer: give one of --stories N or --text FILE");
    if (!a.has("--vocab")) fail("kvshare tokenizer: --vocab V is required");
    std::string text;
    if (a.has("--text")) text = read_text_file(a.get("--text"));
    else
        for (const std::string& s : story_split(Split::Train, a.get_int("--stories", 0))) text += s;
    if (text.empty()) fail("kvshare tokenizer: no training text");
    BpeVocab v = train_bpe(text, a.get_int("--vocab", 0));
    save_tokenizer_bin(out, v);
    std::fprintf(stderr, "wrote %s: %zu pieces from %zu bytes of text\n", out.c_str(), v.pieces.size(), text.size());
    return 0;
}

// stories: the generator's text, for eval and calibrate files

static int cmd_stories(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare stories", {"--split"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare stories N [--split train|validation]\n"
                    "Prints N stories of the generator's train (default) or validation split.\n");
        return 0;
    }
    const int n = parse_int(a.need_positional(0, "story count N"), "kvshare stories");
    if (n < 1) fail("kvshare stories: N must be >= 1");
    const std::string split = a.get("--split", "train");
    if (split != "train" && split != "validation") fail("kvshare stories: --split must be train or validation");
    for (const std::string& s : story_split(split == "train" ? Split::Train : Split::Validation, n)) std::fputs(s.c_str(), stdout);
    return 0;
}

// ---------------------------------------------------------------------------

int kvshare_main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 1 : 0;
    }
    const std::string cmd = argv[1];
    try {
        if (cmd == "generate") return cmd_generate(argc, argv);
        if (cmd == "info") return cmd_info(argc, argv);
        if (cmd == "plans") return cmd_plans(argc, argv);
        if (cmd == "eval") return cmd_eval(argc, argv);
        if (cmd == "init") return cmd_init(argc, argv);
        if (cmd == "train") return cmd_train(argc, argv);
        if (cmd == "bench") return cmd_bench(argc, argv);
        if (cmd == "calibrate") return cmd_calibrate(argc, argv);
        if (cmd == "export") return cmd_export(argc, argv);
        if (cmd == "tokenizer") return cmd_tokenizer(argc, argv);
        if (cmd == "stories") return cmd_stories(argc, argv);
        fail("unknown command '" + cmd + "' (see kvshare --help)");
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "kvshare: error: %s\n", e.what());
        return 1;
    }
}
