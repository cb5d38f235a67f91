// SentencePiece's tokenizer.model: the real Llama 2 file encodes exactly as llama2.c's
// tokenizer.bin export of it (same pieces, scores, ids over a corpus of hard strings), the
// writer's files read back as the tokenizer they came from, and what the encoder does not
// implement is refused clearly.
#include <catch2/catch.hpp>
#include "src/text/sentencepiece.h"
#include "src/util.h"
#include "tests/helpers.h"
#include <fstream>
#include <unistd.h>

static const std::string kModel = "../shared/data/llama2-tokenizer.model";
static const std::string kBin = "../shared/data/llama2-tokenizer.bin";

static bool have_llama2_files() { return access(kModel.c_str(), R_OK) == 0 && access(kBin.c_str(), R_OK) == 0; }

// Strings that stress the encoder: accents, CJK, emoji, digits, runs of spaces, newlines,
// bytes that need the fallback, control characters, and text that spells special pieces.
static const std::vector<std::string> kCorpus = {
    "",
    "I believe the meaning of life is",
    "Once upon a time, there was a little girl named Lily.",
    "Hello world",
    " leading space",
    "trailing space ",
    "two  spaces and   three    four",
    "\n",
    "line one\nline two\n\nline four\r\n",
    "\ttabs\tand\t\ttabs",
    "naïve café, Grüße, façade, El Niño, Ærøskøbing",
    "日本語のテキストと中文文本",
    "한국어 텍스트",
    "emoji 🙂🚀👩‍👩‍👧 end",
    "digits 0123456789 3.14159 1,000,000 2024-11-30",
    "<s> </s> <unk> <0x41> literal specials",
    "ぁ\xF0\x9F\x90\x8D mixed 🐍 python",
    "control \x01\x02\x1f bytes",
    std::string("nul \0 inside", 12),
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
    "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX!",
    "                                ",
    "a",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "https://example.com/path?query=1&b=2#frag",
    "def f(x):\n    return x ** 2  # comment\n",
};

TEST_CASE("Llama 2's tokenizer.model reads as llama2.c's tokenizer.bin export of it", "[sentencepiece]") {
    if (!have_llama2_files()) {
        WARN("SKIPPED: " << kModel << " or " << kBin << " is absent, so the real SentencePiece model is not checked");
        return;
    }
    const Tokenizer sp = load_sentencepiece(kModel);
    const Tokenizer bin = Tokenizer::load(kBin, 32000);
    REQUIRE(sp.vocab_size() == 32000);
    CHECK(sp.max_token_length == bin.max_token_length);
    size_t piece_diffs = 0, score_diffs = 0;
    for (int i = 0; i < 32000; i++) {
        piece_diffs += sp.pieces[i] != bin.pieces[i];
        score_diffs += sp.scores[i] != bin.scores[i];
    }
    CHECK(piece_diffs == 0);
    CHECK(score_diffs == 0);
    CHECK(sp.pieces[1] == "\n<s>\n");
    CHECK(sp.pieces[29871] == " ");  // "▁" alone
    CHECK(sp.encode("I believe the meaning of life is", true, false) ==
          std::vector<int>{1, 306, 4658, 278, 6593, 310, 2834, 338});
    // the same encoder, once text that spells <s> is read as text (below: as Hugging Face reads it)
    Tokenizer sp_text = sp;
    sp_text.specials.clear();
    sp_text.build_index();
    for (const std::string& s : kCorpus) {
        INFO("text: " << s);
        CHECK(sp_text.encode(s, true, false) == bin.encode(s, true, false));
    }
    // load_tokenizer_file tells the two formats apart by their bytes
    CHECK(load_tokenizer_file(kModel, 32000).pieces == bin.pieces);
    CHECK(load_tokenizer_file(kBin, 32000).pieces == bin.pieces);
    CHECK_THROWS_WITH(load_tokenizer_file(kModel, 32001), Catch::Contains("32000 pieces") && Catch::Contains("32001"));
}

TEST_CASE("a tokenizer.model reads <s>, </s> and <unk> in the text as Hugging Face does", "[sentencepiece]") {
    // Worked by hand on a small model: pieces 0 <unk>, 1 BOS, 2 EOS, 3..258 the bytes, then
    // 259 " the", 260 "ab", 261 " ", 262 "é". The text is cut at each special text, and each
    // part gets its own dummy-prefix space: "a" is " " + byte 'a' = 261, 100.
    Tokenizer t = Tokenizer::bytes();
    for (const char* piece : {" the", "ab", " ", "\xC3\xA9"}) {
        t.pieces.push_back(piece);
        t.scores.push_back(-1.0f);
    }
    t.build_index();
    const Tokenizer sp = parse_sentencepiece(sentencepiece_model_bytes(t), "written");
    CHECK(sp.specials.size() == 3);  // <unk>, <s>, </s>
    CHECK(t.specials.empty());  // llama2.c's rule: text is text
    using Ids = std::vector<int>;
    CHECK(sp.encode("a<s>b", true, false) == Ids{1, 261, 100, 1, 261, 101});
    CHECK(sp.encode("</s>", true, false) == Ids{1, 2});
    CHECK(sp.encode("<unk>", false, true) == Ids{0, 2});
    CHECK(sp.encode(" <s>", true, false) == Ids{1, 261, 261, 1});
    CHECK(sp.encode("<s><s", true, false) == Ids{1, 1, 261, '<' + 3, 's' + 3});
    CHECK(t.encode("<s>", true, false) == Ids{1, 261, '<' + 3, 's' + 3, '>' + 3});
    CHECK(sp.encode("a the", true, false) == t.encode("a the", true, false));  // no special text: as before

    // Llama 2's tokenizer.model: the ids transformers 4.45.2 gives (LlamaTokenizer and
    // LlamaTokenizerFast agree), e.g. LlamaTokenizer.from_pretrained(folder)("a<s>b").input_ids
    if (!have_llama2_files()) {
        WARN("SKIPPED: " << kModel << " is absent, so the Llama 2 ids are not checked");
        return;
    }
    const Tokenizer llama = load_sentencepiece(kModel);
    const std::vector<std::pair<std::string, Ids>> hf = {
        {"<s>", {1, 1}},
        {"a<s>b", {1, 263, 1, 289}},
        {"Hello <s> world", {1, 15043, 29871, 1, 29871, 3186}},
        {"x</s>y", {1, 921, 2, 343}},
        {"a <unk> b", {1, 263, 29871, 0, 29871, 289}},
        {"Hi</s> <s>Bye", {1, 6324, 2, 259, 1, 2648, 29872}},
        {"  <s>  x", {1, 1678, 1, 259, 921}},
        {"<s>\n</s>", {1, 1, 29871, 13, 2}},
        {"<S> < s> <s", {1, 529, 29903, 29958, 529, 269, 29958, 529, 29879}},
    };
    for (const auto& [text, ids] : hf) {
        INFO("text: " << text);
        CHECK(llama.encode(text, true, false) == ids);
    }
}

TEST_CASE("the tokenizer.model writer's output reads back as the tokenizer it came from", "[sentencepiece]") {
    Tokenizer t = Tokenizer::bytes();
    for (const auto& [piece, score] : std::vector<std::pair<std::string, float>>{{" the", -1.5f}, {"ab", -2.0f}, {" ", -0.25f}, {"é", -7.0f}}) {
        t.pieces.push_back(piece);
        t.scores.push_back(score);
    }
    t.build_index();
    const std::string bytes = sentencepiece_model_bytes(t);
    CHECK(is_sentencepiece_model(bytes));
    const Tokenizer r = parse_sentencepiece(bytes, "written");
    CHECK(r.pieces == t.pieces);
    CHECK(r.scores == t.scores);
    Tokenizer r_text = r;  // text spelling <s> is text here; the case above checks it as a token
    r_text.specials.clear();
    r_text.build_index();
    for (const std::string& s : kCorpus) CHECK(r_text.encode(s, true, true) == t.encode(s, true, true));
    // the piece " the" is stored with SentencePiece's visible space
    CHECK(bytes.find("\xE2\x96\x81the") != std::string::npos);
    if (have_llama2_files()) {
        const Tokenizer real = load_sentencepiece(kModel);
        const Tokenizer again = parse_sentencepiece(sentencepiece_model_bytes(real), "rewritten");
        CHECK(again.pieces == real.pieces);
        CHECK(again.scores == real.scores);
    }
    Tokenizer bad = t;
    bad.pieces.back() = "x\xE2\x96\x81y";
    bad.build_index();
    CHECK_THROWS_WITH(sentencepiece_model_bytes(bad), Catch::Contains("U+2581"));
}

// ---------------------------------------------------------------------------
// hand-made ModelProtos for what the encoder does not implement

static void put_varint(std::string& out, uint64_t v) {
    for (; v >= 0x80; v >>= 7) out += (char)(0x80 | (v & 0x7F));
    out += (char)v;
}
static void put_field(std::string& out, uint32_t field, const std::string& bytes) {
    put_varint(out, (uint64_t)field << 3 | 2);
    put_varint(out, bytes.size());
    out += bytes;
}
static void put_int(std::string& out, uint32_t field, uint64_t v) {
    put_varint(out, (uint64_t)field << 3);
    put_varint(out, v);
}

struct SpecOptions {
    int model_type = 2, bos = 1, byte_fallback = 1, extra_type = 1;
    std::string normalizer = "identity";
    int remove_extra_whitespaces = 0;
};

static std::string model_proto(const SpecOptions& o) {
    std::string m;
    auto piece = [&](const std::string& text, int type) {
        std::string p;
        put_field(p, 1, text);
        put_varint(p, 2 << 3 | 5);
        const float score = -1.0f;
        p.append((const char*)&score, 4);
        put_int(p, 3, (uint64_t)type);
        put_field(m, 1, p);
    };
    piece("<unk>", 2);
    piece("<s>", 3);
    piece("</s>", 3);
    for (int b = 0; b < 256; b++) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        piece(buf, 6);
    }
    piece("\xE2\x96\x81hi", o.extra_type);
    std::string trainer;
    put_int(trainer, 3, (uint64_t)o.model_type);
    put_int(trainer, 35, (uint64_t)o.byte_fallback);
    put_int(trainer, 41, (uint64_t)o.bos);
    put_field(m, 2, trainer);
    std::string normalizer;
    put_field(normalizer, 1, o.normalizer);
    put_int(normalizer, 4, (uint64_t)o.remove_extra_whitespaces);
    put_field(m, 3, normalizer);
    return m;
}

TEST_CASE("tokenizer.model: what llama2.c's encoder does not do is refused, with the reason", "[sentencepiece]") {
    const Tokenizer ok = parse_sentencepiece(model_proto({}), "ok");
    CHECK(ok.vocab_size() == 260);
    CHECK(ok.pieces[259] == " hi");
    SpecOptions o;
    o.model_type = 1;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("unigram"));
    o = {};
    o.bos = 5;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("bos 5"));
    o = {};
    o.byte_fallback = 0;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("byte fallback"));
    o = {};
    o.normalizer = "nmt_nfkc";
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("nmt_nfkc"));
    o = {};
    o.remove_extra_whitespaces = 1;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("whitespace"));
    o = {};
    o.extra_type = 4;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("user-defined"));
    o = {};
    o.extra_type = 6;
    CHECK_THROWS_WITH(parse_sentencepiece(model_proto(o), "m"), Catch::Contains("byte piece out of place"));
    // wire-level damage
    std::string m = model_proto({});
    CHECK_THROWS_WITH(parse_sentencepiece(m.substr(0, m.size() - 3), "cut"), Catch::Contains("'cut' is not a valid SentencePiece model"));
    CHECK_THROWS_WITH(parse_sentencepiece(std::string("\x0b\x01", 2), "groups"), Catch::Contains("wire type 3"));
    CHECK_THROWS_WITH(parse_sentencepiece(std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11), "long"),
                      Catch::Contains("longer than 10 bytes"));
}

TEST_CASE("a tokenizer.json goes to its own reader, whose errors name what it lacks", "[sentencepiece]") {
    const std::string json = temp_path("tokenizer.json");
    std::ofstream(json) << "{\"version\": \"1.0\", \"model\": {\"type\": \"BPE\"}}";
    CHECK_THROWS_WITH(load_tokenizer_file(json, 128256), Catch::Contains("tokenizer.json") && Catch::Contains("pre_tokenizer"));
    std::remove(json.c_str());
}
