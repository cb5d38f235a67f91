// tokenizer_from_spec: a checkpoint's description of its tokenizer -> an encoder.
#include "src/text/byte_bpe.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <algorithm>

static const int kNormal = 1, kControl = 3, kUserDefined = 4, kByte = 6;

static Tokenizer byte_level_tokenizer(const TokenizerSpec& spec, const std::string& what) {
    if (spec.pre.empty())
        fail(what + ": the byte-level tokenizer names no pre-tokenizer (tokenizer.ggml.pre), so how it splits text is unknown");
    const PreTokenizer pre = pre_tokenizer_named(spec.pre, what);
    const size_t n = spec.tokens.size();
    Tokenizer t;
    t.pieces.resize(n);
    std::vector<bool> mergeable(n, false);
    for (size_t id = 0; id < n; id++) {
        const int type = spec.token_types.empty() ? kNormal : spec.token_types[id];
        const std::string& text = spec.tokens[id];
        const std::string at = what + ": token " + std::to_string(id) + " ('" + text + "')";
        if (text.empty()) fail(at + " is empty");
        if (type == kByte) fail(at + " is a byte token, which byte-level BPE has no use for");
        if (type < kNormal || type > kByte) fail(at + " has an unknown type " + std::to_string(type));
        if (type == kNormal) {
            mergeable[id] = true;
            if (!token_text_to_bytes(text, &t.pieces[id]))
                fail(at + " holds a character that stands for no byte, which a byte-level vocabulary cannot");
        } else {
            t.pieces[id] = text;  // control and user-defined tokens decode to their text
            if (type == kControl || type == kUserDefined) t.specials.push_back({text, (int)id});
        }
        t.max_token_length = std::max(t.max_token_length, (int)t.pieces[id].size());
    }
    // Llama 3's tokenizer takes a word that is a token as it is; llama.cpp names that rule llama-bpe
    t.byte_level = std::make_shared<ByteBpe>(pre, pre == PreTokenizer::Llama3, spec.tokens, mergeable, spec.merges, what);
    return t;
}

static Tokenizer sentencepiece_kind(const TokenizerSpec& spec, const std::string& what) {
    if (spec.scores.size() != spec.tokens.size()) fail(what + ": a \"llama\" vocabulary needs a score per token");
    if (spec.token_types.empty()) fail(what + ": a \"llama\" vocabulary needs a type per token");
    if (spec.unk_id > 0 || spec.bos_id != 1 || spec.eos_id != 2)
        fail(what + ": its special ids are unk " + std::to_string(spec.unk_id) + ", bos " + std::to_string(spec.bos_id) + ", eos " +
             std::to_string(spec.eos_id) + "; kvshare encodes as llama2.c does, with <unk> 0, BOS 1, EOS 2");
    std::vector<SentencePiece> pieces(spec.tokens.size());
    for (size_t id = 0; id < pieces.size(); id++) pieces[id] = {spec.tokens[id], spec.scores[id], spec.token_types[id]};
    return sentencepiece_tokenizer(pieces, spec.source, true);
}

Tokenizer tokenizer_from_spec(const TokenizerSpec& spec) {
    const std::string what = "'" + spec.source + "'";
    const size_t n = spec.tokens.size();
    if (n == 0) fail(what + ": the tokenizer has no tokens");
    if (n > (1u << 24)) fail(what + ": the tokenizer has " + std::to_string(n) + " tokens, more than 16M");
    if (!spec.scores.empty() && spec.scores.size() != n)
        fail(what + ": " + std::to_string(n) + " tokens but " + std::to_string(spec.scores.size()) + " scores");
    if (!spec.token_types.empty() && spec.token_types.size() != n)
        fail(what + ": " + std::to_string(n) + " tokens but " + std::to_string(spec.token_types.size()) + " token types");
    const std::pair<const char*, int> ids[] = {{"BOS", spec.bos_id}, {"EOS", spec.eos_id}, {"unknown", spec.unk_id}, {"padding", spec.pad_id}};
    for (const auto& id : ids)
        if (id.second < -1 || id.second >= (int64_t)n)
            fail(what + ": the " + id.first + " token id " + std::to_string(id.second) + " is outside the vocabulary of " + std::to_string(n));

    Tokenizer t;
    if (spec.model == "gpt2") t = byte_level_tokenizer(spec, what);
    else if (spec.model == "llama") t = sentencepiece_kind(spec, what);
    else fail(what + ": tokenizer model '" + spec.model + "' is not one kvshare implements (llama: SentencePiece-style BPE; gpt2: byte-level BPE)");
    // What the spec asks of generation. add_eos (a prompt that ends in EOS) makes no sense for
    // generating text and is not applied.
    t.bos_id = spec.bos_id;
    t.eos_id = spec.eos_id;
    t.add_bos = spec.add_bos;
    if (t.add_bos && t.bos_id < 0) fail(what + ": the tokenizer asks for BOS but names no BOS token");
    t.stop_ids.clear();
    if (spec.eos_id >= 0) t.stop_ids.push_back(spec.eos_id);
    t.chat_template = spec.chat_template;
    t.build_index();
    return t;
}
