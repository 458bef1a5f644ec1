"""The `gguf` package's numpy quantizers, the reference of tests/test_quant.cpp.

    python3 gguf_quants.py q8_0|q4_0 values.npy ours.bin quantized.bin dequantized.npy

writes gguf.quants.quantize(values) (f32, rows x cols) as raw block bytes to quantized.bin and
gguf.quants.dequantize of ours.bin (the engine's blocks of the same shape) as f32 to dequantized.npy.
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, quants

kind, values_path, ours_path, quantized_path, dequantized_path = sys.argv[1:]
qtype = GGMLQuantizationType[kind.upper()]
values = np.load(values_path)
quants.quantize(values, qtype).tofile(quantized_path)
ours = np.fromfile(ours_path, dtype=np.uint8).reshape(values.shape[0], -1)
np.save(dequantized_path, quants.dequantize(ours, qtype).astype(np.float32))
