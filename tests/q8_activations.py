"""ggml's 8-bit activation blocks in numpy, the reference of tests/test_q8_activations.cpp.

    python3 q8_activations.py values.npy q8_0.bin q8_1.bin

quantizes each row of values (f32, rows x cols, cols a multiple of 32) as ggml-cpu's AVX2
quantize_row_q8_0 / quantize_row_q8_1 do, and writes the raw blocks: per block of 32,
amax = max |x|, d = amax / 127 (f32, stored f16), q = round half to even of x * (127 / amax)
(0 where amax is 0); q8_0 { f16 d; int8 qs[32] }, q8_1 { f16 d; f16 s; int8 qs[32] } with
s = d * sum(q) rounded to f16.
"""
import sys

import numpy as np

values_path, q8_0_path, q8_1_path = sys.argv[1:]
x = np.load(values_path).astype(np.float32)
blocks = x.reshape(-1, 32)
amax = np.abs(blocks).max(axis=1)
d = amax / np.float32(127)
with np.errstate(divide="ignore"):
    inverse = np.where(amax != 0, np.float32(127) / amax, np.float32(0)).astype(np.float32)
q = np.rint(blocks * inverse[:, None]).astype(np.int8)  # rint: halves to even
s = (d * q.astype(np.int32).sum(axis=1).astype(np.float32)).astype(np.float32)
d16 = d.astype(np.float16).view(np.uint8).reshape(-1, 2)
s16 = s.astype(np.float16).view(np.uint8).reshape(-1, 2)
qs = q.view(np.uint8)
np.concatenate([d16, qs], axis=1).tofile(q8_0_path)
np.concatenate([d16, s16, qs], axis=1).tofile(q8_1_path)
