#include "src/text/sentencepiece.h"
#include "src/text/tokenizer_json.h"
#include "src/util.h"
#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>

static const char kSpace[] = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space
enum PieceType { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
static const int kBpe = 2;

// ---------------------------------------------------------------- protobuf wire format

namespace {

// One message's bytes; every read is checked against its end.
struct Wire {
    const uint8_t* p;
    size_t n, pos = 0;
    const std::string& source;

    [[noreturn]] void bad(const std::string& why) const {
        fail("'" + source + "' is not a valid SentencePiece model: " + why + " (at byte " + std::to_string(pos) + " of a " +
             std::to_string(n) + "-byte message)");
    }
    bool done() const { return pos >= n; }
    uint64_t varint() {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos >= n) bad("a number runs past the end");
            const uint8_t b = p[pos++];
            v |= (uint64_t)(b & 0x7F) << shift;
            if (!(b & 0x80)) return v;
        }
        bad("a number longer than 10 bytes");
    }
    uint32_t fixed32() {
        if (n - pos < 4) bad("a 4-byte field runs past the end");
        uint32_t v;
        std::memcpy(&v, p + pos, 4);
        pos += 4;
        return v;
    }
    Wire message() {  // a length-delimited field, as a message of its own
        const uint64_t len = varint();
        if (len > n - pos) bad("a field of " + std::to_string(len) + " bytes runs past the end");
        Wire w{p + pos, (size_t)len, 0, source};
        pos += (size_t)len;
        return w;
    }
    std::string bytes() {
        const Wire w = message();
        return std::string((const char*)w.p, w.n);
    }
    // Reads a field's key; wire types 3 and 4 (groups) are not used by this schema.
    void key(uint32_t* field, int* wire) {
        const uint64_t k = varint();
        *field = (uint32_t)(k >> 3);
        *wire = (int)(k & 7);
        if (*field == 0 || (*wire != 0 && *wire != 1 && *wire != 2 && *wire != 5)) bad("a field key with wire type " + std::to_string(*wire));
    }
    void skip(int wire) {
        if (wire == 0) varint();
        else if (wire == 1) { if (n - pos < 8) bad("an 8-byte field runs past the end"); pos += 8; }
        else if (wire == 2) message();
        else fixed32();
    }
    void expect_wire(int wire, int want, const char* what) {
        if (wire != want) bad(std::string(what) + " has the wrong wire type");
    }
};

struct Trainer {
    int model_type = 1;  // proto default: UNIGRAM
    bool byte_fallback = false, whitespace_suffix = false;
    int64_t unk_id = 0, bos_id = 1, eos_id = 2;
};

struct Normalizer {
    std::string name;
    bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

SentencePiece read_piece(Wire w) {
    SentencePiece pc;
    while (!w.done()) {
        uint32_t f; int wire;
        w.key(&f, &wire);
        if (f == 1) { w.expect_wire(wire, 2, "a piece's text"); pc.text = w.bytes(); }
        else if (f == 2) { w.expect_wire(wire, 5, "a piece's score"); uint32_t b = w.fixed32(); std::memcpy(&pc.score, &b, 4); }
        else if (f == 3) { w.expect_wire(wire, 0, "a piece's type"); pc.type = (int)w.varint(); }
        else w.skip(wire);
    }
    return pc;
}

Trainer read_trainer(Wire w) {
    Trainer t;
    while (!w.done()) {
        uint32_t f; int wire;
        w.key(&f, &wire);
        if (wire != 0) { w.skip(wire); continue; }
        const uint64_t v = w.varint();
        if (f == 3) t.model_type = (int)v;
        else if (f == 24) t.whitespace_suffix = v != 0;
        else if (f == 35) t.byte_fallback = v != 0;
        else if (f == 40) t.unk_id = (int32_t)v;  // int32 fields: a negative id is a 10-byte varint
        else if (f == 41) t.bos_id = (int32_t)v;
        else if (f == 42) t.eos_id = (int32_t)v;
    }
    return t;
}

Normalizer read_normalizer(Wire w) {
    Normalizer nm;
    while (!w.done()) {
        uint32_t f; int wire;
        w.key(&f, &wire);
        if (f == 1 && wire == 2) nm.name = w.bytes();
        else if (f == 3 && wire == 0) nm.add_dummy_prefix = w.varint() != 0;
        else if (f == 4 && wire == 0) nm.remove_extra_whitespaces = w.varint() != 0;
        else if (f == 5 && wire == 0) nm.escape_whitespaces = w.varint() != 0;
        else w.skip(wire);
    }
    return nm;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    return s;
}

}  // namespace

bool is_sentencepiece_model(const std::string& bytes) {
    // field 1 (pieces), wire type 2: key 0x0A, a length, then the piece's own field 1 (0x0A)
    if (bytes.size() < 4 || (uint8_t)bytes[0] != 0x0A) return false;
    size_t pos = 1;
    uint64_t len = 0;
    for (int shift = 0; pos < bytes.size() && shift < 35; shift += 7) {
        const uint8_t b = (uint8_t)bytes[pos++];
        len |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) break;
    }
    return len >= 2 && pos < bytes.size() && (uint8_t)bytes[pos] == 0x0A;
}

// ---------------------------------------------------------------- reading

Tokenizer parse_sentencepiece(const std::string& bytes, const std::string& source) {
    Wire w{(const uint8_t*)bytes.data(), bytes.size(), 0, source};
    std::vector<SentencePiece> pieces;
    Trainer trainer;
    Normalizer normalizer;
    bool have_trainer = false;
    while (!w.done()) {
        uint32_t f; int wire;
        w.key(&f, &wire);
        if (f >= 1 && f <= 3) w.expect_wire(wire, 2, "a ModelProto field");
        if (f == 1) {
            if (pieces.size() >= (1u << 22)) w.bad("more than 4M pieces");
            pieces.push_back(read_piece(w.message()));
        } else if (f == 2) { trainer = read_trainer(w.message()); have_trainer = true; }
        else if (f == 3) normalizer = read_normalizer(w.message());
        else w.skip(wire);
    }
    const std::string what = "'" + source + "': ";
    auto refuse = [&](const std::string& why) { fail(what + why + "; kvshare encodes as llama2.c does (BPE, byte fallback, no normalization)"); };
    if (pieces.size() < 3 + 256) fail(what + "has " + std::to_string(pieces.size()) + " pieces; a byte-fallback model has at least 259");
    if (!have_trainer) refuse("it has no trainer_spec");
    if (trainer.model_type != kBpe) refuse("it is a " + std::string(trainer.model_type == 1 ? "unigram" : "non-BPE") + " model (model_type " + std::to_string(trainer.model_type) + ")");
    if (!trainer.byte_fallback) refuse("it has no byte fallback");
    if (trainer.whitespace_suffix) refuse("it treats whitespace as a suffix");
    if (trainer.unk_id != 0 || trainer.bos_id != 1 || trainer.eos_id != 2)
        refuse("its special ids are unk " + std::to_string(trainer.unk_id) + ", bos " + std::to_string(trainer.bos_id) + ", eos " +
               std::to_string(trainer.eos_id) + " (kvshare's are 0, 1, 2)");
    if (!normalizer.name.empty() && normalizer.name != "identity") refuse("it normalizes text ('" + normalizer.name + "')");
    if (!normalizer.add_dummy_prefix || normalizer.remove_extra_whitespaces || !normalizer.escape_whitespaces)
        refuse("its normalizer changes whitespace");

    return sentencepiece_tokenizer(pieces, source, false);
}

Tokenizer sentencepiece_tokenizer(const std::vector<SentencePiece>& pieces, const std::string& source, bool specials) {
    const std::string what = "'" + source + "': ";
    auto refuse = [&](const std::string& why) { fail(what + why + "; kvshare encodes as llama2.c does (BPE, byte fallback, no normalization)"); };
    if (pieces.size() < 3 + 256) fail(what + "has " + std::to_string(pieces.size()) + " pieces; a byte-fallback model has at least 259");
    Tokenizer t;
    for (size_t id = 0; id < pieces.size(); id++) {
        const SentencePiece& pc = pieces[id];
        const std::string at = "piece " + std::to_string(id) + " ('" + pc.text + "')";
        if (pc.type < kNormal || pc.type > kByte) fail(what + at + " has an unknown type " + std::to_string(pc.type));
        if (pc.type == kUnused || (pc.type == kUserDefined && !specials)) refuse(at + " is user-defined or unused");
        const bool byte_slot = id >= 3 && id < 3 + 256;
        if ((pc.type == kByte) != byte_slot) refuse(at + (byte_slot ? " is not a byte piece" : " is a byte piece out of place"));
        if (byte_slot) {
            char want[8];
            std::snprintf(want, sizeof want, "<0x%02X>", (unsigned)(id - 3));
            if (pc.text != want) refuse(at + " should be " + want);
        }
        const bool extra_control = specials && id > 2 && pc.type == kControl;  // a chat model's <|im_start|>
        if ((id == 0) != (pc.type == kUnknown) || ((id == 1 || id == 2) != (pc.type == kControl) && !extra_control))
            refuse(at + " has type " + std::to_string(pc.type) + " where kvshare expects <unk> at 0 and BOS, EOS at 1, 2");
        if (pc.text.empty()) fail(what + at + " is empty");
        // <unk>, BOS and EOS written in the text are those tokens, as Hugging Face reads text with
        // a SentencePiece model (LlamaTokenizer); with `specials` (a GGUF vocabulary), every
        // control and user-defined token too, as llama.cpp does
        if (id <= 2 || (specials && (pc.type == kControl || pc.type == kUserDefined))) t.specials.push_back({pc.text, (int)id});
        std::string text = id == 1 ? "\n<s>\n" : id == 2 ? "\n</s>\n" : pc.type == kNormal ? replace_all(pc.text, kSpace, " ") : pc.text;
        t.max_token_length = std::max(t.max_token_length, (int)text.size());
        t.pieces.push_back(std::move(text));
        t.scores.push_back(pc.score);
    }
    t.build_index();
    return t;
}

Tokenizer load_sentencepiece(const std::string& path) { return parse_sentencepiece(read_text_file(path), path); }

Tokenizer load_tokenizer_file(const std::string& path, int vocab_size) {
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (!ec && size > (256u << 20))  // Llama's is 0.5 MB, the largest in use a few MB
        fail("tokenizer '" + path + "' has " + std::to_string(size) + " bytes, far more than any tokenizer");
    const std::string bytes = read_text_file(path);
    if (is_sentencepiece_model(bytes)) {
        Tokenizer t = parse_sentencepiece(bytes, path);
        if (t.vocab_size() != vocab_size)
            fail("tokenizer '" + path + "' has " + std::to_string(t.vocab_size()) + " pieces, but the model's vocabulary has " +
                 std::to_string(vocab_size));
        return t;
    }
    if (looks_like_json(bytes)) {
        Tokenizer t = tokenizer_from_spec(load_tokenizer_json(path));
        if (t.vocab_size() != vocab_size)
            fail("tokenizer '" + path + "' has " + std::to_string(t.vocab_size()) + " tokens, but the model's vocabulary has " +
                 std::to_string(vocab_size));
        return t;
    }
    return Tokenizer::load(path, vocab_size);
}

// ---------------------------------------------------------------- writing

static void put_varint(std::string& out, uint64_t v) {
    for (; v >= 0x80; v >>= 7) out += (char)(0x80 | (v & 0x7F));
    out += (char)v;
}

static void put_key(std::string& out, uint32_t field, int wire) { put_varint(out, (uint64_t)field << 3 | (uint64_t)wire); }

static void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
    put_key(out, field, 2);
    put_varint(out, bytes.size());
    out += bytes;
}

static void put_int(std::string& out, uint32_t field, int64_t v) {
    put_key(out, field, 0);
    put_varint(out, (uint64_t)v);  // a negative int32 as protobuf writes it: 10 bytes
}

std::string sentencepiece_model_bytes(const Tokenizer& t) {
    if (t.is_byte_level()) fail("tokenizer: a byte-level BPE tokenizer cannot be written as SentencePiece's tokenizer.model");
    if (t.vocab_size() < 3 + 256) fail("tokenizer: SentencePiece needs the <unk>, BOS, EOS and 256 byte pieces");
    std::string model;
    for (int id = 0; id < t.vocab_size(); id++) {
        std::string text = t.pieces[id];
        int type = kNormal;
        if (id == 0) type = kUnknown;
        else if (id == 1 || id == 2) { type = kControl; text = id == 1 ? "<s>" : "</s>"; }
        else if (id < 3 + 256) type = kByte;
        if (type == kNormal && text.find(kSpace) != std::string::npos)
            fail("tokenizer: piece " + std::to_string(id) + " holds U+2581, which SentencePiece reserves for the space");
        if (text.empty()) fail("tokenizer: piece " + std::to_string(id) + " is empty");
        std::string piece;
        put_bytes(piece, 1, replace_all(text, " ", kSpace));
        put_key(piece, 2, 5);
        uint32_t bits;
        std::memcpy(&bits, &t.scores[id], 4);
        piece.append((const char*)&bits, 4);
        put_int(piece, 3, type);
        put_bytes(model, 1, piece);
    }
    std::string trainer;
    put_int(trainer, 3, kBpe);
    put_int(trainer, 4, t.vocab_size());
    put_int(trainer, 35, 1);   // byte_fallback
    put_int(trainer, 40, 0);   // unk_id
    put_int(trainer, 41, 1);   // bos_id
    put_int(trainer, 42, 2);   // eos_id
    put_int(trainer, 43, -1);  // pad_id: none
    put_bytes(model, 2, trainer);
    std::string normalizer;
    put_bytes(normalizer, 1, "identity");
    put_int(normalizer, 3, 1);  // add_dummy_prefix
    put_int(normalizer, 4, 0);  // remove_extra_whitespaces
    put_int(normalizer, 5, 1);  // escape_whitespaces
    put_bytes(model, 3, normalizer);
    return model;
}
