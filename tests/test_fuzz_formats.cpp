// Fuzzing the model readers (the project's format, llama2.c's .bin, a Hugging Face folder's
// config.json, model.safetensors and shard index, a GGUF file) and SentencePiece's tokenizer.model: every
// truncation of a small valid file, and a set of corrupted headers (hostile values in every
// header field, seeded bit flips). Each must give a clean error (a std::runtime_error naming
// the file; never a crash, a hang, another exception or an absurd allocation) or, where the
// damage leaves a valid file, load a model no larger than the file. Then llama2.c's
// tokenizer.bin, plan files and plan specs: every truncation, hostile header fields and
// seeded random byte flips, each loading a consistent tokenizer or plan or failing with a
// clean error; and Hugging Face's tokenizer.json (truncations, flips, hostile ids, merges
// that name missing tokens, huge lists). Seconds, not minutes: the files are a few KB. tests/cli_errors.sh checks the
// same through the command line; under `make test-asan` the same inputs also check that every
// byte read stays in bounds.
#include <catch2/catch.hpp>
#include "src/formats/checkpoint.h"
#include "src/formats/json.h"
#include "src/model/plan.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include "src/util.h"
#include "tests/helpers.h"
#include "tests/gguf_files.h"
#include "tests/hf_files.h"
#include "tests/tokenizer_data.h"
#include <cfloat>
#include <fstream>
#include <climits>
#include <cstring>
#include <filesystem>
#include <sys/resource.h>
#include <unistd.h>

using namespace hf_test;
namespace fs = std::filesystem;

namespace {

// A model small enough that every truncation is cheap: 2 layers, dim 8, grouped-query heads.
Model fuzz_model(bool tied) {
    Config c;
    c.dim = 8; c.hidden_dim = 12; c.n_layers = 2; c.n_heads = 2; c.n_kv_heads = 1;
    c.vocab_size = 16; c.max_seq_len = 8; c.shared_classifier = tied;
    Model m = init_model(c, parse_plan("standard", 2), 3);
    for (auto* t : m.weights.tensors())  // on BF16's grid, so every dtype holds the weights exactly
        for (float& x : *t) x = std::ldexp(std::round(std::ldexp(x, 8)), -8);
    return m;
}

struct Outcome {
    size_t loaded = 0, refused = 0;
};

// Loads path: a clean error naming `name`, or a model whose floats fit in `bound_bytes`.
void load_once(const std::string& path, const std::string& name, size_t bound_bytes, Outcome& o) {
    try {
        Model m = load_model(path);
        o.loaded++;
        if (m.n_params() * sizeof(float) > bound_bytes) FAIL(path << " loaded " << m.n_params() << " floats from " << bound_bytes << " bytes");
    } catch (const std::runtime_error& e) {
        o.refused++;
        if (std::string(e.what()).find(name) == std::string::npos) FAIL("an error that does not name " << name << ": " << e.what());
    }
    // anything else (std::bad_alloc, std::length_error, a crash) fails the test case
}

// Every proper prefix of the file at path, shortest last (truncate in place: no copies).
Outcome every_truncation(const std::string& path, const std::string& name, size_t bound_bytes, bool whitespace_may_go = false) {
    const std::string full = read_bytes(path);
    Outcome o;
    for (size_t len = full.size(); len-- > 0;) {
        REQUIRE(truncate(path.c_str(), (off_t)len) == 0);
        const size_t before = o.loaded;
        load_once(path, name, bound_bytes, o);
        const bool only_space = full.find_first_not_of(" \t\r\n", len) == std::string::npos;
        if (o.loaded > before && !(whitespace_may_go && only_space)) FAIL(path << " cut to " << len << " of " << full.size() << " bytes loaded");
    }
    write_bytes(path, full);
    return o;
}

// Writes bytes over the file at offset, in place: no truncation, so no blocks are freed and
// written again (slow on a disk mounted with discard).
void overwrite(const std::string& path, size_t offset, const std::string& bytes) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp((std::streamoff)offset);
    f.write(bytes.data(), (std::streamsize)bytes.size());
    REQUIRE(f.good());
}

// The file with `bytes` written over offset, loaded, then restored from full.
void with_patch(const std::string& path, const std::string& full, size_t offset, const std::string& bytes, const std::string& name,
                size_t bound, Outcome& o) {
    overwrite(path, offset, bytes);
    load_once(path, name, bound, o);
    overwrite(path, offset, full.substr(offset, bytes.size()));
}

std::string int32_bytes(int32_t v) { return std::string((const char*)&v, 4); }
std::string float_bytes(float v) { return std::string((const char*)&v, 4); }

const std::vector<int32_t> kHostileInts = {0, -1, 1, 2, 3, INT_MIN, INT_MAX, INT_MIN + 1, 65535, 65536, 65537, 1 << 20, 1 << 22,
                                           (1 << 22) + 1, 1023, 1024, 1025, 8192, 28672, 80, 32000, -32000};
const std::vector<float> kHostileFloats = {0.0f, -0.0f, -1.0f, 1.0f, INFINITY, -INFINITY, NAN, FLT_MIN, FLT_MAX, 1e-45f, 10000.0f, 0.5f};

// Seeded flips of single bits in [0, span) of the file; each flipped file is loaded.
void bit_flips(const std::string& path, const std::string& full, size_t span, int flips, uint64_t seed, const std::string& name,
               size_t bound, Outcome& o) {
    Rng rng(seed);
    for (int i = 0; i < flips; i++) {
        const size_t at = rng.next_u32() % span;
        with_patch(path, full, at, std::string(1, (char)(full[at] ^ (1 << (rng.next_u32() % 8)))), name, bound, o);
    }
}

}  // namespace

TEST_CASE("fuzz: the project's format and llama2.c's .bin, truncated and with hostile headers", "[fuzz]") {
    for (bool tied : {true, false}) {
        const Model m = fuzz_model(tied);
        for (bool llama2c : {false, true}) {
            INFO((llama2c ? "llama2.c" : "kvshare") << " format, tied " << tied);
            const std::string name = llama2c ? "fuzz.bin" : "fuzz.kvs";
            const std::string path = temp_path(name);
            if (llama2c) save_llama2c(path, m);
            else save_model(path, m);
            const std::string full = read_bytes(path);
            const size_t bound = full.size();
            Outcome o = every_truncation(path, name, bound);
            CHECK(o.loaded == 0);
            CHECK(o.refused == full.size());
            // every header field set to every hostile value
            const size_t header_ints = llama2c ? 7 : 10;  // kvshare: magic, version, 8 config ints (then floats, flags)
            Outcome h;
            for (size_t f = llama2c ? 0 : 1; f < header_ints; f++)
                for (int32_t v : kHostileInts) with_patch(path, full, 4 * f, int32_bytes(v), name, bound, h);
            if (!llama2c) {
                for (size_t at : {40, 44})  // rope_theta, norm_eps
                    for (float v : kHostileFloats) with_patch(path, full, at, float_bytes(v), name, bound, h);
                for (int32_t v : kHostileInts) with_patch(path, full, 48, int32_bytes(v), name, bound, h);  // flags
                for (int32_t v : kHostileInts) with_patch(path, full, 52, int32_bytes(v), name, bound, h);  // source[0]
            }
            bit_flips(path, full, llama2c ? 28 : 60, 400, 7, name, bound, h);
            CHECK(h.refused > 0);
            std::remove(path.c_str());
        }
    }
}

TEST_CASE("fuzz: header values that would load a wrong model are refused, not accepted", "[fuzz]") {
    const Model m = fuzz_model(true);
    const std::string kvs = temp_path("hostile.kvs"), bin = temp_path("hostile.bin");
    save_model(kvs, m);
    save_llama2c(bin, m);
    const std::string kvs_full = read_bytes(kvs), bin_full = read_bytes(bin);
    auto refused = [&](const std::string& path, const std::string& full, size_t at, const std::string& bytes, const std::string& why) {
        INFO("bytes at " << at << ", expecting: " << why);
        overwrite(path, at, bytes);
        CHECK_THROWS_WITH(load_model(path), Catch::Contains(why));
        overwrite(path, at, full.substr(at, bytes.size()));
    };
    refused(kvs, kvs_full, 48, int32_bytes(-1), "flags word -1 sets unknown bits");  // before: diag=all, silently
    refused(kvs, kvs_full, 48, int32_bytes(4), "unknown bits");
    refused(kvs, kvs_full, 40, float_bytes(INFINITY), "rope_theta inf");
    refused(kvs, kvs_full, 40, float_bytes(NAN), "rope_theta");
    refused(kvs, kvs_full, 40, float_bytes(-1.0f), "rope_theta");
    refused(kvs, kvs_full, 44, float_bytes(INFINITY), "norm_eps");
    refused(kvs, kvs_full, 44, float_bytes(NAN), "norm_eps");
    refused(kvs, kvs_full, 36, int32_bytes(2), "tied-classifier field is 2");
    refused(kvs, kvs_full, 52, int32_bytes(5), "layer 0 reads layer 5");
    refused(bin, bin_full, 20, int32_bytes(INT_MIN), "vocab_size");  // before: -INT_MIN, undefined behaviour
    refused(bin, bin_full, 20, int32_bytes(0), "vocab_size 0");
    refused(bin, bin_full, 0, int32_bytes(-8), "dim -8");
    CHECK_NOTHROW(load_model(kvs));
    CHECK_NOTHROW(load_model(bin));
    std::remove(kvs.c_str());
    std::remove(bin.c_str());
}

TEST_CASE("fuzz: a header that describes a far larger model fails before taking memory", "[fuzz]") {
    // A 1 KB file whose header says 2 GB of weights (before: allocated and zero filled, then
    // "truncated"). The check must come first: peak memory may not grow by anything like 2 GB.
    const std::string path = temp_path("huge_header.bin");
    std::string bytes = int32_bytes(8192) + int32_bytes(28672) + int32_bytes(2) + int32_bytes(64) + int32_bytes(8) +
                        int32_bytes(32000) + int32_bytes(4096);
    bytes.resize(1024, '\0');
    write_bytes(path, bytes);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    CHECK_THROWS_WITH(load_model(path), Catch::Contains("has 1024 bytes, but a llama2.c checkpoint with its header needs"));
    // the project's format: magic, version, 8 ints of config, theta, eps, flags, source map
    bytes = "KVSH" + int32_bytes(1) + int32_bytes(8192) + int32_bytes(28672) + int32_bytes(2) + int32_bytes(64) + int32_bytes(8) +
            int32_bytes(32000) + int32_bytes(4096) + int32_bytes(1) + float_bytes(10000.0f) + float_bytes(1e-5f) + int32_bytes(0) +
            int32_bytes(0) + int32_bytes(1);
    bytes.resize(1024, '\0');
    write_bytes(path, bytes);
    CHECK_THROWS_WITH(load_model(path), Catch::Contains("header implies"));
    getrusage(RUSAGE_SELF, &after);
    CHECK(after.ru_maxrss - before.ru_maxrss < 200 * 1024);  // KB: far below the 2 GB the header asks for
    std::remove(path.c_str());
}

TEST_CASE("fuzz: a Hugging Face folder's config.json, safetensors and shard index", "[fuzz]") {
    const Model m = fuzz_model(false);
    const std::string dir = fresh_dir("fuzz_hf");
    const std::string name = fs::path(dir).filename().string();
    const std::string config = config_json(m.config);
    write_folder(dir, m, "BF16", config);
    const std::string st_path = dir + "/model.safetensors", config_path = dir + "/config.json";
    const size_t bound = 2 * read_bytes(st_path).size() + 4096;  // BF16 doubles to fp32
    REQUIRE_NOTHROW(load_model(dir));

    SECTION("every truncation") {
        Outcome c = every_truncation(config_path, name, bound, true);
        CHECK(c.loaded <= 1);  // only the trailing newline may go
        Outcome s = every_truncation(st_path, name, bound);
        CHECK(s.loaded == 0);
    }
    SECTION("hostile values in every config field") {
        const std::vector<std::string> values = {"0", "-1", "1", "2147483647", "2147483648", "-2147483648", "4294967296",
                                                 "1e308", "1e-320", "1.5", "-0", "\"8\"", "null", "true", "[]", "{}", "1e999"};
        const Json json = parse_json(config, "config");
        Outcome o;
        for (const auto& member : json.members) {
            for (const std::string& v : values) {
                Json changed = json;
                changed.set(member.first, parse_json(v == "1e999" ? "1" : v, "v"));
                std::string text = to_json(changed);
                if (v == "1e999") {  // a number no double holds: the reader must refuse it
                    const size_t at = text.find("\"" + member.first + "\": ") + member.first.size() + 4;
                    text.replace(at, text.find_first_of(",\n", at) - at, "1e999");
                }
                write_bytes(config_path, text);
                load_once(dir, name, bound, o);
            }
        }
        write_bytes(config_path, config);
        CHECK(o.refused > 0);
    }
    SECTION("hostile values and bit flips in the safetensors header") {
        const std::string full = read_bytes(st_path);
        uint64_t header_len;
        std::memcpy(&header_len, full.data(), 8);
        Outcome o;
        // the header length itself
        for (uint64_t v : {(uint64_t)0, (uint64_t)1, header_len - 1, header_len + 1, (uint64_t)full.size(), (uint64_t)full.size() - 7,
                           ~(uint64_t)0, (uint64_t)1 << 63, (uint64_t)100 << 20})
            with_patch(st_path, full, 0, std::string((const char*)&v, 8), name, bound, o);
        // every digit of the header's numbers (shapes and offsets) set to each other digit
        for (size_t at = 8; at < 8 + header_len; at++)
            if (std::isdigit((unsigned char)full[at]))
                for (char d : {'0', '1', '9'})
                    if (d != full[at]) with_patch(st_path, full, at, std::string(1, d), name, bound, o);
        bit_flips(st_path, full, 8 + (size_t)header_len, 1500, 11, name, bound, o);
        write_bytes(st_path, full);
        CHECK(o.refused > 0);
    }
    SECTION("a damaged shard index") {
        fs::remove(st_path);
        write_folder(dir, m, "F32", config, 2);
        const std::string index_path = dir + "/model.safetensors.index.json";
        REQUIRE_NOTHROW(load_model(dir));
        Outcome t = every_truncation(index_path, name, bound, true);
        CHECK(t.loaded <= 1);
        const std::string full = read_bytes(index_path);
        Outcome o;
        bit_flips(index_path, full, full.size(), 600, 13, name, bound, o);
        CHECK(o.refused > 0);
    }
    fs::remove_all(dir);
}

TEST_CASE("fuzz: a GGUF file, truncated, with hostile values in every header field, and bit-flipped", "[fuzz]") {
    // SmolLM2's mix in miniature: Q8_0 embedding, Q4_1 matrices, F32 norms, a tokenizer
    const gguf_test::GgufBytes g = gguf_test::SmallGguf().bytes();
    const std::string path = temp_path("fuzz.gguf"), name = "fuzz.gguf";
    write_bytes(path, g.bytes);
    const size_t bound = 8 * g.bytes.size();  // fp32 of 4-bit blocks: 6.4 times their bytes
    REQUIRE_NOTHROW(load_model(path));
    SECTION("every truncation") {
        Outcome o = every_truncation(path, name, bound);
        CHECK(o.loaded == 0);
        CHECK(o.refused == g.bytes.size());
    }
    SECTION("hostile values in every count, length, type, dimension and offset") {
        const uint64_t size = g.bytes.size();
        const std::vector<uint64_t> hostile64 = {0, 1, 2, 7, 8, 31, 32, 33, 64, 255, 256, 1ull << 31, 1ull << 32, (1ull << 32) + 1,
                                                 size - 1, size, size + 1, 1ull << 62, 1ull << 63, ~0ull, ~0ull - 31};
        const std::vector<uint32_t> hostile32 = {0, 1, 2, 3, 5, 6, 8, 9, 12, 13, 14, 15, 16, 30, 31, 99, 1u << 31, ~0u, 0x03000000};
        Outcome o;
        for (const gguf_test::Field& f : g.fields) {
            if (f.bytes == 8)
                for (uint64_t v : hostile64) with_patch(path, g.bytes, f.offset, gguf_test::pod(v), name, bound, o);
            else
                for (uint32_t v : hostile32) with_patch(path, g.bytes, f.offset, gguf_test::pod(v), name, bound, o);
        }
        CHECK(o.refused > 0);
        CHECK(o.loaded > 0);  // some values are harmless (a different but valid type, an equal offset)
    }
    SECTION("seeded bit flips in the header, metadata and tensor table") {
        Outcome o;
        const size_t header = g.fields.back().offset + g.fields.back().bytes;
        bit_flips(path, g.bytes, header, 3000, 23, name, bound, o);
        CHECK(o.refused > 0);
    }
    std::remove(path.c_str());
}

TEST_CASE("fuzz: a GGUF header that claims far more than its file fails before taking memory", "[fuzz]") {
    using namespace gguf_test;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    SmallGguf s;
    const GgufBytes g = s.bytes();
    const std::string path = temp_path("huge.gguf");
    auto refused = [&](const std::string& field, const std::string& value, const std::string& why) {
        std::string b = g.bytes;
        for (const Field& f : g.fields)
            if (f.what == field) b.replace(f.offset, f.bytes, value);
        write_bytes(path, b);
        INFO(field << ": expecting " << why);
        CHECK_THROWS_WITH(load_model(path), Catch::Contains(why));
    };
    refused("tokenizer.ggml.tokens element count", pod<uint64_t>(1ull << 40), "claims 1099511627776 elements");
    refused("tokenizer.ggml.merges element count", pod<uint64_t>(1ull << 28), "claims 268435456 elements");
    refused("tensor count", pod<uint64_t>(1ull << 33), "claims 8589934592 tensors");
    refused("metadata count", pod<uint64_t>(1ull << 33), "claims 8589934592 metadata entries");
    refused("general.name string length", pod<uint64_t>(1ull << 35), "claims a string of 34359738368 bytes");
    // an embedding of 2^24 rows (2 GB as fp32), and of 2^12 (whose blocks would need 139 KB)
    for (auto [rows, why] : {std::pair<uint64_t, const char*>{1ull << 24, "which no tensor in a file of"}, {1ull << 12, "more than the file's"}}) {
        std::string b = g.bytes;
        int seen = 0;
        for (const Field& f : g.fields)
            if (f.what == "token_embd.weight dimension" && seen++ == 1) b.replace(f.offset, 8, pod<uint64_t>(rows));  // ne[1]
        write_bytes(path, b);
        CHECK_THROWS_WITH(load_model(path), Catch::Contains(why));
    }
    getrusage(RUSAGE_SELF, &after);
    CHECK(after.ru_maxrss - before.ru_maxrss < 200 * 1024);  // KB
    std::remove(path.c_str());
}

TEST_CASE("fuzz: SentencePiece's tokenizer.model, truncated and bit-flipped", "[fuzz]") {
    Tokenizer t = Tokenizer::bytes();
    for (const char* piece : {" the", " a", "an", " and", "ing"}) {
        t.pieces.push_back(piece);
        t.scores.push_back(-1.0f);
    }
    t.build_index();
    const std::string full = sentencepiece_model_bytes(t);
    size_t refused = 0;
    auto parse_once = [&](const std::string& bytes, const std::string& what) -> bool {
        try {
            const Tokenizer r = parse_sentencepiece(bytes, what);
            CHECK(r.vocab_size() >= 259);
            r.encode("the fuzzed tokenizer \xE6\x97\xA5 encodes", true, true);  // and does not crash
            return true;
        } catch (const std::runtime_error& e) {
            refused++;
            if (std::string(e.what()).find(what) == std::string::npos) FAIL("an error that does not name " << what << ": " << e.what());
            return false;
        }
    };
    for (size_t len = 0; len < full.size(); len++)
        if (parse_once(full.substr(0, len), "cut.model")) FAIL("tokenizer.model cut to " << len << " bytes parsed");
    CHECK(refused == full.size());
    Rng rng(17);
    for (int i = 0; i < 3000; i++) {
        std::string damaged = full;
        const size_t at = rng.next_u32() % damaged.size();
        damaged[at] = (char)(damaged[at] ^ (1 << (rng.next_u32() % 8)));
        parse_once(damaged, "flipped.model");
    }
    // through the file reader too, which tells the formats apart by their first bytes
    const std::string path = temp_path("fuzz.model");
    for (size_t len : {(size_t)0, (size_t)1, (size_t)2, (size_t)3, (size_t)7, full.size() / 2}) {
        write_bytes(path, full.substr(0, len));
        CHECK_THROWS_AS(load_tokenizer_file(path, (int)t.pieces.size()), std::runtime_error);
    }
    std::remove(path.c_str());
}

// ---- llama2.c tokenizer.bin, plan files and plan specs ----------------------------------

namespace {

// What happened when `load` ran: "ok", or the runtime_error's message. Any other exception
// propagates and fails the test case with its type.
template <typename F>
std::string outcome(F load) {
    try {
        load();
        return "ok";
    } catch (const std::runtime_error& e) {
        return e.what();
    }
}

// The byte tokenizer plus a few merges, so pieces of several lengths and scores.
Tokenizer small_tokenizer() {
    Tokenizer t = Tokenizer::bytes();
    for (const char* p : {" ", "e", " t", "he", " the", "ing", "a longer piece"}) {
        t.pieces.push_back(p);
        t.scores.push_back(-(float)t.pieces.size());
    }
    t.build_index();
    return t;
}

// A loaded tokenizer is consistent: the sizes it promised, and it encodes and decodes text.
void check_loaded(const Tokenizer& t, int vocab) {
    REQUIRE(t.vocab_size() == vocab);
    REQUIRE(t.scores.size() == t.pieces.size());
    for (const std::string& p : t.pieces) REQUIRE((int)p.size() <= t.max_token_length);
    const std::string text = outcome([&] { t.decode(t.encode("the thing", true, true)); });
    REQUIRE((text == "ok" || text.find("tokenizer") != std::string::npos || text.find("token id") != std::string::npos));
}

}  // namespace

TEST_CASE("fuzz: every truncation of a tokenizer.bin is a clean error", "[fuzz]") {
    const std::string path = temp_path("fuzz.tok");
    const Tokenizer good = small_tokenizer();
    good.save(path);
    const std::string bytes = read_bytes(path);
    const int vocab = good.vocab_size();
    REQUIRE(outcome([&] { check_loaded(Tokenizer::load(path, vocab), vocab); }) == "ok");
    for (size_t keep = 0; keep < bytes.size(); keep++) {
        write_bytes(path, bytes.substr(0, keep));
        const std::string what = outcome([&] { Tokenizer::load(path, vocab); });
        INFO("truncated to " << keep << " of " << bytes.size() << " bytes: " << what);
        REQUIRE(what != "ok");
        REQUIRE(what.find(path) != std::string::npos);
    }
    std::remove(path.c_str());
}

TEST_CASE("fuzz: hostile tokenizer headers, lengths and vocabulary sizes", "[fuzz]") {
    const std::string path = temp_path("fuzz_fields.tok");
    const Tokenizer good = small_tokenizer();
    good.save(path);
    const std::string bytes = read_bytes(path);
    const int vocab = good.vocab_size();
    const int32_t hostile[] = {0, -1, 1, 5, 255, 65536, 0x7f7f7f7f, INT32_MAX, INT32_MIN, (int32_t)bytes.size()};
    // the header, then each field of the first pieces (score, length), then fields inside later pieces
    std::vector<size_t> offsets = {0};
    for (size_t at = 4, i = 0; i < 12; i++) {
        offsets.push_back(at);      // score
        offsets.push_back(at + 4);  // length
        at += 8 + good.pieces[i].size();
    }
    for (size_t at = 100; at + 4 <= bytes.size(); at += 97) offsets.push_back(at);
    int loaded = 0, refused = 0;
    for (size_t at : offsets)
        for (int32_t v : hostile) {
            std::string bad = bytes;
            std::memcpy(&bad[at], &v, 4);
            write_bytes(path, bad);
            const std::string what = outcome([&] { check_loaded(Tokenizer::load(path, vocab), vocab); });
            INFO("int32 " << v << " at offset " << at << ": " << what);
            REQUIRE((what == "ok" || what.find(path) != std::string::npos));
            (what == "ok" ? loaded : refused)++;
        }
    CHECK(refused > 0);
    CHECK(loaded > 0);  // a score may be anything: those load
    // vocabulary sizes the file does not hold, up to absurd ones: refused before allocating
    write_bytes(path, bytes);
    for (int v : {1, vocab - 1, vocab + 1, 1 << 22, INT32_MAX}) {
        const std::string what = outcome([&] { Tokenizer::load(path, v); });
        INFO("vocab " << v << ": " << what);
        REQUIRE(what != "ok");
    }
    std::remove(path.c_str());
}

TEST_CASE("fuzz: random byte flips in a tokenizer.bin", "[fuzz]") {
    const std::string path = temp_path("fuzz_flips.tok");
    const Tokenizer good = small_tokenizer();
    good.save(path);
    const std::string bytes = read_bytes(path);
    const int vocab = good.vocab_size();
    Rng rng(2024);
    for (int trial = 0; trial < 1500; trial++) {
        std::string bad = bytes;
        const int flips = 1 + (int)(rng.next_u32() % 4);
        for (int f = 0; f < flips; f++) bad[rng.next_u32() % bad.size()] ^= (char)(1 + rng.next_u32() % 255);
        write_bytes(path, bad);
        const std::string what = outcome([&] { check_loaded(Tokenizer::load(path, vocab), vocab); });
        INFO("trial " << trial << " (seed 2024): " << what);
        REQUIRE((what == "ok" || what.find(path) != std::string::npos));
    }
    std::remove(path.c_str());
}

TEST_CASE("fuzz: every truncation and corrupted byte of a plan file", "[fuzz]") {
    const std::string path = temp_path("fuzz.plan");
    write_plan_file(path, parse_plan("2,1,2,5,4,5,7,7,diag=all", 8), "a plan file\nwith two comment lines");
    const std::string bytes = read_bytes(path);
    REQUIRE(parse_plan(path, 8).spec() == "2,1,2,5,4,5,7,7,diag=all");
    // a loaded plan is a plan: a map over 8 layers whose sources are KV layers
    auto check = [&](const std::string& spec) {
        const Plan p = parse_plan(spec, 8);
        REQUIRE(p.n_layers() == 8);
        for (int s : p.source) REQUIRE((s >= 0 && s < 8 && p.source[s] == s));
    };
    for (size_t keep = 0; keep <= bytes.size(); keep++) {
        write_bytes(path, bytes.substr(0, keep));
        const std::string what = outcome([&] { check(path); });
        INFO("truncated to " << keep << " bytes: " << what);
        REQUIRE((what == "ok" || what.find("plan") != std::string::npos));
    }
    const char replacements[] = {'\0', '\n', '\r', '#', ',', '-', ':', '=', '9', '0', 'x', ' ', '\x7f', '\xff', '\x01'};
    for (size_t at = 0; at < bytes.size(); at++)
        for (char c : replacements) {
            std::string bad = bytes;
            bad[at] = c;
            write_bytes(path, bad);
            const std::string what = outcome([&] { check(path); });
            INFO("byte " << at << " set to " << (int)(unsigned char)c << ": " << what);
            REQUIRE((what == "ok" || what.find("plan") != std::string::npos));
            if (c == '\0') REQUIRE(what.find("control byte") != std::string::npos);  // never cut short silently
        }
    std::remove(path.c_str());
}

TEST_CASE("fuzz: random plan specs", "[fuzz]") {
    const std::string alphabet = "0123456789,:=-abcdegilmnoprstwyz";
    const std::vector<std::string> words = {"standard", "pizza", "sandwich", "lasagna", "-bottom", "-middle", "-top",
                                            "cla",      "yoco",  "lckv",     ":",       ",",       "diag=all", "2147483648",
                                            "-1",       "99999999999"};
    Rng rng(7);
    int ok = 0;
    for (int trial = 0; trial < 4000; trial++) {
        std::string spec;
        const int parts = 1 + (int)(rng.next_u32() % 6);
        for (int i = 0; i < parts; i++)
            spec += rng.next_u32() % 2 ? words[rng.next_u32() % words.size()] : std::string(1, alphabet[rng.next_u32() % alphabet.size()]);
        const int layers = 1 + (int)(rng.next_u32() % 12);
        const std::string what = outcome([&] {
            const Plan p = parse_plan(spec, layers);
            REQUIRE(p.n_layers() == layers);
            for (int s : p.source) REQUIRE((s >= 0 && s < layers && p.source[s] == s));
        });
        INFO("spec '" << spec << "' for " << layers << " layers: " << what);
        REQUIRE((what == "ok" || what.find("plan") != std::string::npos));
        ok += what == "ok";
    }
    CHECK(ok > 0);
}

// ---- Hugging Face's tokenizer.json ---------------------------------------------------------

namespace {

// Parses text as a tokenizer.json named `name` and builds and runs its encoder: "ok", or the
// runtime_error's message, which must name the file.
std::string tokenizer_json_outcome(const std::string& text, const std::string& name) {
    const std::string what = outcome([&] {
        const Tokenizer t = tokenizer_from_spec(parse_tokenizer_json(text, name));
        const std::vector<int> ids = t.encode("fuzzed <|im_start|>text \xE6\x97\xA5 123 it's\n", false, false);
        for (size_t i = 0; i < ids.size(); i++) t.decode_piece(i ? ids[i - 1] : -1, ids[i]);
    });
    if (what != "ok" && what.find(name) == std::string::npos) FAIL("an error that does not name " << name << ": " << what);
    return what;
}

}  // namespace

TEST_CASE("fuzz: tokenizer.json truncated, bit-flipped and with hostile values", "[fuzz]") {
    const std::string full = tokenizer_json_text(tokenizer_test::small_spec("smollm"));
    REQUIRE(tokenizer_json_outcome(full, "full.json") == "ok");
    // every truncation that loses more than the final newline (every byte of the first and last
    // 2 KB, every 7th between)
    const size_t end = full.find_last_not_of('\n') + 1;
    size_t cuts = 0;
    for (size_t len = 0; len < end; len += (len < 2048 || len + 2048 > end) ? 1 : 7, cuts++)
        if (tokenizer_json_outcome(full.substr(0, len), "cut.json") == "ok") FAIL("tokenizer.json cut to " << len << " bytes loaded");
    CHECK(cuts > 4000);
    Rng rng(31);
    size_t loaded = 0;
    for (int i = 0; i < 1500; i++) {
        std::string damaged = full;
        for (int f = 0; f < 1 + (int)(rng.next_u32() % 3); f++) damaged[rng.next_u32() % damaged.size()] ^= (char)(1 << (rng.next_u32() % 8));
        loaded += tokenizer_json_outcome(damaged, "flipped.json") == "ok";
    }
    CHECK(loaded > 0);  // a flip inside a token's text can leave a valid tokenizer
    // hostile values where the file gives sizes and ids
    auto replaced = [&](const std::string& from, const std::string& to) {
        std::string s = full;
        const size_t at = s.find(from);
        REQUIRE(at != std::string::npos);
        return s.replace(at, from.size(), to);
    };
    for (const char* id : {"-1", "259", "271", "4294967296", "9223372036854775807", "99999999999999999999", "1e3", "2.5", "\"3\"", "null"}) {
        INFO("id " << id);
        CHECK(tokenizer_json_outcome(replaced("\"id\":0,", std::string("\"id\":") + id + ","), "ids.json") != "ok");
        CHECK(tokenizer_json_outcome(replaced("\"b\": 101", std::string("\"b\": ") + id), "vocab.json") != "ok");
    }
    // merges naming tokens the vocabulary lacks, or making one it lacks; a huge list of them
    CHECK(tokenizer_json_outcome(replaced("\"merges\": [", "\"merges\": [\n\"zz q\","), "m.json").find("lacks") != std::string::npos);
    CHECK(tokenizer_json_outcome(replaced("\"merges\": [", "\"merges\": [\n\"x y\","), "m.json").find("makes 'xy'") != std::string::npos);
    std::string many = "\"merges\": [";
    for (int i = 0; i < 200000; i++) many += "\"a b\",";
    CHECK(tokenizer_json_outcome(replaced("\"merges\": [", many), "many.json") == "ok");  // duplicates: the last counts
    std::string junk = "\"merges\": [";
    for (int i = 0; i < 200000; i++) junk += "[\"a\", \"b\", \"c\"],";
    CHECK(tokenizer_json_outcome(replaced("\"merges\": [", junk), "junk.json").find("not a pair") != std::string::npos);
    // a huge added_tokens list whose ids run past the vocabulary
    std::string added = "\"added_tokens\": [";
    for (int i = 0; i < 100000; i++) added += "{\"id\": " + std::to_string(1000000 + i) + ", \"content\": \"t" + std::to_string(i) + "\"},";
    CHECK(tokenizer_json_outcome(replaced("\"added_tokens\": [", added), "added.json").find("outside") != std::string::npos);
    // nesting past the JSON reader's limit
    CHECK(tokenizer_json_outcome(replaced("\"normalizer\": null", "\"normalizer\": " + std::string(100, '[') + std::string(100, ']')),
                                 "deep.json") != "ok");
    // through the file reader, which tells JSON apart by its first byte
    const std::string path = temp_path("fuzz_tokenizer.json");
    for (size_t len : {(size_t)1, (size_t)2, full.size() / 2}) {
        write_bytes(path, full.substr(0, len));
        CHECK_THROWS_AS(load_tokenizer_file(path, 270), std::runtime_error);
    }
    write_bytes(path, full);
    CHECK_THROWS_WITH(load_tokenizer_file(path, 300), Catch::Contains("270 tokens") && Catch::Contains("300"));
    std::remove(path.c_str());
}
