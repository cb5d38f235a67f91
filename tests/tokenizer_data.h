// Tokenizers for the tests: a small byte-level one made here, whose every merge and rule is
// worked out by hand, and SmolLM2's real one, committed as tests/data/tokenizer/ (made by
// make_reference.py there from the model's GGUF, with the corpus of expected ids).
#pragma once
#include "src/formats/json.h"
#include "src/text/byte_bpe.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include "src/util.h"
#include <string>
#include <vector>

namespace tokenizer_test {

const std::string kDataDir = "tests/data/tokenizer/";
const std::string kSmolLM2 = kDataDir + "smollm2-tokenizer.json";

// The byte-level text of a token: "he" -> "he", " w" -> "Ġw".
inline std::string mapped(const std::string& bytes) { return bytes_to_token_text(bytes); }

// 0..2 control tokens <|endoftext|> <|im_start|> <|im_end|>; 3..258 the bytes in order (byte b
// at b + 3); then the merged tokens in merge order, then "xyz" (no merge makes it) and the
// user-defined "<t>" and "<t>>".
//   rank 0 "b c"   1 "a b"   2 "a a"   3 "h e"   4 "l l"   5 "he ll"   6 "hell o"   7 "Ġ w"
inline TokenizerSpec small_spec(const std::string& pre = "gpt2") {
    TokenizerSpec s;
    s.model = "gpt2";
    s.pre = pre;
    s.source = "small";
    s.tokens = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    s.token_types = {3, 3, 3};
    for (int b = 0; b < 256; b++) {
        s.tokens.push_back(mapped(std::string(1, (char)b)));
        s.token_types.push_back(1);
    }
    const char* merges[][2] = {{"b", "c"}, {"a", "b"}, {"a", "a"}, {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}};
    for (auto& m : merges) {
        s.merges.push_back(mapped(m[0]) + " " + mapped(m[1]));
        s.tokens.push_back(mapped(std::string(m[0]) + m[1]));
        s.token_types.push_back(1);
    }
    for (const char* t : {"xyz", "<t>", "<t>>"}) {
        s.tokens.push_back(t);
        s.token_types.push_back(std::string(t) == "xyz" ? 1 : 4);
    }
    s.bos_id = 1;
    s.eos_id = 2;
    return s;
}

// The id of a token of small_spec() by its bytes.
inline int small_id(const std::string& bytes) {
    const TokenizerSpec s = small_spec();
    for (size_t i = 0; i < s.tokens.size(); i++)
        if (s.tokens[i] == (s.token_types[i] == 1 ? mapped(bytes) : bytes)) return (int)i;
    fail("small_spec has no token '" + bytes + "'");
}

inline Json read_json(const std::string& path) { return parse_json(read_text_file(path), "'" + path + "'"); }

inline std::vector<int> ids_of(const Json& list) {
    std::vector<int> ids;
    for (const Json& v : list.items) ids.push_back((int)v.as_int("ids"));
    return ids;
}

}  // namespace tokenizer_test
