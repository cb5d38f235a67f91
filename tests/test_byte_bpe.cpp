// Byte-level BPE: the Unicode table, UTF-8 and its streaming, the byte map, the three
// pre-tokenizers (by hand, and against Hugging Face's on the corpus), merges by rank, special
// tokens, tokenizer.json reading and writing, and SmolLM2's real tokenizer against Hugging
// Face's ids for the corpus (tests/data/tokenizer/).
#include <catch2/catch.hpp>
#include "src/text/byte_bpe.h"
#include "src/text/pretokenize.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include "src/text/unicode.h"
#include "tests/tokenizer_data.h"
#include <fstream>
#include <map>

using namespace tokenizer_test;

// ---------------------------------------------------------------- Unicode and UTF-8

TEST_CASE("the generated Unicode table is sorted, disjoint, and classes what the regexes mean", "[tokenizer]") {
    CHECK(std::string(kUnicodeVersion) == "16.0.0");
    REQUIRE(kUnicodeRangeCount > 700);
    for (size_t i = 0; i < kUnicodeRangeCount; i++) {
        CHECK(kUnicodeRanges[i].first <= kUnicodeRanges[i].last);
        CHECK(kUnicodeRanges[i].klass != CharClass::Other);
        if (i) CHECK(kUnicodeRanges[i - 1].last < kUnicodeRanges[i].first);
    }
    CHECK(kUnicodeRanges[kUnicodeRangeCount - 1].last <= 0x10FFFF);
    const std::pair<uint32_t, CharClass> known[] = {
        {'a', CharClass::Letter},     {'Z', CharClass::Letter},      {'0', CharClass::Number},      {'9', CharClass::Number},
        {' ', CharClass::Space},      {'\t', CharClass::Space},      {'\n', CharClass::Space},      {0x0B, CharClass::Space},
        {'_', CharClass::Other},      {'\'', CharClass::Other},      {0x00, CharClass::Other},      {0x1C, CharClass::Other},
        {0xA0, CharClass::Space},     {0x85, CharClass::Space},      {0x3000, CharClass::Space},    {0x2028, CharClass::Space},
        {0x200B, CharClass::Other},   {0x17F, CharClass::Letter},    {0x3B1, CharClass::Letter},    {0x416, CharClass::Letter},
        {0x4E2D, CharClass::Letter},  {0xAC00, CharClass::Letter},   {0x301, CharClass::Other},     {0x94D, CharClass::Other},
        {0x663, CharClass::Number},   {0x216B, CharClass::Number},   {0xBD, CharClass::Number},     {0xB2, CharClass::Number},
        {0x1F600, CharClass::Other},  {0xFFFD, CharClass::Other},    {0x10FFFF, CharClass::Other},  {0x2F800, CharClass::Letter},
        {0x105C0, CharClass::Letter},  // Todhri, new in Unicode 16.0: the table is not an older Unicode's
        {0x10D40, CharClass::Number},  // Garay digit zero, also 16.0
        {kNotACodePoint, CharClass::Other},
    };
    for (const auto& k : known) {
        INFO("U+" << std::hex << k.first);
        CHECK(char_class(k.first) == k.second);
    }
}

TEST_CASE("UTF-8: every code point round-trips, and invalid sequences decode byte by byte", "[tokenizer]") {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        const std::string s = utf8_encode(cp);
        size_t len = 0;
        if (utf8_decode(s.data(), s.size(), 0, &len) != cp || len != s.size()) FAIL("U+" << std::hex << cp);
    }
    for (const char* bad : {"\x80", "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80",
                            "\xFF", "\xE2\x82", "\xF0\x9F\x98"}) {
        const std::string s = bad;
        size_t len = 0;
        CHECK(utf8_decode(s.data(), s.size(), 0, &len) == kNotACodePoint);
        CHECK(len == 1);
        CHECK(!utf8_valid(s));
    }
    CHECK(utf8_valid("caf\xC3\xA9 \xF0\x9F\x98\x80"));
}

TEST_CASE("Utf8Stream prints whole characters only, however the bytes are split", "[tokenizer]") {
    const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z\n";  // a é € 😀 z
    for (size_t cut = 0; cut <= text.size(); cut++)
        for (size_t cut2 = cut; cut2 <= text.size(); cut2++) {
            Utf8Stream s;
            const std::string first = s.push(text.substr(0, cut));
            CHECK(utf8_valid(first));
            std::string out = first + s.push(text.substr(cut, cut2 - cut));
            out += s.push(text.substr(cut2));
            out += s.finish();
            if (out != text) FAIL("split at " << cut << ", " << cut2 << ": '" << out << "'");
        }
    Utf8Stream s;
    CHECK(s.push("\xF0\x9F") == "");  // held
    CHECK(s.push("x") == "\xEF\xBF\xBDx");  // cannot be completed: one U+FFFD, then the x
    CHECK(s.push("\xFF\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD");
    CHECK(s.push("\xE2\x82") == "");
    CHECK(s.finish() == "\xEF\xBF\xBD");  // a partial character at the end
    CHECK(s.push(std::string("a\x01\x1b[31m\tb\x7f", 10)) == "a[31m\tb");  // control characters other than whitespace dropped
}

TEST_CASE("GPT-2's byte map: printable bytes as themselves, the other 68 from U+0100 on", "[tokenizer]") {
    CHECK(byte_to_code_point(' ') == 0x120);  // Ġ
    CHECK(byte_to_code_point('\n') == 0x10A);  // Ċ
    CHECK(byte_to_code_point(0) == 0x100);
    CHECK(byte_to_code_point('!') == '!');
    CHECK(byte_to_code_point(0xAD) == 0x143);  // the soft hyphen does not print
    CHECK(byte_to_code_point(0xFF) == 0xFF);
    std::vector<bool> seen(0x200, false);
    for (int b = 0; b < 256; b++) {
        const uint32_t cp = byte_to_code_point((uint8_t)b);
        REQUIRE(cp < 0x200);
        CHECK(!seen[cp]);
        seen[cp] = true;
        CHECK(code_point_to_byte(cp) == b);
        CHECK(char_class(cp) != CharClass::Space);
    }
    CHECK(code_point_to_byte(' ') == -1);
    CHECK(code_point_to_byte(0x144) == -1);
    std::string bytes;
    CHECK(token_text_to_bytes("\xC4\xA0hi\xC4\x8A", &bytes));  // "Ġhi Ċ"
    CHECK(bytes == " hi\n");
    CHECK(!token_text_to_bytes("a b", &bytes));
}

// ---------------------------------------------------------------- pre-tokenizers

static std::vector<std::string> words(const std::string& text, PreTokenizer p) {
    std::vector<std::string> out;
    size_t end = 0;
    for (const auto& w : pre_tokenize(text, p)) {
        if (w.first != end || w.second <= w.first) FAIL("words do not tile the text at byte " << end);
        out.push_back(text.substr(w.first, w.second - w.first));
        end = w.second;
    }
    if (end != text.size()) FAIL("words end at " << end << " of " << text.size());
    return out;
}

using Words = std::vector<std::string>;

TEST_CASE("pre-tokenizers split as their regular expressions, worked by hand", "[tokenizer]") {
    const PreTokenizer G = PreTokenizer::Gpt2, S = PreTokenizer::SmolLM, L = PreTokenizer::Llama3;
    CHECK(words("I'm  here", G) == Words{"I", "'m", " ", " here"});         // contraction; two spaces: one stays alone
    CHECK(words("a\n\n b", G) == Words{"a", "\n\n", " b"});
    CHECK(words("x  ", G) == Words{"x", "  "});                             // trailing spaces: the whole run
    CHECK(words("123abc", G) == Words{"123", "abc"});
    CHECK(words(" 12", G) == Words{" 12"});
    CHECK(words("!?x", G) == Words{"!?", "x"});
    CHECK(words("IT'S", G) == Words{"IT", "'", "S"});                        // GPT-2's contractions are lower case
    CHECK(words(" 12", S) == Words{" ", "1", "2"});                          // SmolLM: each digit alone
    CHECK(words("a1b", S) == Words{"a", "1", "b"});
    CHECK(words("x  1", S) == Words{"x", "  ", "1"});                        // the run ends its stretch: kept whole
    CHECK(words("12345", L) == Words{"123", "45"});                          // Llama 3: digits in threes
    CHECK(words("I'M", L) == Words{"I", "'M"});                              // any case
    CHECK(words("x'\xC5\xBFx", L) == Words{"x", "'\xC5\xBF", "x"});            // long s folds to s
    CHECK(words("(hello", L) == Words{"(hello"});                            // one non-letter joins a word
    CHECK(words("a\n\n  b", L) == Words{"a", "\n\n", " ", " b"});
    CHECK(words("x!!\n\ny", L) == Words{"x", "!!\n\n", "y"});
    CHECK(words("\tfoo", L) == Words{"\tfoo"});
    CHECK(words("", G).empty());
    // invalid UTF-8: each bad byte an "other" character
    CHECK(words("a\xFF\xFE b", G) == Words{"a", "\xFF\xFE", " b"});
    CHECK(words("\xE2\x82 x", L) == Words{"\xE2\x82", " x"});
}

TEST_CASE("pre-tokenizers split the corpus as Hugging Face's tokenizers do", "[tokenizer]") {
    const Json corpus = read_json(kDataDir + "corpus.json");
    REQUIRE(corpus.items.size() >= 100);
    size_t checked = 0;
    for (const Json& e : corpus.items) {
        const std::string& text = e.find("text")->text;
        INFO("text: '" << text << "'");
        for (const auto& p : {std::make_pair("gpt2", PreTokenizer::Gpt2), std::make_pair("smollm", PreTokenizer::SmolLM),
                              std::make_pair("llama3", PreTokenizer::Llama3)}) {
            INFO("rule " << p.first);
            Words want;
            for (const Json& w : e.find("words")->find(p.first)->items) want.push_back(w.text);
            CHECK(words(text, p.second) == want);
            checked++;
        }
    }
    CHECK(checked == 3 * corpus.items.size());
}

TEST_CASE("pre-tokenizer names: llama.cpp's and kvshare's", "[tokenizer]") {
    CHECK(pre_tokenizer_named("gpt2", "f") == PreTokenizer::Gpt2);
    CHECK(pre_tokenizer_named("smollm", "f") == PreTokenizer::SmolLM);
    CHECK(pre_tokenizer_named("starcoder", "f") == PreTokenizer::SmolLM);
    CHECK(pre_tokenizer_named("llama-bpe", "f") == PreTokenizer::Llama3);
    CHECK_THROWS_WITH(pre_tokenizer_named("qwen2", "'m.gguf'"), Catch::Contains("'m.gguf'") && Catch::Contains("qwen2") &&
                                                                    Catch::Contains("llama-bpe"));
}

// ---------------------------------------------------------------- merges and specials

static std::vector<int> ids(std::initializer_list<const char*> pieces) {
    std::vector<int> v;
    for (const char* p : pieces) v.push_back(small_id(p));
    return v;
}

TEST_CASE("byte-level BPE merges the lowest-ranked pair first, the leftmost on a tie", "[tokenizer]") {
    const Tokenizer t = tokenizer_from_spec(small_spec());
    REQUIRE(t.is_byte_level());
    CHECK(t.encode("abc", false, false) == ids({"a", "bc"}));   // "b c" (rank 0) before "a b" (rank 1)
    CHECK(t.encode("ab", false, false) == ids({"ab"}));
    CHECK(t.encode("aaa", false, false) == ids({"aa", "a"}));   // the same pair twice: leftmost first
    CHECK(t.encode("aaaa", false, false) == ids({"aa", "aa"}));
    CHECK(t.encode("hello", false, false) == ids({"hello"}));   // he, ll, hell, hello
    CHECK(t.encode("hellohello", false, false) == ids({"hello", "hello"}));
    CHECK(t.encode(" world", false, false) == ids({" w", "o", "r", "l", "d"}));
    CHECK(t.encode("xyz", false, false) == ids({"x", "y", "z"}));  // a token no merge makes
    CHECK(t.encode("", false, false).empty());
    // Llama 3's rule takes a word that is a token whole (ignore_merges)
    CHECK(tokenizer_from_spec(small_spec("llama-bpe")).encode("xyz", false, false) == ids({"xyz"}));
    // a long run stays fast: the merges use a queue, not a rescan per merge
    CHECK(t.encode(std::string(200000, 'a'), false, false).size() == 100000);
}

TEST_CASE("special tokens written in the text become their ids, leftmost-longest; other text does not", "[tokenizer]") {
    const Tokenizer t = tokenizer_from_spec(small_spec());
    std::vector<int> want = {1};
    for (int id : ids({"a", "bc"})) want.push_back(id);
    want.push_back(2);
    CHECK(t.encode("<|im_start|>abc<|im_end|>", false, false) == want);
    CHECK(t.encode("<t>>a", false, false) == ids({"<t>>", "a"}));  // user-defined, the longer of two
    CHECK(t.encode("<t>a", false, false) == ids({"<t>", "a"}));
    CHECK(t.encode("<|im_start", false, false).size() == 10);      // not a special: its bytes
    CHECK(t.encode("<|im_start|><|im_start|>", false, false) == std::vector<int>{1, 1});
    CHECK(t.encode("ab", true, true) == std::vector<int>{1, small_id("ab"), 2});  // BOS and EOS when asked
    // decoding: bytes back, specials as their text
    std::string back;
    const std::string text = "<|im_start|>h\xC3\xA9llo \xF0\x9F\x98\x80<t>";
    const std::vector<int> enc = t.encode(text, false, false);
    for (size_t i = 0; i < enc.size(); i++) back += t.decode_piece(i ? enc[i - 1] : -1, enc[i]);
    CHECK(back == text);
}

TEST_CASE("any bytes, valid UTF-8 or not, encode and decode back", "[tokenizer]") {
    const Tokenizer t = tokenizer_from_spec(small_spec("llama-bpe"));
    const Tokenizer g = tokenizer_from_spec(small_spec("smollm"));
    Rng rng(21);
    for (int i = 0; i < 300; i++) {
        std::string s(rng.next_u32() % 40, '\0');
        for (char& c : s) c = (char)(i % 2 ? rng.next_u32() : "ab c1\n'\xC3\xA9"[rng.next_u32() % 9]);
        for (const Tokenizer* k : {&t, &g}) {
            std::string back;
            for (int id : k->encode(s, false, false)) back += k->decode_piece(-1, id);
            if (back != s) FAIL("round trip of " << i << " failed");
        }
    }
}

TEST_CASE("tokenizer specs: what each model name becomes, and what is refused", "[tokenizer]") {
    TokenizerSpec s = small_spec();
    s.add_bos = false;
    const Tokenizer t = tokenizer_from_spec(s);
    CHECK(t.stop_ids == std::vector<int>{2});  // stops at EOS, not BOS
    CHECK(!t.add_bos);
    s.add_bos = true;
    CHECK(tokenizer_from_spec(s).add_bos);
    s.bos_id = -1;
    CHECK_THROWS_WITH(tokenizer_from_spec(s), Catch::Contains("BOS"));
    auto refused = [](TokenizerSpec bad, const std::string& why) {
        INFO(why);
        CHECK_THROWS_WITH(tokenizer_from_spec(bad), Catch::Contains("'small'") && Catch::Contains(why));
    };
    TokenizerSpec bad = small_spec();
    bad.model = "bert";
    refused(bad, "tokenizer model 'bert'");
    bad = small_spec();
    bad.pre = "";
    refused(bad, "names no pre-tokenizer");
    bad = small_spec();
    bad.pre = "deepseek-llm";
    refused(bad, "deepseek-llm");
    bad = small_spec();
    bad.merges.push_back("q \xC4\xA0zz");
    refused(bad, "lacks");
    bad = small_spec();
    bad.merges.push_back("x y");  // "xy" is no token
    refused(bad, "makes 'xy'");
    bad = small_spec();
    bad.merges.push_back("abc");
    refused(bad, "not two tokens");
    bad = small_spec();
    bad.token_types[200] = 6;
    refused(bad, "byte token");
    bad = small_spec();
    bad.tokens[100] = "a b";
    refused(bad, "stands for no byte");
    bad = small_spec();
    bad.eos_id = 100000;
    refused(bad, "outside the vocabulary");
    bad = small_spec();
    bad.token_types.pop_back();
    refused(bad, "token types");
    bad = small_spec();
    bad.tokens[50] = bad.tokens[51];
    refused(bad, "duplicate");
}

// A "llama" spec as a GGUF of Llama 2 or TinyLlama holds it: <unk>, <s>, </s>, byte pieces, then
// pieces with U+2581 for spaces, scores and types.
static TokenizerSpec llama_spec() {
    TokenizerSpec s;
    s.model = "llama";
    s.source = "llama";
    s.tokens = {"<unk>", "<s>", "</s>"};
    s.token_types = {2, 3, 3};
    for (int b = 0; b < 256; b++) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        s.tokens.push_back(buf);
        s.token_types.push_back(6);
    }
    for (const char* p : {"\xE2\x96\x81", "h", "i", "\xE2\x96\x81h", "\xE2\x96\x81hi", "<|user|>"}) {
        s.tokens.push_back(p);
        s.token_types.push_back(std::string(p) == "<|user|>" ? 4 : 1);
    }
    s.scores.assign(s.tokens.size(), 0.0f);
    for (size_t i = 259; i < s.tokens.size(); i++) s.scores[i] = -(float)i;
    s.unk_id = 0;
    s.bos_id = 1;
    s.eos_id = 2;
    s.add_bos = true;
    return s;
}

TEST_CASE("a \"llama\" spec becomes llama2.c's encoder, with its control and user-defined tokens as specials", "[tokenizer]") {
    const Tokenizer t = tokenizer_from_spec(llama_spec());
    REQUIRE(!t.is_byte_level());
    const int space = 259, h = 260, i = 261, sp_hi = 263, user = 264;
    CHECK(t.encode("hi", true, false) == std::vector<int>{1, sp_hi});          // dummy prefix, merged by score
    CHECK(t.encode("hi h", false, false) == std::vector<int>{sp_hi, space + 1 + 2}); // "▁h" is id 262
    CHECK(t.encode("ih", false, false) == std::vector<int>{space, i, h});
    CHECK(t.encode("\xC3\xA9", false, false) == std::vector<int>{space, 0xC3 + 3, 0xA9 + 3});  // byte fallback
    // specials: each text stretch after one gets its own dummy prefix, as Hugging Face's
    // (legacy) Llama tokenizer and llama.cpp do
    CHECK(t.encode("<s>hi</s><|user|>hi", false, false) == std::vector<int>{1, sp_hi, 2, user, sp_hi});
    CHECK(t.add_bos);
    CHECK(t.stop_ids == std::vector<int>{2});
    CHECK(t.decode_piece(1, sp_hi) == "hi");   // the dummy prefix dropped after BOS
    CHECK(t.decode_piece(h, sp_hi) == " hi");
    TokenizerSpec bad = llama_spec();
    bad.eos_id = 7;
    CHECK_THROWS_WITH(tokenizer_from_spec(bad), Catch::Contains("EOS 2"));
    bad = llama_spec();
    bad.scores.clear();
    CHECK_THROWS_WITH(tokenizer_from_spec(bad), Catch::Contains("score"));
    bad = llama_spec();
    bad.token_types[100] = 1;  // a byte piece that is not one
    CHECK_THROWS_WITH(tokenizer_from_spec(bad), Catch::Contains("not a byte piece"));
    bad = llama_spec();
    bad.token_types.back() = 5;
    CHECK_THROWS_WITH(tokenizer_from_spec(bad), Catch::Contains("unused"));
}

// ---------------------------------------------------------------- tokenizer.json

TEST_CASE("tokenizer.json written from a spec reads back as the same spec", "[tokenizer]") {
    for (const char* pre : {"gpt2", "smollm", "llama3"}) {
        TokenizerSpec s = small_spec(pre);
        s.add_bos = std::string(pre) == "llama3";
        const TokenizerSpec r = parse_tokenizer_json(tokenizer_json_text(s), "small.json");
        CHECK(r.model == "gpt2");
        CHECK(r.pre == pre);
        CHECK(r.tokens == s.tokens);
        CHECK(r.token_types == s.token_types);
        CHECK(r.merges == s.merges);
        CHECK(r.add_bos == s.add_bos);
        if (s.add_bos) CHECK(r.bos_id == s.bos_id);
        CHECK(r.source == "small.json");
        const Tokenizer a = tokenizer_from_spec(s), b = tokenizer_from_spec(r);
        CHECK(a.encode("<t>hello abc 123!", a.add_bos, false) == b.encode("<t>hello abc 123!", b.add_bos, false));
    }
}

// A minimal byte-level tokenizer.json with some fields replaced.
static std::string json_with(const std::map<std::string, std::string>& replaced) {
    std::string vocab;
    for (int b = 0; b < 256; b++) {
        std::string text = mapped(std::string(1, (char)b));
        if (text == "\"" || text == "\\") text = "\\" + text;
        vocab += (b ? ", \"" : "\"") + text + "\": " + std::to_string(b);
    }
    vocab += ", \"ab\": 256";
    std::map<std::string, std::string> fields = {
        {"added_tokens", "[{\"id\": 257, \"content\": \"<s>\", \"special\": true}]"},
        {"normalizer", "null"},
        {"pre_tokenizer", "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}"},
        {"post_processor", "null"},
        {"decoder", "{\"type\": \"ByteLevel\"}"},
        {"model", "{\"type\": \"BPE\", \"vocab\": {" + vocab + "}, \"merges\": [\"a b\"]}"},
    };
    for (const auto& r : replaced) fields[r.first] = r.second;
    std::string out = "{";
    for (const auto& f : fields)
        if (!f.second.empty()) out += (out.size() > 1 ? ", \"" : "\"") + f.first + "\": " + f.second;
    return out + "}";
}

TEST_CASE("tokenizer.json: what it describes is read, what kvshare does not implement is refused by name", "[tokenizer]") {
    const TokenizerSpec ok = parse_tokenizer_json(json_with({}), "t.json");
    REQUIRE(ok.tokens.size() == 258);
    CHECK(ok.token_types[257] == 3);
    CHECK(ok.merges == std::vector<std::string>{"a b"});
    CHECK(!ok.add_bos);
    const std::string bos_first = "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, "
                                  "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}]}";
    const TokenizerSpec with_bos = parse_tokenizer_json(json_with({{"post_processor", bos_first}}), "t.json");
    CHECK(with_bos.add_bos);
    CHECK(with_bos.bos_id == 257);
    CHECK(tokenizer_from_spec(with_bos).encode("ab", true, false) == std::vector<int>{257, 256});
    // merges as pairs, as tokenizers 0.20 writes them
    std::string pairs = json_with({});
    pairs.replace(pairs.find("[\"a b\"]"), 7, "[[\"a\", \"b\"]]");
    CHECK(parse_tokenizer_json(pairs, "t.json").merges == std::vector<std::string>{"a b"});

    const std::map<std::string, std::string> refusals[] = {
        {{"normalizer", "{\"type\": \"NFC\"}"}},
        {{"pre_tokenizer", "{\"type\": \"Whitespace\"}"}},
        {{"pre_tokenizer", "{\"type\": \"ByteLevel\", \"add_prefix_space\": true}"}},
        {{"pre_tokenizer", "null"}},
        {{"post_processor", "{\"type\": \"RobertaProcessing\"}"}},
        {{"decoder", "{\"type\": \"WordPiece\"}"}},
        {{"model", "{\"type\": \"WordPiece\", \"vocab\": {}}"}},
        {{"model", "{\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": {}, \"merges\": []}"}},
        {{"model", "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}"},
         {"added_tokens", "[{\"id\": 0, \"content\": \"a\"}]"}},
        {{"model", "{\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 99999999999}, \"merges\": []}"}},
        {{"model", "{\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}"}},
        {{"model", "{\"type\": \"BPE\", \"continuing_subword_prefix\": \"##\", \"vocab\": {}, \"merges\": []}"}},
        {{"model", "{\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {}, \"merges\": []}"}},
        {{"added_tokens", "[{\"id\": 257, \"content\": \"<s>\", \"lstrip\": true}]"}},
        {{"added_tokens", "[{\"id\": 0, \"content\": \"<s>\"}]"}},
        {{"added_tokens", "{}"}},
    };
    const std::string messages[] = {"normalizer", "pre_tokenizer", "add_prefix_space", "pre_tokenizer", "Roberta", "decoder", "WordPiece",
                                    "tokenizer.model", "no token has id 1", "outside", "outside", "subword prefix", "ignores merges",
                                    "lstrip", "id 0 is both", "not a list"};
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        INFO(refusals[i].begin()->first << " = " << refusals[i].begin()->second);
        CHECK_THROWS_WITH(parse_tokenizer_json(json_with(refusals[i]), "t.json"),
                          Catch::Contains("'t.json'") && Catch::Contains(messages[i]));
    }
    // the merge's tokens are checked when the encoder is built
    std::string bad_merge = json_with({});
    bad_merge.replace(bad_merge.find("[\"a b\"]"), 7, "[\"a q\", \"a z\"]");
    CHECK_THROWS_WITH(tokenizer_from_spec(parse_tokenizer_json(bad_merge, "t.json")), Catch::Contains("makes 'aq'"));
}

TEST_CASE("tokenizer_config.json beside tokenizer.json: BOS, EOS, add_bos_token, chat_template", "[tokenizer]") {
    TokenizerSpec s = parse_tokenizer_json(json_with({}), "t.json");
    apply_tokenizer_config(s, parse_json("{\"bos_token\": {\"content\": \"<s>\"}, \"eos_token\": \"ab\", \"add_bos_token\": true, "
                                         "\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"x\"}, {\"name\": \"default\", \"template\": \"<|im_start|>\"}]}",
                                         "c"),
                           "c");
    CHECK(s.bos_id == 257);
    CHECK(s.eos_id == 256);
    CHECK(s.add_bos);
    CHECK(s.chat_template == "<|im_start|>");
    CHECK_THROWS_WITH(apply_tokenizer_config(s, parse_json("{\"eos_token\": \"<nope>\"}", "c"), "'c'"), Catch::Contains("<nope>"));
    CHECK_THROWS_WITH(apply_tokenizer_config(s, parse_json("{\"chat_template\": [{\"name\": \"rag\", \"template\": \"x\"}]}", "c"), "'c'"),
                      Catch::Contains("default"));
}

// ---------------------------------------------------------------- SmolLM2's real tokenizer

TEST_CASE("SmolLM2's tokenizer gives Hugging Face's ids for the corpus, under each pre-tokenizer", "[tokenizer]") {
    TokenizerSpec spec = load_tokenizer_json(kSmolLM2);
    REQUIRE(spec.tokens.size() == 49152);
    REQUIRE(spec.merges.size() == 48900);
    CHECK(spec.pre == "smollm");
    CHECK(!spec.add_bos);
    const Tokenizer smollm = tokenizer_from_spec(spec);
    spec.pre = "gpt2";
    const Tokenizer gpt2 = tokenizer_from_spec(spec);
    spec.pre = "llama-bpe";
    const Tokenizer llama3 = tokenizer_from_spec(spec);
    CHECK(smollm.specials.size() == 17);
    const Json corpus = read_json(kDataDir + "corpus.json");
    size_t tokens = 0;
    for (const Json& e : corpus.items) {
        const std::string& text = e.find("text")->text;
        INFO("text: '" << text << "'");
        const std::vector<int> got = smollm.encode(text, false, false);
        CHECK(got == ids_of(*e.find("smollm2")));
        CHECK(gpt2.encode(text, false, false) == ids_of(*e.find("gpt2")));
        CHECK(llama3.encode(text, false, false) == ids_of(*e.find("llama3")));
        std::string back;
        for (size_t i = 0; i < got.size(); i++) back += smollm.decode_piece(i ? got[i - 1] : -1, got[i]);
        CHECK(back == text);
        tokens += got.size();
    }
    CHECK(tokens > 800);
}
