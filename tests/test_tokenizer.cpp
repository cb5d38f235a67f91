// Tokenizer: byte fallback round trips, merges worked out by hand and checked against a
// slow obvious encoder, the file format, bad files, and the real Llama 2 tokenizer.
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

// A scratch file in the system's temp folder, unique to this process.
static std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

static void write_bytes(const std::string& path, const std::string& data) {
    std::ofstream(path, std::ios::binary).write(data.data(), (std::streamsize)data.size());
}

// The byte tokenizer plus extra pieces (ids 259, 260, ...).
static Tokenizer with_pieces(const std::vector<std::pair<std::string, float>>& extra) {
    Tokenizer t = Tokenizer::bytes();
    for (const auto& [piece, score] : extra) {
        t.pieces.push_back(piece);
        t.scores.push_back(score);
    }
    t.build_index();
    return t;
}

// The merge rule the slow, obvious way: rescan all pairs after every merge, take the
// highest score, the leftmost on a tie.
static std::vector<int> slow_merge(const Tokenizer& t, std::vector<int> ids) {
    std::map<std::string, int> id_of;
    for (int i = t.vocab_size() - 1; i >= 0; i--) id_of[t.pieces[i]] = i;
    for (;;) {
        int best = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < ids.size(); i++) {
            auto it = id_of.find(t.pieces[ids[i]] + t.pieces[ids[i + 1]]);
            if (it != id_of.end() && (best < 0 || t.scores[it->second] > t.scores[best])) {
                best = it->second;
                at = i;
            }
        }
        if (best < 0) return ids;
        ids[at] = best;
        ids.erase(ids.begin() + at + 1);
    }
}

// Before merging, for ASCII text: the " " prefix, then each character's piece or byte.
static std::vector<int> ascii_symbols(const Tokenizer& t, const std::string& text) {
    std::map<std::string, int> id_of;
    for (int i = t.vocab_size() - 1; i >= 0; i--) id_of[t.pieces[i]] = i;
    std::vector<int> ids;
    if (!text.empty() && id_of.count(" ")) ids.push_back(id_of[" "]);
    for (char c : text) ids.push_back(id_of.count(std::string(1, c)) ? id_of[std::string(1, c)] : (unsigned char)c + 3);
    return ids;
}

TEST_CASE("the byte tokenizer has llama2.c's layout and round-trips any bytes", "[tokenizer]") {
    Tokenizer t = Tokenizer::bytes();
    REQUIRE(t.vocab_size() == 259);
    CHECK(t.pieces[0] == "<unk>");
    CHECK(t.pieces[1] == "\n<s>\n");
    CHECK(t.pieces[2] == "\n</s>\n");
    CHECK(t.pieces[3] == "<0x00>");
    CHECK(t.pieces[3 + 0x4A] == "<0x4A>");
    CHECK(t.pieces[258] == "<0xFF>");
    const std::vector<std::string> texts = {"Once upon a time.", "naïve café, Grüße, 日本語", "emoji 🙂🚀 end",
                                            std::string("bad utf-8: \xff\xfe \xc3 \xe6\x97 \x80 end"),
                                            std::string("nul \0 byte", 10), "tabs\tand\nnewlines"};
    for (const std::string& s : texts) {
        INFO(s);
        std::vector<int> ids = t.encode(s, true, true);
        REQUIRE(ids.size() == s.size() + 2);  // no " " piece, so no dummy prefix; one id per byte
        CHECK(ids.front() == 1);
        CHECK(ids.back() == 2);
        for (size_t i = 0; i < s.size(); i++) CHECK(ids[i + 1] == (unsigned char)s[i] + 3);
        CHECK(t.decode(ids) == s);
    }
    CHECK(t.encode("", true, false) == std::vector<int>{1});
    CHECK(t.encode("", false, false).empty());
}

TEST_CASE("merges follow scores, worked out by hand", "[tokenizer]") {
    // "a"+"b" and "b"+"c" compete for the middle "b".
    // pieces: 259 " ", 260 a, 261 b, 262 c, 263 ab, 264 bc, 265 " ab"
    auto vocab = [](float ab, float bc) {
        return with_pieces({{" ", -10}, {"a", -10}, {"b", -10}, {"c", -10}, {"ab", ab}, {"bc", bc}, {" ab", -3}});
    };
    // ab wins (-5 > -6): " " a b c -> " " ab c -> " ab" c, and " ab"+"c" is no piece
    CHECK(vocab(-5, -6).encode("abc", false, false) == std::vector<int>{265, 262});
    // bc wins: " " a b c -> " " a bc, and neither " a" nor "abc" is a piece
    CHECK(vocab(-6, -5).encode("abc", true, true) == std::vector<int>{1, 259, 260, 264, 2});

    Tokenizer t = vocab(-5, -6);
    CHECK(t.decode_piece(1, 265) == "ab");  // the leading space goes after BOS
    CHECK(t.decode_piece(262, 265) == " ab");
    CHECK(t.decode_piece(0, 'Z' + 3) == "Z");
    CHECK(t.decode(t.encode("abcab xyz", true, false)) == "abcab xyz");  // dummy prefix dropped after BOS
    CHECK(t.decode(t.encode("abcab xyz", false, false)) == " abcab xyz");
}

TEST_CASE("equal scores merge the leftmost pair first", "[tokenizer]") {
    // pieces: 259 " ", 260 a, 261 aa. " " a a a: both a+a pairs score the same, the left
    // one merges, and the last "a" has nothing left to pair with.
    Tokenizer t = with_pieces({{" ", -9}, {"a", -9}, {"aa", -1}});
    CHECK(t.encode("aaa", false, false) == std::vector<int>{259, 261, 260});
    CHECK(t.encode("aaaa", false, false) == std::vector<int>{259, 261, 261});
}

TEST_CASE("characters are looked up whole, else as bytes", "[tokenizer]") {
    // pieces: 259 " ", 260 é. "日" is no piece, so its three bytes stand alone.
    Tokenizer t = with_pieces({{" ", -1}, {"é", -1}});
    const std::string ri = "日";
    REQUIRE(ri.size() == 3);
    std::vector<int> want = {259, 260};
    for (char c : ri) want.push_back((unsigned char)c + 3);
    CHECK(t.encode("é" + ri, false, false) == want);
    // a vocabulary without byte pieces cannot encode what it lacks
    Tokenizer small;
    small.pieces = {"<unk>", "<s>", "</s>", "a"};
    small.scores = {0, 0, 0, 0};
    small.build_index();
    CHECK(small.encode("aa", true, false) == std::vector<int>{1, 3, 3});
    CHECK_THROWS_WITH(small.encode("ab", false, false), Catch::Contains("byte"));
}

TEST_CASE("the fast encoder agrees with the slow obvious one", "[tokenizer]") {
    // every 2- and 3-letter string over "ab c" is a piece; few distinct scores, so ties are common
    Rng rng(2024);
    std::vector<std::pair<std::string, float>> extra = {{" ", -20}, {"a", -20}, {"b", -20}, {"c", -20}};
    const std::string abc = "ab c";
    for (char x : abc)
        for (char y : abc) {
            extra.push_back({std::string{x, y}, (float)(int)(rng.uniform() * 4)});
            for (char z : abc)
                if (rng.uniform() < 0.5f) extra.push_back({std::string{x, y, z}, (float)(int)(rng.uniform() * 4)});
        }
    Tokenizer t = with_pieces(extra);
    for (int trial = 0; trial < 300; trial++) {
        std::string s;
        int len = (int)(rng.uniform() * 40);
        for (int i = 0; i < len; i++) s += abc[(int)(rng.uniform() * 4)];
        INFO("text '" << s << "'");
        CHECK(t.encode(s, false, false) == slow_merge(t, ascii_symbols(t, s)));
        CHECK(t.decode(t.encode(s, true, false)) == s);
    }
}

TEST_CASE("save and load round-trip", "[tokenizer]") {
    const std::string path = temp_path("roundtrip.bin");
    Tokenizer t = with_pieces({{" ", -1.5f}, {"é", 2.25f}, {"", 0.0f}, {"a longer piece", -7.0f}});
    t.save(path);
    Tokenizer r = Tokenizer::load(path, t.vocab_size());
    std::remove(path.c_str());
    CHECK(r.pieces == t.pieces);
    CHECK(r.scores == t.scores);
    CHECK(r.max_token_length == 14);  // "a longer piece": save never writes a header too small
    CHECK(r.encode("é a", true, true) == t.encode("é a", true, true));
}

TEST_CASE("bad tokenizer files give a clear error", "[tokenizer]") {
    const std::string good = temp_path("good.bin"), bad = temp_path("bad.bin");
    Tokenizer::bytes().save(good);
    const std::string bytes = read_bytes(good);
    CHECK(Tokenizer::load(good, 259).pieces == Tokenizer::bytes().pieces);
    // the wrong vocabulary size: running out early, or bytes left over
    CHECK_THROWS_WITH(Tokenizer::load(good, 300), Catch::Contains("ends after 259 of 300 pieces"));
    CHECK_THROWS_WITH(Tokenizer::load(good, 258), Catch::Contains("left over after 258 pieces"));
    CHECK_THROWS_WITH(Tokenizer::load(good, 0), Catch::Contains("vocab_size"));
    // truncated inside a piece, inside a piece's header, and inside the file header
    write_bytes(bad, bytes.substr(0, bytes.size() - 3));
    CHECK_THROWS_WITH(Tokenizer::load(bad, 259), Catch::Contains("truncated inside piece 258"));
    // too short for the pieces it must hold (8 bytes each at least): refused before anything is allocated
    write_bytes(bad, bytes.substr(0, 4 + 6));
    CHECK_THROWS_WITH(Tokenizer::load(bad, 259), Catch::Contains("fewer than the 2076 that 259 pieces take"));
    write_bytes(bad, bytes.substr(0, 2));
    CHECK_THROWS_WITH(Tokenizer::load(bad, 259), Catch::Contains("fewer than the 2076"));
    CHECK_THROWS_WITH(Tokenizer::load(good, 1 << 22), Catch::Contains("pieces take at least"));
    // a foreign file: its first bytes make an absurd max_token_length, or piece length
    std::string text;
    while (text.size() < 3000) text += "not a tokenizer, just some text. ";
    write_bytes(bad, text);
    CHECK_THROWS_WITH(Tokenizer::load(bad, 259), Catch::Contains("bad max_token_length"));
    write_bytes(bad, bytes.substr(0, 4) + text);
    CHECK_THROWS_WITH(Tokenizer::load(bad, 259), Catch::Contains("piece 0 of length"));
    CHECK_THROWS_WITH(Tokenizer::load(temp_path("missing.bin"), 259), Catch::Contains("no such file"));
    CHECK_THROWS_WITH(Tokenizer::load(std::filesystem::temp_directory_path().string(), 259), Catch::Contains("is a directory"));
    std::remove(good.c_str());
    std::remove(bad.c_str());
}

TEST_CASE("token ids outside the vocabulary are rejected", "[tokenizer]") {
    Tokenizer t = Tokenizer::bytes();
    CHECK_THROWS_WITH(t.decode_piece(0, 259), Catch::Contains("outside"));
    CHECK_THROWS_WITH(t.decode_piece(0, -1), Catch::Contains("outside"));
    CHECK_THROWS_WITH(t.decode({1, 70, 9999}), Catch::Contains("9999"));
}

TEST_CASE("the Llama 2 tokenizer encodes known ids", "[tokenizer]") {
    const std::string path = "../shared/data/llama2-tokenizer.bin";
    if (!std::ifstream(path)) {
        WARN("SKIPPED: " << path << " is absent, so Llama 2's known token ids are not checked");
        return;
    }
    Tokenizer t = Tokenizer::load(path, 32000);
    std::vector<int> ids = t.encode("I believe the meaning of life is", true, false);
    CHECK(ids == std::vector<int>{1, 306, 4658, 278, 6593, 310, 2834, 338});
    CHECK(t.decode(ids) == "I believe the meaning of life is");
    const std::string hard = "Café 🙂 naïve\ttab, 日本語 \xff";
    CHECK(t.decode(t.encode(hard, true, false)) == hard);
    const std::string story = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
    CHECK(t.encode(story, false, false) == slow_merge(t, ascii_symbols(t, story)));
    CHECK_THROWS_WITH(Tokenizer::load(path, 32001), Catch::Contains("ends after 32000 of 32001"));
}
