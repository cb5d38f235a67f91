// The BPE trainer: fixed first pieces, merge order, the tokenizer.bin bytes,
// and that a sentencepiece-style encoder replays the merges.
#include <catch2/catch.hpp>
#include "tests/helpers.h"
#include "src/text/bpe.h"
#include "src/text/stories.h"
#include "src/text/tokenizer.h"
#include "src/util.h"
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <map>
#include <set>

namespace {

// Reads tokenizer.bin back by hand, independent of the engine's loader.
BpeVocab read_tokenizer_bin(const std::string& path, int n, int32_t& max_len) {
    std::string bytes = read_text_file(path);
    size_t at = 0;
    auto take = [&](void* dst, size_t len) {
        REQUIRE(at + len <= bytes.size());
        std::memcpy(dst, bytes.data() + at, len);
        at += len;
    };
    take(&max_len, 4);
    BpeVocab v;
    for (int i = 0; i < n; i++) {
        float score;
        int32_t len;
        take(&score, 4);
        take(&len, 4);
        REQUIRE(len >= 0);
        std::string piece(len, '\0');
        take(&piece[0], len);
        v.pieces.push_back(piece);
        v.scores.push_back(score);
    }
    CHECK(at == bytes.size());
    return v;
}


}  // namespace

TEST_CASE("bpe: fixed first 259 pieces, every character, decreasing merge scores", "[bpe]") {
    std::string text = "the cat sat on the mat.\nthe dog sat on the log!\n";
    const int n = 288;   // 13 merges past the characters; this text allows 17
    BpeVocab v = train_bpe(text, n);
    REQUIRE(v.pieces.size() == (size_t)n);
    REQUIRE(v.scores.size() == (size_t)n);
    CHECK(v.pieces[0] == "<unk>");
    CHECK(v.pieces[1] == "\n<s>\n");
    CHECK(v.pieces[2] == "\n</s>\n");
    CHECK(v.pieces[3] == "<0x00>");
    CHECK(v.pieces[3 + 0x41] == "<0x41>");
    CHECK(v.pieces[258] == "<0xFF>");
    // distinct characters: " ", "\n", "!", ".", and the letters of the words
    std::string chars = " \n!.acdeghlmnost";
    for (char c : chars) CHECK(std::count(v.pieces.begin(), v.pieces.end(), std::string(1, c)) == 1);
    int first_merge = 259 + (int)chars.size();
    CHECK(v.pieces[first_merge - 1].size() == 1);
    for (int i = first_merge + 1; i < n; i++) CHECK(v.scores[i] < v.scores[i - 1]);
    for (int i = first_merge; i < n; i++) CHECK(v.scores[i] > v.scores[first_merge - 1]);
    std::set<std::string> unique(v.pieces.begin(), v.pieces.end());
    CHECK(unique.size() == v.pieces.size());
    // words keep their leading space: " the" is learned, no piece has an inner space
    CHECK(std::count(v.pieces.begin(), v.pieces.end(), std::string(" the")) == 1);
    for (int i = first_merge; i < n; i++) CHECK(v.pieces[i].find(' ', 1) == std::string::npos);
}

TEST_CASE("bpe: the most frequent pair merges first", "[bpe]") {
    // " aaab" x3 and " xy": (a, a) occurs 6 times, every other pair at most 3
    int first_merge = 259 + 5;   // characters " ", a, b, x, y
    BpeVocab v = train_bpe("aaab aaab aaab xy", first_merge + 1);
    REQUIRE(v.pieces.size() == (size_t)first_merge + 1);
    CHECK(v.pieces[first_merge - 1] == "y");
    CHECK(v.pieces[first_merge] == "aa");
    // then a three-way tie at 3: the smallest strings win, (" ", "aa")
    BpeVocab w = train_bpe("aaab aaab aaab xy", first_merge + 2);
    CHECK(w.pieces[first_merge + 1] == " aa");
}

TEST_CASE("bpe: bad vocab sizes fail clearly", "[bpe]") {
    CHECK_THROWS_WITH(train_bpe("abc", 261), Catch::Contains("too small"));
    CHECK_THROWS_WITH(train_bpe("ab", 300), Catch::Contains("ran out of pairs"));
}

TEST_CASE("bpe: training is deterministic", "[bpe]") {
    std::string text;
    for (const std::string& s : generate_stories(5, 100)) text += s;
    BpeVocab a = train_bpe(text, 400), b = train_bpe(text, 400);
    CHECK(a.pieces == b.pieces);
    CHECK(a.scores == b.scores);
}

TEST_CASE("bpe: tokenizer.bin round-trips byte for byte", "[bpe]") {
    std::string text;
    for (const std::string& s : generate_stories(9, 50)) text += s;
    BpeVocab v = train_bpe(text, 350);
    std::string path = temp_path("kvshare_test_bpe_roundtrip.bin");
    save_tokenizer_bin(path, v);
    int32_t max_len = 0;
    BpeVocab back = read_tokenizer_bin(path, (int)v.pieces.size(), max_len);
    std::remove(path.c_str());
    CHECK(back.pieces == v.pieces);
    CHECK(back.scores == v.scores);
    size_t longest = 0;
    for (const std::string& p : v.pieces) longest = std::max(longest, p.size());
    CHECK(max_len == (int32_t)longest);
    BpeVocab bad;
    bad.pieces = {"a"};
    CHECK_THROWS_AS(save_tokenizer_bin(path, bad), std::runtime_error);
}

TEST_CASE("bpe: the engine's tokenizer replays the merges, compresses and round-trips", "[bpe]") {
    std::string text;
    for (const std::string& s : generate_stories(21, 2000)) text += s;
    BpeVocab v = train_bpe(text, 600);
    const std::string path = temp_path("kvshare_test_bpe_engine.bin");
    save_tokenizer_bin(path, v);
    Tokenizer tok = Tokenizer::load(path, 600);
    std::remove(path.c_str());
    std::string sentence = generate_stories(21, 1)[0];
    sentence.pop_back();   // without the newline
    std::vector<int> toks = tok.encode(sentence, true, false);
    CHECK(toks.size() * 3 < sentence.size());
    CHECK(tok.decode(toks) == sentence);
    // text with characters the training never saw falls back to bytes
    std::string odd = "Lily saw a caf\xC3\xA9 {}";
    CHECK(tok.decode(tok.encode(odd, true, false)) == odd);
}
