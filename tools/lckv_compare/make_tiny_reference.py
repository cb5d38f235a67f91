#!/usr/bin/env python3
"""Makes tests/data/lckv_tiny/: a tiny LCKV folder and the logits the LCKV authors' code
computes on it, which tests/test_upward_rule.cpp checks kvshare's --upward-rule authors
against. Documentation, not run by the tests. Needs what compare.py needs:

    make -j2 NVCC= BUILD=build-cpu BIN=build-cpu/kvshare build-cpu/kvshare
    python3.10 tools/lckv_compare/make_tiny_reference.py --lckv /path/to/LCKV

The model: `kvshare init` (dim 16, 4 layers, 4 heads, 2 KV heads, the 259-token byte
vocabulary, seed 5) with plan lckv:1,diag=all (source map 0,3,3,3: layers 1 and 2 read layer
3, every diagonal masked), exported in F32, then every projection multiplied by 4 so that
attention is far from uniform (with N(0, 0.02) weights a wrong mask would hardly show).

The logits: their LCKVLlamaForCausalLM on its FlashAttention path (what their scripts load:
run_generation.py, run_clm.py, test_harness.py), models/utils.py's flash_attention_forward
with compare.py's CPU stand-in for the flash_attn kernel, called as generate() calls it: the
prompt with a DynamicCache, then one token at a time. One float32 row of 259 logits per
position, little-endian, rows in position order:

    short.f32  ids 1 72 101 108 | 108 111 32 119 111 114 108 100 33 10: a 4-token prompt
               (<= m + b = 9, so their code runs it token by token), then 10 decode steps
    long.f32   ids 1 84 104 101 32 99 97 116 32 115 97 116 | 32 111 110 32: a 12-token
               prompt (prefilled by 7 + 2 parallel iterations), then 4 decode steps
"""
import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from compare import load_theirs, theirs_cache  # noqa: E402

CASES = {
    "short": ([1, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100, 33, 10], 4),
    "long": ([1, 84, 104, 101, 32, 99, 97, 116, 32, 115, 97, 116, 32, 111, 110, 32], 12),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lckv", required=True)
    ap.add_argument("--build", default="build-cpu")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/lckv_tiny"))
    args = ap.parse_args()
    from safetensors.numpy import load_file, save_file

    kvshare = os.path.join(ROOT, args.build, "kvshare")
    tmp = args.out + ".kvs"
    subprocess.run([kvshare, "init", tmp, "--dim", "16", "--hidden", "24", "--layers", "4", "--heads", "4",
                    "--kv-heads", "2", "--vocab", "259", "--seq", "32", "--plan", "lckv:1,diag=all", "-s", "5"], check=True)
    subprocess.run([kvshare, "export", tmp, args.out], check=True)
    os.remove(tmp)
    st = os.path.join(args.out, "model.safetensors")
    tensors = load_file(st)
    for name in tensors:
        if name.endswith("_proj.weight"):
            tensors[name] = (tensors[name] * 4).astype(np.float32)
    save_file(tensors, st, metadata={"format": "pt"})
    model = load_theirs(args.out, "flash", args.lckv)
    for name, (ids, n_prompt) in CASES.items():
        rows, _ = theirs_cache(model, ids, n_prompt)
        rows.astype("<f4").tofile(os.path.join(args.out, name + ".f32"))
        print(name, len(ids), "positions")


if __name__ == "__main__":
    main()
