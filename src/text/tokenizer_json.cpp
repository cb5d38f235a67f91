#include "src/text/tokenizer_json.h"
#include "src/text/pretokenize.h"
#include "src/util.h"
#include <algorithm>
#include <cctype>
#include <filesystem>

static const int kNormal = 1, kControl = 3, kUserDefined = 4;
static const size_t kMaxTokens = 1u << 24;

namespace {

// One JSON object of the file, with the path that names it in errors ("model.vocab").
struct Node {
    const Json& json;
    std::string path;
    const std::string& source;

    [[noreturn]] void bad(const std::string& why) const { fail(source + ": " + path + " " + why); }
    Node at(const std::string& key) const {
        const Json* v = json.find(key);
        static const Json null;
        return {v ? *v : null, path.empty() ? key : path + "." + key, source};
    }
    bool is_null() const { return json.is(Json::Type::Null); }
    std::string type_field() const {  // "type" of an object that must have one
        if (!json.is(Json::Type::Object)) bad("is " + json.type_name() + ", not an object");
        const Node t = at("type");
        if (!t.json.is(Json::Type::String)) t.bad("is missing or not a string");
        return t.json.text;
    }
    bool flag(const std::string& key, bool fallback) const {
        const Node v = at(key);
        return v.is_null() ? fallback : v.json.as_bool(source + ": " + v.path);
    }
    // A string field that must be null, absent or one of the allowed values.
    void expect_unset(const std::string& key, const std::string& why) const {
        const Node v = at(key);
        if (!v.is_null() && !(v.json.is(Json::Type::String) && v.json.text.empty())) v.bad("is set; " + why);
    }
};

std::string refusal(const std::string& what) { return what + ", which kvshare does not implement"; }

// The pre-tokenizer the file describes, by name, and whether the BPE model must ignore merges.
std::string pre_tokenizer_of(const Node& pre) {
    if (pre.is_null()) pre.bad("is null; a byte-level BPE tokenizer.json has a ByteLevel pre-tokenizer");
    auto byte_level = [&](const Node& b, bool use_regex) {
        if (b.type_field() != "ByteLevel") return false;
        if (b.flag("add_prefix_space", true)) b.bad("adds a prefix space (add_prefix_space), " + refusal("a space before the text"));
        return b.flag("use_regex", true) == use_regex;
    };
    const std::string type = pre.type_field();
    if (type == "ByteLevel" && byte_level(pre, true)) return "gpt2";
    if (type == "Sequence") {
        const Node list = pre.at("pretokenizers");
        if (list.json.is(Json::Type::Array) && list.json.items.size() == 2) {
            const Node first{list.json.items[0], list.path + "[0]", pre.source}, second{list.json.items[1], list.path + "[1]", pre.source};
            const std::string kind = first.type_field();
            if (kind == "Digits" && first.flag("individual_digits", false) && byte_level(second, true)) return "smollm";
            if (kind == "Split") {
                const Node pattern = first.at("pattern").at("Regex");
                const Node behavior = first.at("behavior");
                if (pattern.json.is(Json::Type::String) && pattern.json.text == kLlama3Pattern && behavior.json.is(Json::Type::String) &&
                    behavior.json.text == "Isolated" && !first.flag("invert", false) && byte_level(second, false))
                    return "llama3";
            }
        }
    }
    pre.bad("is not one of the pre-tokenizers kvshare implements (GPT-2's ByteLevel; SmolLM's Digits + ByteLevel; Llama 3's Split + "
            "ByteLevel, as src/text/tokenizer_json.h lists them)");
}

// The id of a token's text, or a clear error.
int id_of(const TokenizerSpec& spec, const std::string& text, const std::string& what) {
    const auto it = std::find(spec.tokens.begin(), spec.tokens.end(), text);
    if (it == spec.tokens.end()) fail(what + " names '" + text + "', which is not a token");
    return (int)(it - spec.tokens.begin());
}

// post_processor: whether a prompt starts with BOS (and ends with EOS), and which.
void read_post_processor(const Node& post, TokenizerSpec& spec) {
    if (post.is_null()) return;
    const std::string type = post.type_field();
    if (type == "ByteLevel") return;  // offsets only
    if (type != "TemplateProcessing") post.bad("is a " + type + " processor, " + refusal("that"));
    const Node single = post.at("single");
    if (!single.json.is(Json::Type::Array)) single.bad("is not a list");
    const std::vector<Json>& items = single.json.items;
    size_t a = items.size();  // where the sequence is
    for (size_t i = 0; i < items.size(); i++)
        if (items[i].find("Sequence")) a = i;
    if (a == items.size() || a > 1 || items.size() - a > 2) single.bad("is not [BOS?, the text, EOS?], " + refusal("another template"));
    auto special = [&](size_t i) {
        const Json* s = items[i].find("SpecialToken");
        if (!s || !s->find("id")) single.bad("has an item that is neither the text nor a special token");
        return id_of(spec, s->find("id")->as_string(post.source + ": " + single.path), post.source + ": " + single.path);
    };
    if (a == 1) { spec.add_bos = true; spec.bos_id = special(0); }
    if (items.size() - a == 2) { spec.add_eos = true; spec.eos_id = special(a + 1); }
}

std::string token_text(const Json& v, const std::string& what) {
    if (v.is(Json::Type::Object)) {
        const Json* c = v.find("content");
        if (!c) fail(what + " has no content");
        return c->as_string(what + ".content");
    }
    return v.as_string(what);
}

}  // namespace

bool looks_like_json(const std::string& bytes) {
    size_t i = 0;
    while (i < bytes.size() && std::isspace((unsigned char)bytes[i])) i++;
    return i < bytes.size() && bytes[i] == '{';
}

TokenizerSpec parse_tokenizer_json(const std::string& text, const std::string& path) {
    const std::string source = "'" + path + "'";
    const Json root = parse_json(text, source);
    if (!root.is(Json::Type::Object)) fail(source + ": tokenizer.json is " + root.type_name() + ", not an object");
    const Node top{root, "", source};
    TokenizerSpec spec;
    spec.model = "gpt2";
    spec.source = path;

    const Node model = top.at("model");
    if (model.is_null()) fail(source + ": tokenizer.json has no model");
    const std::string type = model.type_field();
    if (type != "BPE") model.bad("is a " + type + " model; kvshare reads BPE");
    if (model.flag("byte_fallback", false))
        model.bad("has byte_fallback: a SentencePiece-style tokenizer.json (Llama 2, TinyLlama); give the folder's tokenizer.model");
    if (!model.at("dropout").is_null() && model.at("dropout").json.as_number(source + ": model.dropout") != 0)
        model.at("dropout").bad("is set; " + refusal("BPE dropout"));
    model.expect_unset("continuing_subword_prefix", refusal("a subword prefix"));
    model.expect_unset("end_of_word_suffix", refusal("a word suffix"));
    if (!top.at("normalizer").is_null()) top.at("normalizer").bad("is set; " + refusal("normalizing text"));
    spec.pre = pre_tokenizer_of(top.at("pre_tokenizer"));
    const bool ignore_merges = model.flag("ignore_merges", false);
    if (ignore_merges != (spec.pre == "llama3"))
        model.bad(std::string(ignore_merges ? "ignores" : "does not ignore") + " merges with the " + spec.pre + " pre-tokenizer, " +
                  refusal("that combination (Llama 3's tokenizer ignores them, GPT-2's and SmolLM's do not)"));
    const Node decoder = top.at("decoder");
    if (!decoder.is_null() && decoder.type_field() != "ByteLevel") decoder.bad("is not ByteLevel; " + refusal("another decoder"));

    // every id, from the vocabulary and the added tokens, counted before anything is allocated
    const Node vocab = model.at("vocab"), added = top.at("added_tokens");
    if (!vocab.json.is(Json::Type::Object)) vocab.bad("is missing or not an object");
    if (!added.is_null() && !added.json.is(Json::Type::Array)) added.bad("is not a list");
    const size_t entries = vocab.json.members.size() + added.json.items.size();
    if (entries > kMaxTokens) fail(source + ": " + std::to_string(entries) + " tokens, more than 16M");
    std::vector<std::pair<int64_t, std::string>> ids;  // (id, text)
    std::vector<int> types;
    for (const auto& m : vocab.json.members) {
        ids.push_back({m.second.as_int(source + ": model.vocab[\"" + m.first + "\"]"), m.first});
        types.push_back(kNormal);
    }
    for (size_t i = 0; i < added.json.items.size(); i++) {
        const Node t{added.json.items[i], "added_tokens[" + std::to_string(i) + "]", source};
        if (!t.json.is(Json::Type::Object)) t.bad("is not an object");
        const Node id = t.at("id"), content = t.at("content");
        if (!content.json.is(Json::Type::String)) content.bad("is missing or not a string");
        for (const char* key : {"single_word", "lstrip", "rstrip"})
            if (t.flag(key, false)) t.bad("('" + content.json.text + "') sets " + key + ", " + refusal("that"));
        ids.push_back({id.json.as_int(source + ": " + id.path), content.json.text});
        types.push_back(t.flag("special", false) ? kControl : kUserDefined);
    }
    for (const auto& p : ids)
        if (p.first < 0 || p.first >= (int64_t)entries)
            fail(source + ": token '" + p.second + "' has id " + std::to_string(p.first) + ", outside 0.." + std::to_string(entries - 1) +
                 " (" + std::to_string(entries) + " tokens in all)");
    size_t n = 0;
    for (const auto& p : ids) n = std::max(n, (size_t)p.first + 1);
    spec.tokens.assign(n, std::string());
    spec.token_types.assign(n, 0);
    for (size_t i = 0; i < ids.size(); i++) {
        const size_t id = (size_t)ids[i].first;
        // an added token may repeat its vocabulary entry, with the same text
        if (spec.token_types[id] != 0 && spec.tokens[id] != ids[i].second)
            fail(source + ": id " + std::to_string(id) + " is both '" + spec.tokens[id] + "' and '" + ids[i].second + "'");
        spec.tokens[id] = ids[i].second;
        spec.token_types[id] = std::max(spec.token_types[id], types[i]);  // an added token's type wins
    }
    for (size_t id = 0; id < n; id++)
        if (spec.token_types[id] == 0) fail(source + ": no token has id " + std::to_string(id) + " (ids must run 0.." + std::to_string(n - 1) + ")");

    const Node merges = model.at("merges");
    if (!merges.json.is(Json::Type::Array)) merges.bad("is missing or not a list");
    spec.merges.reserve(merges.json.items.size());
    for (size_t i = 0; i < merges.json.items.size(); i++) {
        const Json& m = merges.json.items[i];
        const std::string what = source + ": model.merges[" + std::to_string(i) + "]";
        if (m.is(Json::Type::Array)) {  // ["a", "b"], as tokenizers 0.20 and later write them
            if (m.items.size() != 2) fail(what + " is not a pair");
            const std::string l = m.items[0].as_string(what), r = m.items[1].as_string(what);
            if (l.find(' ') != std::string::npos || r.find(' ') != std::string::npos) fail(what + " holds a space, " + refusal("a token with a space in a merge"));
            spec.merges.push_back(l + " " + r);
        } else {
            spec.merges.push_back(m.as_string(what));
        }
    }
    read_post_processor(top.at("post_processor"), spec);
    return spec;
}

void apply_tokenizer_config(TokenizerSpec& spec, const Json& config, const std::string& source) {
    if (!config.is(Json::Type::Object)) fail(source + " is " + config.type_name() + ", not an object");
    auto token = [&](const char* key, int* id) {
        const Json* v = config.find(key);
        if (v && !v->is(Json::Type::Null)) *id = id_of(spec, token_text(*v, source + ": " + key), source + ": " + key);
    };
    token("bos_token", &spec.bos_id);
    token("eos_token", &spec.eos_id);
    token("unk_token", &spec.unk_id);
    token("pad_token", &spec.pad_id);
    if (const Json* v = config.find("add_bos_token"); v && !v->is(Json::Type::Null)) spec.add_bos = v->as_bool(source + ": add_bos_token");
    if (const Json* v = config.find("add_eos_token"); v && !v->is(Json::Type::Null)) spec.add_eos = v->as_bool(source + ": add_eos_token");
    const std::string chat_template = config_chat_template(config, source);
    if (!chat_template.empty()) spec.chat_template = chat_template;
}

std::string config_chat_template(const Json& config, const std::string& source) {
    const Json* v = config.find("chat_template");
    if (!v || v->is(Json::Type::Null)) return "";
    if (v->is(Json::Type::String)) return v->text;
    if (!v->is(Json::Type::Array)) fail(source + ": chat_template is " + v->type_name() + ", not a string or a list");
    for (const Json& t : v->items)
        if (t.find("name") && t.find("name")->as_string(source + ": chat_template name") == "default" && t.find("template"))
            return t.find("template")->as_string(source + ": chat_template");
    fail(source + ": chat_template is a list without a \"default\" template");
}

TokenizerSpec load_tokenizer_json(const std::string& path) {
    const std::string source = "'" + path + "'";
    TokenizerSpec spec = parse_tokenizer_json(read_text_file(path, "tokenizer", (size_t)256 << 20), path);
    std::error_code ec;
    const std::filesystem::path config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
    if (std::filesystem::is_regular_file(config, ec)) {
        const std::string config_source = "'" + config.string() + "'";
        apply_tokenizer_config(spec, parse_json(read_text_file(config.string(), "tokenizer config", (size_t)64 << 20), config_source), config_source);
    }
    if (spec.add_bos && spec.bos_id < 0) fail(source + ": the tokenizer asks for BOS but names no BOS token");
    return spec;
}

// ---------------------------------------------------------------- writing

std::string tokenizer_json_text(const TokenizerSpec& spec) {
    if (spec.model != "gpt2") fail("tokenizer.json: kvshare writes byte-level BPE only, not a '" + spec.model + "' tokenizer");
    const PreTokenizer pre = pre_tokenizer_named(spec.pre, "tokenizer '" + spec.source + "'");
    auto byte_level = [](bool use_regex) {
        return Json::object().set("type", Json::of("ByteLevel")).set("add_prefix_space", Json::of(false))
            .set("trim_offsets", Json::of(true)).set("use_regex", Json::of(use_regex));
    };
    Json pre_json;
    if (pre == PreTokenizer::Gpt2) pre_json = byte_level(true);
    else {
        Json first = pre == PreTokenizer::SmolLM
                         ? Json::object().set("type", Json::of("Digits")).set("individual_digits", Json::of(true))
                         : Json::object().set("type", Json::of("Split")).set("pattern", Json::object().set("Regex", Json::of(kLlama3Pattern)))
                               .set("behavior", Json::of("Isolated")).set("invert", Json::of(false));
        pre_json = Json::object().set("type", Json::of("Sequence"))
                       .set("pretokenizers", Json::array().add(first).add(byte_level(pre == PreTokenizer::SmolLM)));
    }
    Json added = Json::array(), vocab = Json::object(), merges = Json::array();
    for (size_t id = 0; id < spec.tokens.size(); id++) {
        const int type = spec.token_types.empty() ? kNormal : spec.token_types[id];
        vocab.members.push_back({spec.tokens[id], Json::of((int64_t)id)});  // appended: the ids are unique, set() would search
        if (type == kControl || type == kUserDefined)
            added.add(Json::object().set("id", Json::of((int64_t)id)).set("content", Json::of(spec.tokens[id]))
                          .set("single_word", Json::of(false)).set("lstrip", Json::of(false)).set("rstrip", Json::of(false))
                          .set("normalized", Json::of(false)).set("special", Json::of(type == kControl)));
    }
    for (const std::string& m : spec.merges) merges.add(Json::of(m));
    Json post = Json::object().set("type", Json::of("ByteLevel")).set("add_prefix_space", Json::of(true))
                    .set("trim_offsets", Json::of(false)).set("use_regex", Json::of(true));
    if (spec.add_bos || spec.add_eos) {
        // single: [BOS?, A, EOS?]; pair: [BOS?, A, EOS?, BOS?, B, EOS?]
        Json single = Json::array(), pair = Json::array(), special = Json::object();
        auto add = [&](Json& list, int id, const char* sequence, int type_id) {
            if (sequence) {
                list.add(Json::object().set("Sequence", Json::object().set("id", Json::of(sequence)).set("type_id", Json::of(type_id))));
                return;
            }
            const std::string& text = spec.tokens.at((size_t)id);
            list.add(Json::object().set("SpecialToken", Json::object().set("id", Json::of(text)).set("type_id", Json::of(type_id))));
            special.set(text, Json::object().set("id", Json::of(text)).set("ids", Json::array().add(Json::of(id)))
                                  .set("tokens", Json::array().add(Json::of(text))));
        };
        auto sequence = [&](Json& list, const char* name, int type_id) {
            if (spec.add_bos) add(list, spec.bos_id, nullptr, type_id);
            add(list, -1, name, type_id);
            if (spec.add_eos) add(list, spec.eos_id, nullptr, type_id);
        };
        sequence(single, "A", 0);
        sequence(pair, "A", 0);
        sequence(pair, "B", 1);
        post = Json::object().set("type", Json::of("TemplateProcessing")).set("single", single).set("pair", pair).set("special_tokens", special);
    }
    Json model = Json::object().set("type", Json::of("BPE")).set("dropout", Json::null()).set("unk_token", Json::null())
                     .set("continuing_subword_prefix", Json::null()).set("end_of_word_suffix", Json::null())
                     .set("fuse_unk", Json::of(false)).set("byte_fallback", Json::of(false))
                     .set("ignore_merges", Json::of(pre == PreTokenizer::Llama3)).set("vocab", vocab).set("merges", merges);
    Json root = Json::object().set("version", Json::of("1.0")).set("truncation", Json::null()).set("padding", Json::null())
                    .set("added_tokens", added).set("normalizer", Json::null()).set("pre_tokenizer", pre_json)
                    .set("post_processor", post).set("decoder", byte_level(true)).set("model", model);
    return to_json(root, 2);
}

std::string tokenizer_config_json_text(const TokenizerSpec& spec) {
    auto token = [&](int id) { return id < 0 ? Json::null() : Json::of(spec.tokens.at((size_t)id)); };
    Json c = Json::object().set("tokenizer_class", Json::of("PreTrainedTokenizerFast")).set("add_bos_token", Json::of(spec.add_bos))
                 .set("add_eos_token", Json::of(spec.add_eos)).set("bos_token", token(spec.bos_id)).set("eos_token", token(spec.eos_id))
                 .set("unk_token", token(spec.unk_id)).set("pad_token", token(spec.pad_id)).set("clean_up_tokenization_spaces", Json::of(false));
    if (!spec.chat_template.empty()) c.set("chat_template", Json::of(spec.chat_template));
    return to_json(c, 2);
}
