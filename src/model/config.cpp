#include "src/model/config.h"
#include "src/util.h"
#include <cmath>

void validate_config(const Config& c) {
    auto check = [](bool ok, const std::string& what) {
        if (!ok) fail("bad model config: " + what);
    };
    check(c.dim > 0 && c.dim <= (1 << 16), "dim " + std::to_string(c.dim));
    check(c.hidden_dim > 0 && c.hidden_dim <= (1 << 18), "hidden_dim " + std::to_string(c.hidden_dim));
    check(c.n_layers > 0 && c.n_layers <= 1024, "n_layers " + std::to_string(c.n_layers));
    check(c.n_heads > 0 && c.dim % c.n_heads == 0,
          "n_heads " + std::to_string(c.n_heads) + " must divide dim " + std::to_string(c.dim));
    check(c.head_size() % 2 == 0, "head size " + std::to_string(c.head_size()) + " must be even for RoPE");
    check(c.n_kv_heads > 0 && c.n_kv_heads <= c.n_heads && c.n_heads % c.n_kv_heads == 0,
          "n_kv_heads " + std::to_string(c.n_kv_heads) + " must divide n_heads " + std::to_string(c.n_heads));
    check(c.vocab_size > 0 && c.vocab_size <= (1 << 22), "vocab_size " + std::to_string(c.vocab_size));
    check(c.max_seq_len > 0 && c.max_seq_len <= (1 << 20), "max_seq_len " + std::to_string(c.max_seq_len));
    check(std::isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta " + std::to_string(c.rope_theta) + " (must be finite and > 0)");
    check(c.norm_eps > 0 && c.norm_eps < 1, "norm_eps " + std::to_string(c.norm_eps) + " (must be in (0, 1))");
}

Config preset_config(const std::string& name) {
    Config c;
    if (name == "tiny") {              // for tests: small, odd-ish sizes, grouped-query heads
        c.dim = 48; c.hidden_dim = 100; c.n_layers = 8; c.n_heads = 4; c.n_kv_heads = 2;
        c.vocab_size = 259; c.max_seq_len = 64;
    } else if (name == "demo") {       // byte vocabulary, runs anywhere in a blink
        c.dim = 128; c.hidden_dim = 344; c.n_layers = 8; c.n_heads = 4; c.n_kv_heads = 4;
        c.vocab_size = 259; c.max_seq_len = 256;
    } else if (name == "stories15M") { // llama2.c's stories15M shape
        c.dim = 288; c.hidden_dim = 768; c.n_layers = 6; c.n_heads = 6; c.n_kv_heads = 6;
        c.vocab_size = 32000; c.max_seq_len = 256;
    } else if (name == "stories110M") {
        c.dim = 768; c.hidden_dim = 2048; c.n_layers = 12; c.n_heads = 12; c.n_kv_heads = 12;
        c.vocab_size = 32000; c.max_seq_len = 1024;
    } else if (name == "smollm2-135m") {  // SmolLM2-135M's shape (Hugging Face config.json)
        c.dim = 576; c.hidden_dim = 1536; c.n_layers = 30; c.n_heads = 9; c.n_kv_heads = 3;
        c.vocab_size = 49152; c.max_seq_len = 2048; c.rope_theta = 100000.0f;
    } else if (name == "tinyllama") {  // TinyLlama-1.1B shape
        c.dim = 2048; c.hidden_dim = 5632; c.n_layers = 22; c.n_heads = 32; c.n_kv_heads = 4;
        c.vocab_size = 32000; c.max_seq_len = 2048;
        c.shared_classifier = false;
    } else {
        fail("unknown preset '" + name + "' (known: " + preset_names() + ")");
    }
    return c;
}

std::string preset_names() { return "tiny, demo, stories15M, stories110M, smollm2-135m, tinyllama"; }
