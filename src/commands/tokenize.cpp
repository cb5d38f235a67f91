// kvshare tokenize: the ids a model is fed for a text, to compare with another implementation.
#include "src/commands/args.h"
#include "src/commands/commands.h"
#include "src/formats/checkpoint.h"
#include "src/text/sentencepiece.h"
#include "src/text/tokenizer.h"
#include "src/text/tokenizer_json.h"
#include "src/text/unicode.h"
#include "src/util.h"
#include <cstdio>

// A token's bytes as a C string literal: complete UTF-8 characters as they are, quotes,
// backslashes and control characters escaped, any other byte as \xHH.
std::string quoted_bytes(const std::string& bytes) {
    std::string out = "\"";
    for (size_t i = 0, len; i < bytes.size(); i += len) {
        const uint32_t cp = utf8_decode(bytes.data(), bytes.size(), i, &len);
        const char c = bytes[i];
        if (c == '"' || c == '\\') out += std::string("\\") + c;
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (cp == kNotACodePoint || cp < 0x20 || cp == 0x7F) {
            char hex[8];
            std::snprintf(hex, sizeof hex, "\\x%02X", (unsigned char)c);
            out += hex;
        } else out.append(bytes, i, len);
    }
    return out + "\"";
}

// A tokenizer file on its own: tokenizer.json or tokenizer.model (tokenizer.bin does not
// record its vocabulary size, so it needs the model).
static Tokenizer standalone_tokenizer(const std::string& path) {
    const std::string bytes = read_text_file(path, "tokenizer", (size_t)256 << 20);
    if (looks_like_json(bytes)) return tokenizer_from_spec(load_tokenizer_json(path));
    if (is_sentencepiece_model(bytes)) return parse_sentencepiece(bytes, path);
    fail("kvshare tokenize: '" + path + "' is neither a tokenizer.json nor a tokenizer.model; a llama2.c tokenizer.bin does not "
         "record its vocabulary size, so give the MODEL too");
}

int cmd_tokenize(int argc, char** argv) {
    Args a = parse_args(argc, argv, 2, "kvshare tokenize", {"-z", "-i", "--file", "--plan"}, {"--ids"});
    if (a.has("--help")) {
        std::printf("usage: kvshare tokenize MODEL [-z TOKENIZER] (-i TEXT | --file FILE) [--ids]\n"
                    "       kvshare tokenize -z TOKENIZER (-i TEXT | --file FILE) [--ids]\n"
                    "Prints the token ids that generate feeds the model for TEXT (or the bytes of FILE): BOS first\n"
                    "when the model asks for it, special tokens' text (<|im_start|>) as their ids. One line per\n"
                    "token: its id and its bytes as a quoted string; with --ids, the ids alone on one line, as\n"
                    "Hugging Face's tokenizer(text).input_ids lists them. The tokenizer is the one generate uses\n"
                    "(see kvshare generate --help); a tokenizer.json or tokenizer.model needs no MODEL, a\n"
                    "tokenizer.bin does (it does not record its vocabulary size). The count goes to stderr.\n");
        return 0;
    }
    a.at_most_positional(1);
    const std::string tok_path = a.input_file("-z");
    if (a.positional.empty() && tok_path.empty()) fail("kvshare tokenize: give a MODEL, or a tokenizer with -z");
    if (a.has("-i") == a.has("--file")) fail("kvshare tokenize: give one of -i TEXT or --file FILE");
    const std::string file = a.input_file("--file");
    Tokenizer tok;
    if (a.positional.empty()) tok = standalone_tokenizer(tok_path);
    else tok = tokenizer_for(tok_path, load_model(a.need_model(0), a.get("--plan")));
    const std::string text = file.empty() ? a.get("-i") : read_text_file(file, "kvshare tokenize --file");
    const std::vector<int> ids = tok.encode(text, tok.add_bos, false);
    std::string out, decoded;
    for (size_t i = tok.add_bos ? 1 : 0; i < ids.size(); i++) decoded += tok.decode_piece(i ? ids[i - 1] : -1, ids[i]);
    for (size_t i = 0; i < ids.size(); i++) {
        if (a.has("--ids")) out += (i ? " " : "") + std::to_string(ids[i]);
        else out += std::to_string(ids[i]) + "\t" + quoted_bytes(tok.decode_piece(i ? ids[i - 1] : -1, ids[i])) + "\n";
    }
    if (a.has("--ids")) out += "\n";
    if (std::fputs(out.c_str(), stdout) == EOF || std::fflush(stdout) != 0) fail("kvshare tokenize: cannot write to the output");
    if (tok.is_byte_level() && decoded != text)
        std::fprintf(stderr, "note: the ids do not decode to the text: it holds bytes that have no token in this vocabulary, "
                             "which are dropped (as Hugging Face's tokenizer drops them)\n");
    std::fprintf(stderr, "%zu tokens (%s, vocabulary %d%s)\n", ids.size(), tok.is_byte_level() ? "byte-level BPE" : "SentencePiece-style BPE",
                 tok.vocab_size(), tok.add_bos ? ", BOS added" : "");
    return 0;
}
