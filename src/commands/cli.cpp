// kvshare's command line: dispatch, and the small subcommands (init, info, plans).
#include "src/commands/cli.h"
#include "src/commands/args.h"
#include "src/formats/checkpoint.h"
#include "src/formats/gguf.h"
#include "src/text/bpe.h"
#include "src/text/stories.h"
#include "src/commands/calibrate.h"
#include "src/bench/sharing_report.h"
#include "src/commands/commands.h"
#include "src/model/kv_cache.h"
#include "src/model/memory.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <climits>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <new>
#include <sys/stat.h>

static const char* kUsage =
    "usage: kvshare COMMAND [options]    (kvshare COMMAND --help for its options)\n"
    "\n"
    "  generate MODEL   generate text (llama2.c flags: -z -i -n -t -p -s), any sharing plan\n"
    "  chat MODEL       a conversation in the model's chat format, the KV cache kept across turns\n"
    "  tokenize MODEL   the token ids (and their text) of a text, for any model or tokenizer file\n"
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
    "  sharing-report CSV  chapter 11's tables and picture from make sharing-study's rows\n"
    "\n"
    "MODEL is a kvshare model file, a llama2.c .bin checkpoint, or a Hugging Face folder\n"
    "(config.json, model.safetensors or its sharded index, tokenizer.model; Llama or lckv-llama).\n"
    "PLAN is standard, pizza|sandwich|lasagna-bottom|middle|top:L, cla:G, yoco, lckv:W,\n"
    "an explicit map like 0,0,2,2, or a file holding one; append ,diag=all to mask every diagonal.\n";

// Bytes as the memory check prints them; SIZE_MAX means the product saturated.
static std::string bytes_text(size_t bytes) { return bytes == SIZE_MAX ? "more than 18 EB" : format_bytes((double)bytes); }

std::string kv_summary(const Model& m, int batch, int context) {
    const Config& c = m.config;
    const int kv_layers = m.plan.n_kv_layers();
    char buf[256];
    std::snprintf(buf, sizeof buf, "KV cache %s for %d KV layers of %d (standard: %s, %.1f%% saved)",
                  bytes_text(kv_cache_bytes(c, kv_layers, batch, context)).c_str(), kv_layers, c.n_layers,
                  bytes_text(kv_cache_bytes(c, c.n_layers, batch, context)).c_str(), 100.0 * (1.0 - (double)kv_layers / c.n_layers));
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
                    "Shape options override the preset's. Ranges: D 1..65536, H 1..262144, L 1..1024, N divides D,\n"
                    "K divides N, V 1..4194304, S 1..1048576; SEED any 32-bit integer (default 1). The weights must\n"
                    "fit the memory available. --llama2c writes llama2.c's .bin format (standard plan).\n",
                    preset_names().c_str());
        return 0;
    }
    const std::string out = a.need_positional(0, "output file OUT");
    a.at_most_positional(1);
    check_output_file(out, "kvshare init: OUT");
    Config c;
    if (a.has("--preset")) c = preset_config(a.get("--preset"));
    else if (!a.has("--dim")) fail("kvshare init: give --preset NAME or the shape (--dim ...)");
    else { c.n_heads = c.n_kv_heads = 1; }
    c.dim = a.get_int("--dim", c.dim, 1, 1 << 16);
    c.hidden_dim = a.get_int("--hidden", c.hidden_dim ? c.hidden_dim : 4 * c.dim, 1, 1 << 18);
    c.n_layers = a.get_int("--layers", c.n_layers, 1, 1024);
    c.n_heads = a.get_int("--heads", c.n_heads, 1, 1 << 16);
    c.n_kv_heads = a.get_int("--kv-heads", a.has("--heads") && !a.has("--preset") ? c.n_heads : c.n_kv_heads, 1, 1 << 16);
    c.vocab_size = a.get_int("--vocab", c.vocab_size ? c.vocab_size : 259, 1, 1 << 22);
    c.max_seq_len = a.get_int("--seq", c.max_seq_len ? c.max_seq_len : 256, 1, 1 << 20);
    if (a.has("--untied")) c.shared_classifier = false;
    validate_config(c);
    Plan plan = parse_plan(a.get("--plan", "standard"), c.n_layers);
    const int seed = a.get_int("-s", 1, INT_MIN, INT_MAX);
    check_memory(MemoryNeed().host("weights", weight_bytes(c, plan.n_kv_layers())), "kvshare init",
                 "a smaller --dim, --hidden, --layers or --vocab");
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

// What MODEL takes on disk: a file's bytes, or a folder's files' (not its subfolders').
static size_t stored_bytes(const std::string& path) {
    if (!is_directory(path)) return file_size(path);
    size_t total = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(path, ec))
        if (entry.is_regular_file(ec)) total += (size_t)entry.file_size(ec);
    return total;
}

// " (GGUF v3, 272 tensors: 210 Q4_1, ...)" for a GGUF file, else "".
static std::string stored_format(const std::string& path) {
    if (is_directory(path)) return "";
    const std::shared_ptr<MappedFile> file = MappedFile::open(path);
    if (file->size() < 4 || !is_gguf_magic((const char*)file->data())) return "";
    return " (" + gguf_summary(GgufFile::parse(file)) + ")";
}

static int cmd_info(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare info", {"--plan", "--context", "--batch"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare info MODEL [--plan PLAN] [--context N] [--batch B]\n"
                    "Prints the model's size on disk (a GGUF file's tensor types too) and as fp32 in memory,\n"
                    "the config, the sharing plan and the KV cache bytes per token and for B sequences\n"
                    "of N tokens (N 1..the model's max_seq_len, the default; B 1..1048576, default 1), against\n"
                    "the standard plan. Nothing is allocated for them: sizes past any machine print as such.\n");
        return 0;
    }
    const std::string path = a.need_model(0);
    a.at_most_positional(1);
    Model m = load_model(path, a.get("--plan"));
    const Config& c = m.config;
    const int context = a.get_int("--context", c.max_seq_len, 1, c.max_seq_len), batch = a.get_int("--batch", 1, 1, 1 << 20);
    std::printf("model      %s%s\n", path.c_str(), m.random_weights ? " (random weights)" : "");
    std::printf("config     dim %d, hidden %d, layers %d, heads %d, kv heads %d, head size %d, vocab %d, max_seq_len %d, %s classifier\n",
                c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_size(), c.vocab_size, c.max_seq_len,
                c.shared_classifier ? "tied" : "separate");
    std::printf("file       %s on disk%s\n", format_bytes((double)stored_bytes(path)).c_str(), stored_format(path).c_str());
    std::printf("parameters %.2fM (%s as fp32 in memory)\n", m.n_params() / 1e6, format_bytes(m.n_params() * 4.0).c_str());
    std::printf("plan       %s\n", m.plan.name.c_str());
    std::printf("source     %s%s\n", m.plan.map_string().c_str(), m.plan.diag_all ? " (diag=all)" : "");
    std::printf("kv layers  %d of %d, cyclic blocks: %s\n", m.plan.n_kv_layers(), c.n_layers, blocks_string(m.plan).c_str());
    const size_t per_token = kv_cache_bytes(c, m.plan.n_kv_layers(), 1, 1), per_token_std = kv_cache_bytes(c, c.n_layers, 1, 1);
    std::printf("kv/token   %s (standard %s)\n", format_bytes((double)per_token).c_str(), format_bytes((double)per_token_std).c_str());
    std::printf("kv total   %s, batch %d x context %d\n", kv_summary(m, batch, context).c_str(), batch, context);
    return 0;
}

static int cmd_plans(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare plans", {"--layers", "--kv"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare plans --layers L [--kv l]\n"
                    "Lists every named plan for L layers (1..1024; with --kv, those with l KV layers, 1..L): its source map,\n"
                    "KV layers, KV ratio against standard, and the cyclic blocks that prefill iterates.\n");
        return 0;
    }
    a.at_most_positional(0);
    if (!a.has("--layers")) fail("kvshare plans: --layers L is required");
    const int L = a.get_int("--layers", 0, 1, 1024), kv = a.get_int("--kv", 0, 1, L);
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
                    "Trains a byte-fallback BPE vocabulary of V pieces (259..4194304) on N generated stories\n"
                    "(1..10000000) or a text, and writes it as a llama2.c tokenizer.bin.\n");
        return 0;
    }
    const std::string out = a.need_positional(0, "output file OUT");
    a.at_most_positional(1);
    check_output_file(out, "kvshare tokenizer: OUT");
    if (a.has("--stories") == a.has("--text")) fail("kvshare tokenizer: give one of --stories N or --text FILE");
    if (!a.has("--vocab")) fail("kvshare tokenizer: --vocab V is required");
    const int vocab = a.get_int("--vocab", 0, 259, 1 << 22);
    const std::string text_path = a.input_file("--text");
    const int n = a.get_int("--stories", 0, 1, 10000000);
    // the text, and the trainer's words and pairs: a few times the text at most
    const size_t bytes = text_path.empty() ? (size_t)(n * mean_story_bytes()) : file_size(text_path);
    check_memory(MemoryNeed().host("the training text and its words", sat_mul(bytes, 4)), "kvshare tokenizer",
                 "fewer --stories or a smaller --text");
    std::string text;
    if (!text_path.empty()) {
        text = read_text_file(text_path, "kvshare tokenizer --text");
    } else {
        StoryStream stories(Split::Train);
        for (int i = 0; i < n; i++) text += stories.next();
    }
    if (text.empty()) fail("kvshare tokenizer: no training text");
    BpeVocab v = train_bpe(text, vocab);
    save_tokenizer_bin(out, v);
    std::fprintf(stderr, "wrote %s: %zu pieces from %zu bytes of text\n", out.c_str(), v.pieces.size(), text.size());
    return 0;
}

// stories: the generator's text, for eval and calibrate files; printed as they are made

static int cmd_stories(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare stories", {"--split"}, {});
    if (a.has("--help")) {
        std::printf("usage: kvshare stories N [--split train|validation]\n"
                    "Prints N stories (1..2147483647) of the generator's train (default) or validation split,\n"
                    "each as soon as it is made.\n");
        return 0;
    }
    const int n = parse_int_in(a.need_positional(0, "story count N"), "kvshare stories N", 1, INT_MAX);
    a.at_most_positional(1);
    const std::string split = a.get("--split", "train");
    if (split != "train" && split != "validation") fail("kvshare stories: --split must be train or validation");
    StoryStream stories(split == "train" ? Split::Train : Split::Validation);
    for (int i = 0; i < n; i++)
        if (std::fputs(stories.next().c_str(), stdout) == EOF) fail("kvshare stories: cannot write to the output");
    if (std::fflush(stdout) != 0) fail("kvshare stories: cannot write to the output");
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
        if (cmd == "tokenize") return cmd_tokenize(argc, argv);
        if (cmd == "chat") return cmd_chat(argc, argv);
        if (cmd == "sharing-report") return cmd_sharing_report(argc, argv);
        fail("unknown command '" + cmd + "' (see kvshare --help)");
    } catch (const std::bad_alloc&) {
        // every size is checked before it is allocated (src/model/memory.h), so this is a
        // size no check knew about, or memory that went elsewhere meanwhile
        std::fflush(stdout);
        std::fprintf(stderr, "kvshare: error: out of memory (an allocation failed)\n");
        return 1;
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "kvshare: error: %s\n", e.what());
        return 1;
    }
}
