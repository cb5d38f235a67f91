// tokenizer_for: which tokenizer a command uses for a model, and what the model's files say
// about generation (BOS, the ids that end it, the chat template).
#include "src/commands/commands.h"
#include "src/formats/json.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include "src/util.h"
#include <filesystem>
#include <sys/stat.h>

namespace fs = std::filesystem;

// A folder's JSON file, or a null Json when it has none.
static Json folder_json(const std::string& folder, const char* name, std::string* source) {
    const fs::path p = fs::path(folder) / name;
    *source = "'" + p.string() + "'";
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) return Json::null();
    return parse_json(read_text_file(p.string(), name, (size_t)64 << 20), *source);
}

// eos_token_id as config.json and generation_config.json write it: an id, a list of ids, or null.
static std::vector<int> eos_ids(const Json& file, const std::string& source, int vocab) {
    const Json* v = file.find("eos_token_id");
    std::vector<int> ids;
    if (!v || v->is(Json::Type::Null)) return ids;
    const std::vector<Json> one{*v};
    for (const Json& id : v->is(Json::Type::Array) ? v->items : one) {
        const int64_t n = id.as_int(source + ": eos_token_id");
        if (n < 0 || n >= vocab) fail(source + ": eos_token_id " + id.text + " is outside the vocabulary of " + std::to_string(vocab));
        ids.push_back((int)n);
    }
    return ids;
}

// A Hugging Face folder's word on generation: tokenizer_config.json's add_bos_token and
// chat_template, and the EOS ids of generation_config.json (what transformers' generate
// uses), else config.json's.
static void apply_folder(Tokenizer& t, const std::string& folder, int vocab) {
    std::string source;
    const Json tc = folder_json(folder, "tokenizer_config.json", &source);
    if (tc.is(Json::Type::Object)) {
        if (const Json* v = tc.find("add_bos_token"); v && !v->is(Json::Type::Null)) t.add_bos = v->as_bool(source + ": add_bos_token");
        const std::string chat_template = config_chat_template(tc, source);
        if (!chat_template.empty()) t.chat_template = chat_template;
    }
    std::vector<int> stop;
    for (const char* name : {"generation_config.json", "config.json"})
        if (stop.empty()) stop = eos_ids(folder_json(folder, name, &source), source, vocab);
    if (!stop.empty()) {
        t.stop_ids = stop;
        t.eos_id = stop[0];
    }
    if (t.add_bos && (t.bos_id < 0 || t.bos_id >= t.vocab_size())) fail("'" + folder + "': the model asks for BOS, but its tokenizer has none");
}

static void check_vocab(const Tokenizer& t, int vocab, const std::string& what) {
    if (t.vocab_size() != vocab)
        fail(what + " has " + std::to_string(t.vocab_size()) + " tokens, but the model's vocabulary has " + std::to_string(vocab));
}

Tokenizer tokenizer_for(const std::string& path, const Model& m) {
    const int vocab = m.config.vocab_size;
    Tokenizer t;
    std::error_code ec;
    const fs::path folder_json_tokenizer = m.folder.empty() ? fs::path() : fs::path(m.folder) / "tokenizer.json";
    struct stat st;
    if (!path.empty()) t = load_tokenizer_file(path, vocab);
    else if (m.tokenizer_spec) {
        t = tokenizer_from_spec(*m.tokenizer_spec);
        check_vocab(t, vocab, "the tokenizer in '" + m.tokenizer_spec->source + "'");
    } else if (!m.tokenizer_path.empty()) t = load_tokenizer_file(m.tokenizer_path, vocab);
    else if (!m.folder.empty() && fs::is_regular_file(folder_json_tokenizer, ec)) t = load_tokenizer_file(folder_json_tokenizer.string(), vocab);
    else if (vocab == 259) t = Tokenizer::bytes();
    else if (stat("tokenizer.bin", &st) == 0) t = Tokenizer::load("tokenizer.bin", vocab);
    else fail("the model has a " + std::to_string(vocab) + "-token vocabulary: pass its tokenizer with -z (e.g. llama2.c's tokenizer.bin)");
    if (!m.folder.empty()) apply_folder(t, m.folder, vocab);
    return t;
}
