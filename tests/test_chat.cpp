// Chat: recognising the chat formats from their templates, laying out turns as the templates
// render them (tests/data/tokenizer/chat.json, rendered by jinja2), the conversation kept in
// the KV cache across turns (no turn prefills the history again), context full; and what a
// model's files say about generation: EOS ids, BOS, the template.
#include <catch2/catch.hpp>
#include "src/commands/chat.h"
#include "src/commands/commands.h"
#include "src/formats/checkpoint.h"
#include "src/formats/hf_folder.h"
#include "src/text/chat_template.h"
#include "src/text/sentencepiece.h"
#include "src/text/unicode.h"
#include "tests/helpers.h"
#include "tests/hf_files.h"
#include "tests/tokenizer_data.h"
#include <filesystem>

using namespace tokenizer_test;
namespace fs = std::filesystem;

// ---------------------------------------------------------------- formats

TEST_CASE("chat templates are recognised by their markers; others get an error naming --chat-template", "[chat]") {
    const Json chat = read_json(kDataDir + "chat.json");
    REQUIRE(chat.items.size() == 3);
    const ChatFormat want[] = {ChatFormat::ChatML, ChatFormat::Llama2, ChatFormat::Zephyr};
    for (size_t i = 0; i < 3; i++) {
        const ChatTemplate t = recognise_chat_template(chat.items[i].find("template")->text, "m");
        CHECK(t.format == want[i]);
        CHECK(t.default_system == (i == 0 ? "You are a helpful AI assistant named SmolLM, trained by Hugging Face" : ""));
    }
    // a default system prompt written with \n escapes (Qwen's style), and none where it is a variable
    CHECK(recognise_chat_template("{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}", "m").default_system ==
          "You are a helpful assistant.");
    CHECK(recognise_chat_template("{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' }}", "m").default_system.empty());
    const std::string llama3 = "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}";
    CHECK_THROWS_WITH(recognise_chat_template(llama3, "'m.gguf'"), Catch::Contains("'m.gguf'") && Catch::Contains("--chat-template"));
    CHECK_THROWS_WITH(recognise_chat_template("", "'m.gguf'"), Catch::Contains("no chat template") && Catch::Contains("--chat-template"));
    CHECK(chat_template_named("zephyr").format == ChatFormat::Zephyr);
    CHECK_THROWS_WITH(chat_template_named("alpaca"), Catch::Contains("--chat-template") && Catch::Contains("chatml"));
}

static std::string text_of(const std::vector<ChatPiece>& pieces) {
    std::string s;
    for (const ChatPiece& p : pieces) s += p.kind == ChatPiece::Bos ? "<s>" : p.kind == ChatPiece::Eos ? "</s>" : p.text;
    return s;
}

TEST_CASE("turns are laid out as each family's template renders them", "[chat]") {
    const Json chat = read_json(kDataDir + "chat.json");
    for (const Json& family : chat.items) {
        const std::string name = family.find("name")->text;
        const ChatTemplate t = recognise_chat_template(family.find("template")->text, name);
        for (const Json& conv : family.find("conversations")->items) {
            const std::vector<Json>& msgs = conv.find("messages")->items;
            INFO(name << ", " << msgs.size() << " messages");
            size_t m = 0;
            std::string system;
            if (msgs[0].find("role")->text == "system") system = msgs[m++].find("content")->text;
            std::string got = text_of(chat_opening(t, system, false));
            got += text_of(chat_user_turn(t, msgs[m++].find("content")->text, true, system));
            for (; m + 1 < msgs.size(); m += 2) {
                // the reply as the model writes it, then the token it stops at
                const std::string reply = msgs[m].find("content")->text;
                got += t.format == ChatFormat::Llama2 ? " " + reply + " </s>" : t.format == ChatFormat::ChatML ? reply + "<|im_end|>" : reply + "</s>";
                got += text_of(chat_after_reply(t));
                got += text_of(chat_user_turn(t, msgs[m + 1].find("content")->text, false, system));
            }
            CHECK(got == conv.find("rendered")->text);
        }
    }
    // BOS at the start when the model asks for it, except in Llama 2's format, which places its own
    CHECK(text_of(chat_opening(chat_template_named("zephyr"), "", true)) == "<s>");
    CHECK(text_of(chat_opening(chat_template_named("llama2"), "S", true)).empty());
}

// ---------------------------------------------------------------- the conversation in the KV cache

namespace {

// A CPU backend that counts how its tokens arrive.
class Recording : public Backend {
public:
    explicit Recording(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
    std::string device_name() const override { return inner_->device_name(); }
    void prefill(const int* tokens, int n, const PrefillOptions& opt) override {
        prefills++;
        fed.insert(fed.end(), tokens, tokens + n);
        inner_->prefill(tokens, n, opt);
    }
    void decode(const int* tokens) override {
        fed.push_back(tokens[0]);
        inner_->decode(tokens);
    }
    const float* logits() override { return inner_->logits(); }
    const float* hidden() override { return inner_->hidden(); }
    int logit_positions() const override { return inner_->logit_positions(); }
    void read_kv(int layer, std::vector<float>& k, std::vector<float>& v) override { inner_->read_kv(layer, k, v); }
    int batch() const override { return 1; }
    int vocab_size() const override { return inner_->vocab_size(); }
    int context() const override { return inner_->context(); }
    int pos() const override { return inner_->pos(); }
    size_t kv_cache_bytes() const override { return inner_->kv_cache_bytes(); }
    void sample(const SamplingSettings& s, const float* draws, int* out) override { inner_->sample(s, draws, out); }

    int prefills = 0;
    std::vector<int> fed;

private:
    std::unique_ptr<Backend> inner_;
};

Model chat_model(const Tokenizer& tok, int context) {
    Config c = preset_config("tiny");
    c.vocab_size = tok.vocab_size();
    c.max_seq_len = context;
    return init_model(c, parse_plan("cla:2", c.n_layers), 5);
}

}  // namespace

TEST_CASE("chat keeps the conversation in the KV cache: each turn feeds only its new tokens", "[chat]") {
    Tokenizer tok = tokenizer_from_spec(small_spec());
    // a random model seldom picks <|im_end|>: let a quarter of the vocabulary end a reply too
    for (int id = 200; id < tok.vocab_size(); id++) tok.stop_ids.push_back(id);
    const Model m = chat_model(tok, 128);
    Recording be(make_cpu_backend(m, 1, 128));
    const ChatTemplate format = chat_template_named("chatml");
    Chat chat(be, tok, format, "Be brief.", Sampler(tok.vocab_size(), 1.0f, 1.0f, 3), PrefillOptions{});
    std::string said;
    auto on_text = [&](const std::string& s) { said += s; };
    const std::vector<int> r1 = chat.reply("hello", on_text);
    const size_t after1 = chat.history().size();
    const std::vector<int> r2 = chat.reply("abc", on_text);
    const std::vector<int> r3 = chat.reply("hi", on_text);
    INFO("replies of " << r1.size() << ", " << r2.size() << ", " << r3.size() << " tokens");
    REQUIRE(r1.size() + r2.size() + r3.size() > 0);  // seed 3 makes some text to check

    // one prefill (the first turn), then decode steps; the cache holds the history, once
    CHECK(be.prefills == 1);
    CHECK(be.fed == chat.history());
    CHECK(be.pos() == (int)chat.history().size());
    // the history is the template's text, the replies, and the tokens that stopped them
    auto enc = [&](const std::string& s) { return tok.encode(s, false, false); };
    std::vector<int> want = enc("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n");
    want.insert(want.end(), r1.begin(), r1.end());
    REQUIRE(chat.history().size() > want.size());
    const int stop1 = chat.history()[want.size()];
    CHECK(tok.is_stop(stop1));
    want.push_back(stop1);
    for (int id : enc("\n<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n")) want.push_back(id);
    want.insert(want.end(), r2.begin(), r2.end());
    CHECK(std::vector<int>(chat.history().begin(), chat.history().begin() + (long)want.size()) == want);
    CHECK(after1 == want.size() - r2.size() - enc("\n<|im_start|>user\nabc<|im_end|>\n<|im_start|>assistant\n").size() - 1);
    // on_text saw each reply's bytes as whole UTF-8 characters
    std::string text;
    for (const std::vector<int>* r : {&r1, &r2, &r3}) {
        std::string bytes;
        for (int id : *r) bytes += tok.decode_piece(-1, id);
        Utf8Stream u;
        text += u.push(bytes);
        text += u.finish();
    }
    CHECK(said == text);

    // continuing the cache gives what a fresh model computes for the whole history at once
    auto fresh = make_cpu_backend(m, 1, 128);
    PrefillOptions sequential;
    sequential.sequential = true;
    fresh->prefill(chat.history().data(), (int)chat.history().size(), sequential);
    const ErrorStats e = compare(be.logits(), fresh->logits(), (size_t)tok.vocab_size());
    CHECK(e.finite);
    CHECK(e.rel_l2 < 1e-5);
}

TEST_CASE("chat: a full context is a clear error, before a turn or in the middle of a reply", "[chat]") {
    const Tokenizer tok = tokenizer_from_spec(small_spec());  // stops only at <|im_end|>
    const Model m = chat_model(tok, 40);
    {
        auto be = make_cpu_backend(m, 1, 40);
        Chat chat(*be, tok, chat_template_named("chatml"), "", Sampler(tok.vocab_size(), 0.0f, 1.0f, 1), PrefillOptions{});
        CHECK_THROWS_WITH(chat.reply(std::string(60, 'x'), [](const std::string&) {}),
                          Catch::Contains("filled the context of 40") && Catch::Contains("needs"));
        CHECK(be->pos() == 0);  // nothing was fed
    }
    {
        auto be = make_cpu_backend(m, 1, 40);
        Chat chat(*be, tok, chat_template_named("chatml"), "", Sampler(tok.vocab_size(), 0.0f, 1.0f, 1), PrefillOptions{});
        std::string said;
        try {
            for (int turn = 0; turn < 10; turn++) chat.reply("hi", [&](const std::string& s) { said += s; });
            FAIL("ten turns fitted in 40 positions");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find("filled the context of 40") != std::string::npos);
        }
        CHECK(be->pos() <= 40);
    }
    // a format whose markers the vocabulary lacks is refused up front
    Tokenizer plain = tokenizer_from_spec(small_spec());
    plain.specials.clear();
    plain.build_index();
    auto be = make_cpu_backend(m, 1, 40);
    CHECK_THROWS_WITH(Chat(*be, plain, chat_template_named("chatml"), "", Sampler(plain.vocab_size(), 0.0f, 1.0f, 1), PrefillOptions{}),
                      Catch::Contains("<|im_start|>") && Catch::Contains("--chat-template"));
}

// ---------------------------------------------------------------- what a model's files say

TEST_CASE("generation settings: llama2.c models stop at BOS, folders at their eos_token_id, BOS only when asked", "[tokenizer]") {
    Config c = preset_config("tiny");
    Model m = init_model(c, parse_plan("standard", c.n_layers), 8);
    const Tokenizer kvs = tokenizer_for("", m);  // a 259-token model: the byte tokenizer, llama2.c's rules
    CHECK(kvs.add_bos);
    CHECK(kvs.stop_ids == std::vector<int>{1});
    CHECK(encode_prompt(kvs, "") == std::vector<int>{1});

    const std::string dir = temp_path("genfolder");
    fs::remove_all(dir);
    save_hf_folder(dir, m, DType::F32, sentencepiece_model_bytes(Tokenizer::bytes()));
    Model f = load_model(dir);
    CHECK(tokenizer_for("", f).stop_ids == std::vector<int>{2});  // config.json's eos_token_id, not BOS
    hf_test::write_bytes(dir + "/generation_config.json", "{\"bos_token_id\": 1, \"eos_token_id\": [2, 7]}");
    hf_test::write_bytes(dir + "/tokenizer_config.json",
                         "{\"add_bos_token\": false, \"chat_template\": \"{{ bos_token + '[INST] ' + content + ' [/INST]' }}\"}");
    const Tokenizer t = tokenizer_for("", f);
    CHECK(t.stop_ids == std::vector<int>{2, 7});
    CHECK(!t.add_bos);
    CHECK(encode_prompt(t, "a")[0] != 1);
    CHECK(recognise_chat_template(t.chat_template, "t").format == ChatFormat::Llama2);
    hf_test::write_bytes(dir + "/generation_config.json", "{\"eos_token_id\": 999}");
    CHECK_THROWS_WITH(tokenizer_for("", f), Catch::Contains("generation_config.json") && Catch::Contains("999"));
    fs::remove_all(dir);

    // a folder with tokenizer.json and no tokenizer.model: byte-level BPE, without -z
    TokenizerSpec spec = small_spec("smollm");
    c.vocab_size = (int)spec.tokens.size();
    Model b = init_model(c, parse_plan("standard", c.n_layers), 8);
    save_hf_folder(dir, b, DType::F32, sentencepiece_model_bytes(Tokenizer::bytes()));
    fs::remove(dir + "/tokenizer.model");
    hf_test::write_bytes(dir + "/tokenizer.json", tokenizer_json_text(spec));
    const Tokenizer j = tokenizer_for("", load_model(dir));
    CHECK(j.is_byte_level());
    CHECK(!j.add_bos);
    CHECK(j.encode("hello 12", false, false) == tokenizer_from_spec(spec).encode("hello 12", false, false));
    CHECK(j.stop_ids == std::vector<int>{2});
    fs::remove_all(dir);
}
