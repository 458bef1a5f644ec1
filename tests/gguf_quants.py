"""The `gguf` package's numpy quantizers and dequantizers, the reference of tests/test_quant.cpp.

    python3 gguf_quants.py TYPE values.npy quantized.bin [blocks.bin dequantized.npy]...

writes gguf.quants.quantize(values) (f32, rows x cols) as raw block bytes to quantized.bin where
gguf has a quantizer for TYPE (q8_0, q4_1, ...; none for the k-quants, which it only reads), and
for each pair gguf.quants.dequantize of blocks.bin (raw blocks of TYPE, rows as in values) as f32
to dequantized.npy.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, quants

kind, values_path, quantized_path, *pairs = sys.argv[1:]
qtype = GGMLQuantizationType[kind.upper()]
values = np.load(values_path)
try:
    quants.quantize(values, qtype).tofile(quantized_path)
except NotImplementedError:
    pass
for blocks_path, dequantized_path in zip(pairs[0::2], pairs[1::2]):
    blocks = np.fromfile(blocks_path, dtype=np.uint8).reshape(values.shape[0], -1)
    np.save(dequantized_path, quants.dequantize(blocks, qtype).astype(np.float32))
