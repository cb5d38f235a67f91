#!/usr/bin/env python3
# Random blocks of every ggml type kvshare reads, with the values the gguf package (llama.cpp's
# Python reader, an implementation independent of kvshare's) dequantizes them to. Made once
# outside the project; tests/test_gguf.cpp reads the output and needs no Python.
#
#   python3 -m venv /tmp/refenv && /tmp/refenv/bin/pip install gguf==0.19.0 numpy==2.4.6
#   /tmp/refenv/bin/python tests/data/ggml_blocks.py > tests/data/ggml_blocks.bin
#
# Layout, little-endian, one record per type: uint32 ggml type, uint32 value count n,
# uint32 byte count b, then b bytes of blocks and n float32 values.
# The blocks are random bytes, except that every f16 scale and minimum is a random finite
# number (either sign, normal or subnormal), so every bit of every code and of the packed
# 6-bit K-quant scales is exercised.
import sys
import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q

rng = np.random.default_rng(20241205)

def finite_f16(n):
    h = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    exp_all_ones = (h & 0x7C00) == 0x7C00
    h[exp_all_ones] &= 0xBFFF  # exponent 31 (Inf/NaN) -> 15
    return h

# (type, blocks, [byte offsets of f16 fields within a block], block bytes)
specs = [
    (Q.F32, 64, None, 4), (Q.F16, 64, [0], 2), (Q.BF16, 64, None, 2),
    (Q.Q8_0, 8, [0], 34), (Q.Q4_0, 8, [0], 18), (Q.Q4_1, 8, [0, 2], 20), (Q.Q5_0, 8, [0], 22),
    (Q.Q5_1, 8, [0, 2], 24), (Q.Q4_K, 8, [0, 2], 144), (Q.Q5_K, 8, [0, 2], 176), (Q.Q6_K, 8, [208], 210),
]
out = sys.stdout.buffer
for qtype, n_blocks, f16_fields, size in specs:
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    if qtype == Q.F32:
        raw = rng.standard_normal(n_blocks).astype(np.float32).view(np.uint8).reshape(n_blocks, 4)
    if qtype == Q.BF16:
        raw = (rng.standard_normal(n_blocks).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(n_blocks, 2)
    for at in f16_fields or []:
        raw[:, at:at + 2] = finite_f16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
    values = gguf.quants.dequantize(raw.reshape(-1), qtype).astype(np.float32).reshape(-1)
    data = raw.tobytes()
    out.write(np.array([int(qtype), values.size, len(data)], dtype=np.uint32).tobytes())
    out.write(data)
    out.write(values.astype("<f4").tobytes())
