#!/usr/bin/env python3
# Reference numbers for the [smollm2] tests (tests/test_gguf.cpp), made once outside the
# project; the tests read tests/data/smollm2_reference.txt and need no Python.
#
#   python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install gguf==0.19.0 numpy==2.4.6
#   /tmp/refenv/bin/python tests/data/smollm2_reference.py models/SmolLM2-135M-Instruct.Q4_1.gguf \
#       > tests/data/smollm2_reference.txt
#
# Everything comes from the GGUF file's own tensors and metadata, dequantized by the gguf
# package (llama.cpp's Python reader: an implementation independent of kvshare's). The
# forward pass is Hugging Face's Llama written out in float64 numpy: q/k rows are first put
# back into Hugging Face's half-split order (undoing the permutation llama.cpp's converter
# applies, row 2i + j of a head <- row j * head_size/2 + i), and RoPE rotates element i with
# element i + head_size/2 (rotate_half), so the row order kvshare assumes is checked, not
# assumed. The classifier is tied to token_embd (the file has no output.weight).
import sys
import numpy as np
import gguf

path = sys.argv[1]
r = gguf.GGUFReader(path)

def field(key):
    return r.fields[key].contents()

dim = field("llama.embedding_length")
n_layers = field("llama.block_count")
n_heads = field("llama.attention.head_count")
n_kv = field("llama.attention.head_count_kv")
theta = float(field("llama.rope.freq_base"))
eps = float(field("llama.attention.layer_norm_rms_epsilon"))
hs = dim // n_heads

W = {}
for t in r.tensors:
    W[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(tuple(int(n) for n in reversed(t.shape)))
assert "output.weight" not in W

# per tensor: the sum and the sum of squares of its dequantized values (float64)
for t in r.tensors:
    w = W[t.name].astype(np.float64)
    print("sum %s %s %d %.17g %.17g" % (t.name, t.tensor_type.name, w.size, w.sum(), (w * w).sum()))

def to_half_split(w, heads):  # GGUF (adjacent pairs) rows -> Hugging Face rows, per head
    cols = w.shape[1]
    return w.reshape(heads, hs // 2, 2, cols).swapaxes(1, 2).reshape(heads * hs, cols)

def rms(x, w):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

def rope(x, positions):  # x: (T, heads, hs), half-split pairs
    inv = theta ** (-np.arange(0, hs, 2, dtype=np.float64) / hs)
    ang = positions[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], -1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], -1)[:, None, :]
    rot = np.concatenate([-x[..., hs // 2:], x[..., :hs // 2]], -1)
    return x * cos + rot * sin

def forward(ids):
    f64 = lambda name: W[name].astype(np.float64)
    T = len(ids)
    x = f64("token_embd.weight")[ids]
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(n_layers):
        p = "blk.%d." % l
        h = rms(x, f64(p + "attn_norm.weight"))
        q = (h @ to_half_split(f64(p + "attn_q.weight"), n_heads).T).reshape(T, n_heads, hs)
        k = (h @ to_half_split(f64(p + "attn_k.weight"), n_kv).T).reshape(T, n_kv, hs)
        v = (h @ f64(p + "attn_v.weight").T).reshape(T, n_kv, hs)
        q, k = rope(q, pos), rope(k, pos)
        out = np.zeros((T, n_heads, hs))
        for head in range(n_heads):
            kv = head // (n_heads // n_kv)
            s = q[:, head] @ k[:, kv].T / np.sqrt(hs) + mask
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            out[:, head] = a @ v[:, kv]
        x = x + out.reshape(T, dim) @ f64(p + "attn_output.weight").T
        h = rms(x, f64(p + "ffn_norm.weight"))
        g = h @ f64(p + "ffn_gate.weight").T
        u = h @ f64(p + "ffn_up.weight").T
        x = x + (g / (1 + np.exp(-g)) * u) @ f64(p + "ffn_down.weight").T
    x = rms(x, f64("output_norm.weight"))
    return x @ f64("token_embd.weight").T

ids = [504, 3575, 282, 4649, 314]  # "The capital of France is" in SmolLM2's vocabulary
logits = forward(np.array(ids))
print("ids " + " ".join(str(i) for i in ids))
fixed = [0, 2, 7042, 49151]  # <|endoftext|>, <|im_end|>, " Paris", the last id
for p in range(len(ids)):
    top = np.argsort(-logits[p])[:5]
    chosen = list(top) + [i for i in fixed if i not in top]
    print("logits %d " % p + " ".join("%d:%.6f" % (i, logits[p, i]) for i in chosen))
