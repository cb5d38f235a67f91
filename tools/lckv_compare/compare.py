#!/usr/bin/env python3
"""kvshare against the LCKV authors' code (whyNLP/LCKV) and Hugging Face transformers, on the
same weights and token ids: the table of walkthrough chapter 9.9.

Documentation, not run by the tests (the project needs no Python). What it needs, outside the
project: Python 3.10 (their models/ package does not import under 3.11), torch (CPU is
enough), transformers==4.45.2, sentencepiece, numpy; a checkout of whyNLP/LCKV (its models/
package); and a CPU build of kvshare:

    make -j2 NVCC= BUILD=build-cpu BIN=build-cpu/kvshare build-cpu/kvshare
    python3.10 tools/lckv_compare/compare.py --lckv /path/to/LCKV --out /tmp/lckv-compare

For each plan it exports a shipped model (`kvshare export`, F32), opens the folder in their
code on three attention paths (eager; SDPA, what from_pretrained picks by default; their
FlashAttention wrapper, models/utils.py flash_attention_forward, with a CPU stand-in for the
flash_attn kernel, since flash_attn needs a GPU), and compares logits with kvshare's
(tools/lckv_compare/kvshare_logits.cpp) under both of kvshare's rules (--upward-rule paper
and authors):

  cache:    the prompt, then the tokens one at a time with a KV cache (generation);
  no cache: one forward over the whole sequence (their model(ids) without past_key_values).

"max |dlogit|": the largest difference over every position of the prompt plus 40 tokens
(the tokens kvshare generates greedily under that rule, fed to both). "agree": how many of
40 greedy tokens agree before the first difference when each program generates on its own
(with a cache: decode steps; without: the whole sequence run again for each token).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

PLANS = [  # (name in the table, shipped model, --plan)
    ("standard", "models/standard.kvs", ""),
    ("cla:2", "models/cla2.kvs", ""),
    ("sandwich-middle:4", "models/sandwich.kvs", ""),
    ("lckv:3", "models/lckv.kvs", ""),
    ("lckv:3,diag=all", "models/lckv.kvs", "lckv:3,diag=all"),
]
PROMPTS = {  # a prompt of more than m + b = 9 tokens is prefilled in parallel, a shorter one token by token
    "long": "Lily found a red ball in the park. She wanted to show it to her mom, so",
    "short": "Lily found a red ball.",
}
GENERATE = 40


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def build_driver(build, out):
    """kvshare_logits against the CPU build's objects (all but main)."""
    exe = os.path.join(out, "kvshare_logits")
    objs = []
    for d in ("src", "reference"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, build, d)):
            objs += [os.path.join(dirpath, f) for f in files if f.endswith(".o") and f != "main.o"]
    for dirpath, _, files in os.walk(os.path.join(ROOT, build, "cuda")):  # the CPU build's stand-ins, if any
        objs += [os.path.join(dirpath, f) for f in files if f.endswith(".o")]
    run(["g++", "-O2", "-std=c++17", "-fopenmp", "-I", ROOT, os.path.join(HERE, "kvshare_logits.cpp"), *objs, "-o", exe])
    return exe


def kvshare_rows(driver, folder, ids, n_prompt, rule, mode, out, generate=0):
    ids_file, rows_file = os.path.join(out, "ids.txt"), os.path.join(out, "rows.f32")
    with open(ids_file, "w") as f:
        f.write(" ".join(map(str, ids)))
    text = run([driver, folder, ids_file, str(n_prompt), rows_file, rule, mode, str(generate)])
    rows = np.fromfile(rows_file, dtype=np.float32)
    gen = [int(x) for x in text.split()] if generate else None
    return rows, gen


# ---------------------------------------------------------------------------- their side


def flash_stand_in(query_states, key_states, value_states, attention_mask, query_length, is_causal, **kw):
    """flash_attn_func's result on the CPU, for (batch, len, heads, head_dim) tensors and
    flash-attn >= 2.1's causal mask, aligned to the bottom right: query i of lq sees key j
    <= i + lk - lq. Grouped heads as flash_attn reads them (no repeat_kv before it)."""
    import torch

    assert attention_mask is None, "no padding here"
    q, k, v = (t.transpose(1, 2).double() for t in (query_states, key_states, value_states))  # (b, h, len, d)
    group = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    lq, lk = q.shape[2], k.shape[2]
    scores = q @ k.transpose(2, 3) / q.shape[-1] ** 0.5
    if is_causal:
        allowed = torch.ones(lq, lk, dtype=torch.bool).tril(diagonal=lk - lq)
        scores = scores.masked_fill(~allowed, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).to(query_states.dtype)


def load_theirs(folder, path, lckv_dir):
    import torch

    sys.path.insert(0, lckv_dir)
    import models  # noqa: F401  (their package: registers nothing, we use the classes)
    import models.utils
    from models.modeling_lckv import LCKVLlamaFlashAttention2, LCKVLlamaForCausalLM
    from transformers import LlamaForCausalLM
    from transformers.models.llama import modeling_llama

    models.utils._flash_attention_forward = flash_stand_in
    modeling_llama._flash_attention_forward = flash_stand_in
    cfg = json.load(open(os.path.join(folder, "config.json")))
    lckv = cfg["model_type"] == "lckv-llama"
    cls = LCKVLlamaForCausalLM if lckv else LlamaForCausalLM
    load_as = "eager" if path == "flash" else path
    model = cls.from_pretrained(folder, attn_implementation=load_as, torch_dtype=torch.float32)
    if path == "flash":  # flash_attn cannot load on a CPU: swap the attention classes in
        flash_cls = LCKVLlamaFlashAttention2 if lckv else modeling_llama.LlamaFlashAttention2
        for layer in model.model.layers:
            layer.self_attn.__class__ = flash_cls
            layer.self_attn._flash_attn_uses_top_left_mask = False
        for mod in model.modules():
            if hasattr(mod, "config"):
                mod.config._attn_implementation = "flash_attention_2"
    model.eval()
    return model


def theirs_cache(model, ids, n_prompt, generate=0):
    """Prompt, then one token at a time with a DynamicCache, as generate() calls the model."""
    import torch
    from transformers import DynamicCache

    ids = list(ids[:n_prompt]) if generate else list(ids)
    total = n_prompt + generate if generate else len(ids)
    rows, gen = [], []
    with torch.no_grad():
        x = torch.tensor([ids[:n_prompt]])
        out = model(input_ids=x, attention_mask=torch.ones_like(x), past_key_values=DynamicCache(), use_cache=True)
        cache = out.past_key_values
        last = out.logits[0, -1]
        if not generate:
            rows.append(out.logits[0])
        for t in range(n_prompt, total):
            if generate:
                rows.append(last[None])
                ids.append(int(torch.argmax(last)))
                gen.append(ids[-1])
            x = torch.tensor([[ids[t]]])
            out = model(input_ids=x, attention_mask=torch.ones(1, t + 1, dtype=torch.long), past_key_values=cache,
                        use_cache=True)
            cache = out.past_key_values
            last = out.logits[0, -1]
            if not generate:
                rows.append(out.logits[0])
    return torch.cat(rows).double().numpy().ravel(), gen


def theirs_full(model, ids, n_prompt, generate=0):
    """model(ids) without a cache: once over all ids, or once per generated token."""
    import torch

    with torch.no_grad():
        if not generate:
            return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].double().numpy().ravel(), None
        ids, rows, gen = list(ids[:n_prompt]), [], []
        for _ in range(generate):
            last = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
            rows.append(last.double().numpy())
            ids.append(int(torch.argmax(last)))
            gen.append(ids[-1])
        return np.concatenate(rows), gen


def agree(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def print_tables(results):
    """The chapter's tables: per prompt, rows = their path x cache, columns = plans, each cell
    max |dlogit| and agreeing tokens for kvshare's paper rule, then its authors rule."""
    def fmt(r):
        x = r["max_dlogit"]
        d = "NaN" if r["nan"] else ("%.0e" % x).replace("e-0", "e-") if x < 0.1 else "%.1g" % x if x < 9.5 else "%.0f" % x
        return "%s (%d)" % (d, r["agree"])
    plans = [p[0] for p in PLANS if any(r["plan"] == p[0] for r in results)]
    for prompt in PROMPTS:
        rows = [r for r in results if r["prompt"] == prompt]
        if not rows:
            continue
        print("\n%s prompt (%d tokens); each cell: max |dlogit| (tokens agreeing of 40), paper rule / authors rule\n"
              % (prompt, rows[0]["n_prompt"]))
        print("| their path | " + " | ".join(plans) + " |")
        print("|---|" + "---|" * len(plans))
        for path in ("eager", "sdpa", "flash"):
            for mode in ("cache", "full"):
                cells = []
                for plan in plans:
                    got = {r["rule"]: r for r in rows if r["plan"] == plan and r["path"] == path and r["mode"] == mode}
                    cells.append(" / ".join(fmt(got[rule]) for rule in ("paper", "authors")) if len(got) == 2 else "")
                print("| %s, %s | %s |" % (path, "cache" if mode == "cache" else "no cache", " | ".join(cells)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lckv", required=True, help="a checkout of whyNLP/LCKV")
    ap.add_argument("--out", default="/tmp/lckv-compare")
    ap.add_argument("--build", default="build-cpu", help="kvshare's CPU build folder")
    ap.add_argument("--plans", default=";".join(p[0] for p in PLANS), help="names from PLANS, separated by ;")
    ap.add_argument("--paths", default="eager,sdpa,flash")
    ap.add_argument("--table", help="print the tables of a results.json this script wrote, and stop")
    args = ap.parse_args()
    if args.table:
        return print_tables(json.load(open(args.table)))
    os.makedirs(args.out, exist_ok=True)
    import torch
    from transformers import LlamaTokenizer

    torch.set_num_threads(2)
    kvshare = os.path.join(ROOT, args.build, "kvshare")
    driver = build_driver(args.build, args.out)
    results = []
    for name, model_file, plan in PLANS:
        if name not in args.plans.split(";"):
            continue
        folder = os.path.join(args.out, name.replace(":", "-").replace(",", "-").replace("=", "-"))
        if not os.path.exists(folder):
            cmd = [kvshare, "export", os.path.join(ROOT, model_file), folder, "-z", os.path.join(ROOT, "models/stories.tok")]
            run(cmd + (["--plan", plan] if plan else []))
        tok = LlamaTokenizer.from_pretrained(folder, legacy=True)
        for prompt_name, prompt in PROMPTS.items():
            prompt_ids = tok(prompt).input_ids  # BOS first, as kvshare's encoder
            n_prompt = len(prompt_ids)
            ours = {}
            for rule in ("paper", "authors"):
                for mode in ("cache", "full"):
                    _, gen = kvshare_rows(driver, folder, prompt_ids, n_prompt, rule, mode, args.out, GENERATE)
                    seq = prompt_ids + gen  # the sequence both sides are fed for the logits
                    rows, _ = kvshare_rows(driver, folder, seq, n_prompt, rule, mode, args.out)
                    ours[rule, mode] = (seq, rows, gen)
            for path in args.paths.split(","):
                model = load_theirs(folder, path, args.lckv)
                for mode in ("cache", "full"):
                    fn = theirs_cache if mode == "cache" else theirs_full
                    _, their_gen = fn(model, prompt_ids, n_prompt, GENERATE)
                    for rule in ("paper", "authors"):
                        seq, rows, gen = ours[rule, mode]
                        their_rows, _ = fn(model, seq, n_prompt)
                        diff = np.abs(their_rows - rows)
                        row = dict(torch=torch.__version__, plan=name, prompt=prompt_name, n_prompt=n_prompt, path=path, mode=mode, rule=rule,
                                   max_dlogit=float(np.nanmax(diff)) if np.isfinite(their_rows).all() else float("nan"),
                                   agree=agree(gen, their_gen), nan=not np.isfinite(their_rows).all())
                        results.append(row)
                        print(json.dumps(row), flush=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
