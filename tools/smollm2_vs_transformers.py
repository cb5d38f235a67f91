#!/usr/bin/env python3
# Greedy text from text in: kvshare on SmolLM2-135M-Instruct's GGUF against Hugging Face
# transformers on the same weights (issue 21, item 5). A check run by hand outside the
# project; nothing in kvshare or its tests imports Python. Walkthrough chapter 10.11 has
# what it printed.
#
#   python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch transformers==4.45.2 \
#       gguf==0.19.0 safetensors numpy
#   make smollm2 kvshare
#   /tmp/hfenv/bin/python tools/smollm2_vs_transformers.py models/SmolLM2-135M-Instruct.Q4_1.gguf
#
# The reference folder is built from the GGUF's own tensors and metadata, not by
# transformers' GGUF loader (4.45.2 unties the classifier, so lm_head would be random, and
# its tokenizer conversion drops the digit split and makes BOS and EOS both <|im_start|>):
# every tensor is dequantized by the gguf package (llama.cpp's Python reader), q/k rows are
# put back from llama.cpp's adjacent-pair order into Hugging Face's half split, and the
# tokenizer is tests/data/tokenizer/smollm2-tokenizer.json (made from the same GGUF by
# tests/data/tokenizer/make_reference.py), loaded by Hugging Face's own tokenizers library.
import json, os, subprocess, sys, tempfile

import gguf
import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HF_NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
            "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
            "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}

PROMPTS = [
    "The capital of France is",
    "Once upon a time, in a small village by the sea,",
    "def fibonacci(n):",
    "The three primary colors are",
    "In 1969, the first humans",
    "Water boils at 100 degrees Celsius, which is",
    "<|im_start|>user\nWhat is the tallest mountain in the world?<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>user\nWrite a haiku about autumn.<|im_end|>\n<|im_start|>assistant\n",
]
STEPS = 64  # kvshare's -n, llama2.c's steps: it prints STEPS tokens after the first, so
           # a sequence ends at STEPS + 1 tokens, prompt included


def build_folder(path, out):
    r = gguf.GGUFReader(path)
    f = lambda k: r.fields[k].contents()
    dim, n_heads, n_kv = f("llama.embedding_length"), f("llama.attention.head_count"), f("llama.attention.head_count_kv")
    hs = dim // n_heads
    cfg = LlamaConfig(vocab_size=len(f("tokenizer.ggml.tokens")), hidden_size=dim,
                      intermediate_size=f("llama.feed_forward_length"), num_hidden_layers=f("llama.block_count"),
                      num_attention_heads=n_heads, num_key_value_heads=n_kv,
                      max_position_embeddings=f("llama.context_length"), rope_theta=float(f("llama.rope.freq_base")),
                      rms_norm_eps=float(f("llama.attention.layer_norm_rms_epsilon")), tie_word_embeddings=True,
                      bos_token_id=f("tokenizer.ggml.bos_token_id"), eos_token_id=f("tokenizer.ggml.eos_token_id"),
                      torch_dtype="float32")

    def half_split(w, heads):  # GGUF row 2i + j of a head -> Hugging Face row j * hs/2 + i
        return w.reshape(heads, hs // 2, 2, w.shape[1]).swapaxes(1, 2).reshape(heads * hs, w.shape[1])

    tensors = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape(tuple(int(n) for n in reversed(t.shape)))
        parts = t.name.split(".")
        if t.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            name = "model.norm.weight"
        else:
            layer, kind = parts[1], parts[2]
            if kind == "attn_q": w = half_split(w, n_heads)
            if kind == "attn_k": w = half_split(w, n_kv)
            name = "model.layers.%s.%s.weight" % (layer, HF_NAMES[kind])
        tensors[name] = torch.from_numpy(np.ascontiguousarray(w))
    os.makedirs(out, exist_ok=True)
    cfg.save_pretrained(out)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    return cfg


def main():
    gguf_path = sys.argv[1]
    kvshare = sys.argv[2] if len(sys.argv) > 2 else "./kvshare"
    here = os.path.dirname(os.path.abspath(__file__))
    tok_json = os.path.join(here, "..", "tests", "data", "tokenizer", "smollm2-tokenizer.json")
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as d:
        cfg = build_folder(gguf_path, d)
        model = LlamaForCausalLM.from_pretrained(d, torch_dtype=torch.float32).eval()
    tok = PreTrainedTokenizerFast(tokenizer_file=tok_json)
    agree = 0
    for prompt in PROMPTS:
        ids = tok(prompt, add_special_tokens=False)["input_ids"]  # SmolLM2 adds no BOS
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), max_new_tokens=STEPS + 1 - len(ids), do_sample=False,
                                 eos_token_id=cfg.eos_token_id, pad_token_id=cfg.eos_token_id)
        new = out[0, len(ids):].tolist()
        if new and new[-1] == cfg.eos_token_id: new = new[:-1]  # kvshare prints nothing for EOS
        hf_text = tok.decode(ids + new, skip_special_tokens=False)
        ks = subprocess.run([kvshare, "generate", gguf_path, "-i", prompt, "-t", "0", "-n", str(STEPS)],
                            capture_output=True, check=True).stdout.decode("utf-8")
        same = ks.rstrip("\n") == hf_text.rstrip("\n")
        agree += same
        print(json.dumps({"prompt": prompt, "same": same, "tokens": len(ids) + len(new),
                          "transformers": hf_text, "kvshare": ks}, ensure_ascii=False))
    print("%d of %d prompts: identical greedy text" % (agree, len(PROMPTS)))
    return 0 if agree == len(PROMPTS) else 1


if __name__ == "__main__":
    sys.exit(main())
