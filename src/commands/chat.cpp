#include "src/commands/chat.h"
#include "src/commands/args.h"
#include "src/commands/commands.h"
#include "src/formats/checkpoint.h"
#include "src/model/memory.h"
#include "src/text/unicode.h"
#include "src/util.h"
#include <algorithm>
#include <climits>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <unistd.h>

Chat::Chat(Backend& be, const Tokenizer& tok, const ChatTemplate& format, const std::string& system, Sampler sampler,
           const PrefillOptions& prefill)
    : be_(be), tok_(tok), format_(format), system_(system), sampler_(std::move(sampler)), prefill_(prefill), stops_(tok.stop_ids) {
    if (be.batch() != 1) fail("chat: the backend must hold one sequence");
    // the format's markers must be single tokens of this vocabulary, or the model never saw them
    auto special_id = [&](const std::string& text) {
        for (const auto& s : tok.specials)
            if (s.first == text) return s.second;
        fail("chat: the " + std::string(chat_format_name(format.format)) + " format needs the special token " + text +
             ", which the tokenizer does not have; name another format with --chat-template");
    };
    if (format.format == ChatFormat::ChatML) special_id("<|im_start|>");
    if (!chat_end_of_turn(format).empty()) stops_.push_back(special_id(chat_end_of_turn(format)));
    if (format.format != ChatFormat::ChatML && tok.eos_id < 0)
        fail("chat: the " + std::string(chat_format_name(format.format)) + " format ends turns with EOS, and the tokenizer has none");
    if (format.format != ChatFormat::ChatML) stops_.push_back(tok.eos_id);
    pending_ = encode(chat_opening(format, system, tok.add_bos));
}

std::vector<int> Chat::encode(const std::vector<ChatPiece>& pieces) const {
    std::vector<int> ids;
    for (const ChatPiece& p : pieces) {
        if (p.kind == ChatPiece::Text) {
            const std::vector<int> t = tok_.encode(p.text, false, false);
            ids.insert(ids.end(), t.begin(), t.end());
        } else {
            const int id = p.kind == ChatPiece::Bos ? tok_.bos_id : tok_.eos_id;
            if (id < 0) fail("chat: the format needs a " + std::string(p.kind == ChatPiece::Bos ? "BOS" : "EOS") + " token, and the tokenizer has none");
            ids.push_back(id);
        }
    }
    return ids;
}

void Chat::context_full(const std::string& when) const {
    fail("the conversation has filled the context of " + std::to_string(be_.context()) + " positions " + when +
         "; start a new chat (a larger -n, up to the model's context, holds a longer one)");
}

void Chat::feed(const std::vector<int>& tokens) {
    if (tokens.empty()) return;
    // the first turn in one prefill; later turns extend the cache token by token, which is
    // what decode steps do (and exact for every plan)
    if (be_.pos() == 0) be_.prefill(tokens.data(), (int)tokens.size(), prefill_);
    else
        for (int t : tokens) be_.decode(&t);
    history_.insert(history_.end(), tokens.begin(), tokens.end());
    const float draw = sampler_.next_draw();
    be_.sample(sampler_.settings(), &draw, &next_);
}

std::vector<int> Chat::reply(const std::string& message, const std::function<void(const std::string&)>& on_text) {
    std::vector<int> turn = pending_;
    const std::vector<int> user = encode(chat_user_turn(format_, message, first_, system_));
    turn.insert(turn.end(), user.begin(), user.end());
    // the turn and at least one token of reply
    if ((size_t)be_.pos() + turn.size() + 1 > (size_t)be_.context())
        context_full("(this message needs " + std::to_string(turn.size()) + " more, " + std::to_string(be_.context() - be_.pos()) + " are left)");
    first_ = false;
    feed(turn);
    std::vector<int> reply;
    Utf8Stream utf8;
    int prev = history_.back();
    while (std::find(stops_.begin(), stops_.end(), next_) == stops_.end()) {
        on_text(utf8.push(tok_.decode_piece(prev, next_)));
        reply.push_back(next_);
        prev = next_;
        if (be_.pos() >= be_.context()) {
            on_text(utf8.finish());
            context_full("in the middle of a reply");
        }
        feed({next_});
    }
    on_text(utf8.finish());
    // the next turn starts with the stop token the model chose and what the format puts after it
    pending_ = {next_};
    const std::vector<int> after = encode(chat_after_reply(format_));
    pending_.insert(pending_.end(), after.begin(), after.end());
    return reply;
}

// ---------------------------------------------------------------- the command

int cmd_chat(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare chat",
                        {"-z", "-n", "-t", "-p", "-s", "--plan", "--prefill", "--device", "--chat-template", "--system"}, {});
    if (a.has("--help")) {
        std::printf(
            "usage: kvshare chat MODEL [options]\n"
            "Talks with MODEL: each line of standard input is one user message (a terminal, or a pipe), each\n"
            "reply goes to stdout as it comes, ended by a newline. The prompt format is the model's chat\n"
            "template (GGUF tokenizer.chat_template, a folder's tokenizer_config.json), recognised as ChatML\n"
            "(<|im_start|>), Llama 2 ([INST]) or Zephyr (<|user|>); the KV cache keeps the conversation,\n"
            "so each turn feeds only its new tokens. A reply ends at the model's EOS or the format's\n"
            "end-of-turn token. When the conversation fills the context, kvshare says so and stops.\n"
            "  -z TOKENIZER          as for generate (default: the model's own)\n"
            "  --chat-template NAME  chatml, llama2 or zephyr, for a model whose template is missing or\n"
            "                        not recognised\n"
            "  --system TEXT         system prompt (default: the template's own, if it has one)\n"
            "  -n STEPS              positions for the whole conversation: 0..1048576 (default 0 = the\n"
            "                        model's max_seq_len, also the most)\n"
            "  -t TEMP               temperature 0..100, 0 = greedy (default 0.7)\n"
            "  -p TOPP               top-p 0..1 (default 0.9)\n"
            "  -s SEED               random seed, any 32-bit integer (default: time)\n"
            "  --plan PLAN  --prefill MODE  --device cpu|cuda   as for generate\n");
        return 0;
    }
    const std::string path = a.need_model(0);
    a.at_most_positional(1);
    const std::string tok_path = a.input_file("-z");
    const float temperature = a.get_float("-t", 0.7f, 0.0f, 100.0f), topp = a.get_float("-p", 0.9f, 0.0f, 1.0f);
    const long seed = a.has("-s") ? a.get_int("-s", 0, INT_MIN, INT_MAX) : (long)std::time(nullptr);
    int steps = a.get_int("-n", 0, 0, 1 << 20);
    const Device device = parse_device(a.get("--device", "cpu"));
    if (a.has("--prefill")) parse_prefill(a.get("--prefill"));
    if (a.has("--chat-template")) chat_template_named(a.get("--chat-template"));  // its error before the model loads
    Model m = load_model(path, a.get("--plan"));
    const Tokenizer tok = tokenizer_for(tok_path, m);
    const ChatTemplate format = a.has("--chat-template") ? chat_template_named(a.get("--chat-template"))
                                                         : recognise_chat_template(tok.chat_template, "'" + path + "'");
    if (steps == 0 || steps > m.config.max_seq_len) steps = m.config.max_seq_len;
    const PrefillOptions prefill = parse_prefill(a.get("--prefill"), m);

    MemoryNeed need;
    add_backend(need, m, device, 1, steps, steps, false);
    need.host("sampler", sat_mul((size_t)m.config.vocab_size, 2 * sizeof(float)));
    check_memory(need, "kvshare chat", "lower -n");
    std::unique_ptr<Backend> be = make_backend(m, device, 1, steps);
    Chat chat(*be, tok, format, a.get("--system"), Sampler(m.config.vocab_size, temperature, topp, (uint64_t)seed), prefill);

    const bool terminal = isatty(0);
    if (terminal)
        std::fprintf(stderr, "chat with %s (%s format, %d positions); an empty line is skipped, Ctrl-D ends\n", path.c_str(),
                     chat_format_name(format.format), steps);
    if (m.random_weights) std::fprintf(stderr, "note: %s has random weights (made by kvshare init), so its replies are noise\n", path.c_str());
    std::string line;
    size_t replied = 0;
    const double t0 = now_seconds();
    for (;;) {
        if (terminal) { std::fputs("> ", stdout); std::fflush(stdout); }
        if (!std::getline(std::cin, line)) break;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) continue;
        replied += chat.reply(line, [](const std::string& text) { std::fputs(text.c_str(), stdout); std::fflush(stdout); }).size();
        std::fputs("\n", stdout);
        if (std::fflush(stdout) != 0) fail("kvshare chat: cannot write to the output");
    }
    if (terminal) std::fputs("\n", stdout);
    const double t1 = now_seconds();
    std::fprintf(stderr, "%zu positions of %d used; %zu reply tokens in %.2f s of the conversation on %s\n", chat.history().size(), steps,
                 replied, t1 - t0, be->device_name().c_str());
    return 0;
}
