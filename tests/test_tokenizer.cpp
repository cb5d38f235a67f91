// Tokenizer: byte fallback round trips, merges by score worked out by hand, the file
// format, bad files, and the real Llama 2 tokenizer's known ids when it is present.
#include <catch2/catch.hpp>
#include "src/tokenizer.h"
#include <cstdio>
#include <fstream>

TEST_CASE("the byte tokenizer round-trips any bytes", "[tokenizer]") {
    Tokenizer t = Tokenizer::bytes();
    REQUIRE(t.vocab_size() == 259);
    for (std::string s : {std::string("Once upon a time."), std::string("naïve café, 日本語, 🙂"),
                          std::string("bad utf-8: \xff\xfe \xc3 end"), std::string("tabs\tand\nnewlines")}) {
        INFO(s);
        std::vector<int> ids = t.encode(s, true, true);
        CHECK(ids.front() == 1);
        CHECK(ids.back() == 2);
        CHECK(ids.size() == s.size() + 2);  // no " " piece, so no dummy prefix; one id per byte
        CHECK(t.decode(ids) == s);
    }
    CHECK(t.encode("A", false, false) == std::vector<int>{'A' + 3});
}

// A vocabulary where "a"+"b" and "b"+"c" compete for the middle "b".
static Tokenizer hand_vocab(float ab, float bc) {
    Tokenizer t = Tokenizer::bytes();
    for (auto [piece, score] : std::vector<std::pair<std::string, float>>{{" ", -10}, {"a", -10}, {"b", -10}, {"c", -10},
                                                                         {"ab", ab}, {"bc", bc}, {" ab", -3}}) {
        t.pieces.push_back(piece);
        t.scores.push_back(score);
    }
    t.max_token_length = 7;
    const std::string path = "build/test_hand_tok.bin";
    t.save(path);
    Tokenizer r = Tokenizer::load(path, t.vocab_size());
    std::remove(path.c_str());
    return r;
}

TEST_CASE("merges follow scores, worked out by hand", "[tokenizer]") {
    // pieces: 259 " ", 260 a, 261 b, 262 c, 263 ab, 264 bc, 265 " ab"
    // ab wins (-5 > -6): " " a b c -> " " ab c -> " ab" c  (" ab"+"c" is no piece)
    CHECK(hand_vocab(-5, -6).encode("abc", false, false) == std::vector<int>{265, 262});
    // bc wins: " " a b c -> " " a bc, and neither " a" nor "abc" is a piece
    CHECK(hand_vocab(-6, -5).encode("abc", false, false) == std::vector<int>{259, 260, 264});
    Tokenizer t = hand_vocab(-5, -6);
    CHECK(t.decode_piece(1, 265) == "ab");   // the leading space goes after BOS
    CHECK(t.decode_piece(262, 265) == " ab");
    CHECK(t.decode_piece(0, 'Z' + 3) == "Z");
    CHECK(t.decode(t.encode("abcab xyz", true, false)) == "abcab xyz");   // dummy prefix dropped after BOS
    CHECK(t.decode(t.encode("abcab xyz", false, false)) == " abcab xyz");
    CHECK_THROWS_WITH(t.decode_piece(0, 9999), Catch::Contains("outside"));
}

TEST_CASE("bad tokenizer files give a clear error", "[tokenizer]") {
    Tokenizer t = Tokenizer::bytes();
    t.save("build/test_tok.bin");
    CHECK(Tokenizer::load("build/test_tok.bin", 259).pieces == t.pieces);
    CHECK_THROWS_WITH(Tokenizer::load("build/test_tok.bin", 300), Catch::Contains("ends after 259"));
    CHECK_THROWS_WITH(Tokenizer::load("build/test_tok.bin", 200), Catch::Contains("more than 200"));
    std::ofstream("build/test_tok_bad.bin") << "not a tokenizer";
    CHECK_THROWS(Tokenizer::load("build/test_tok_bad.bin", 259));
    CHECK_THROWS_WITH(Tokenizer::load("build/nope.bin", 259), Catch::Contains("cannot open"));
    std::remove("build/test_tok.bin");
    std::remove("build/test_tok_bad.bin");
}

TEST_CASE("the Llama 2 tokenizer encodes known ids", "[tokenizer]") {
    const std::string path = "../shared/data/llama2-tokenizer.bin";
    if (!std::ifstream(path)) {
        WARN("SKIPPED: " << path << " is absent");
        return;
    }
    Tokenizer t = Tokenizer::load(path, 32000);
    std::vector<int> ids = t.encode("I believe the meaning of life is", true, false);
    CHECK(ids == std::vector<int>{1, 306, 4658, 278, 6593, 310, 2834, 338});
    CHECK(t.decode(ids) == "I believe the meaning of life is");
    const std::string hard = "Café 🙂 naïve\ttab";
    CHECK(t.decode(t.encode(hard, true, false)) == hard);
}
