"""Seeds for fuzz_gguf: small GGUF files from the gguf package's GGUFWriter, under 1 KiB each.

    build/venv/bin/python3 tests/fuzz/make_gguf_seed.py OUT_DIR

(tools/setup_venv.sh makes build/venv.) One file with a key of every value type, an array of
arrays of strings and an F32, a Q8_0 and a Q4_K tensor; one with alignment 64 and an I32 tensor;
one with metadata only.
"""

import sys
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q, GGUFValueType as V, GGUFWriter


def write(path, fill):
    w = GGUFWriter(str(path), "llama")
    fill(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def every_type(w):
    for i, vtype in enumerate([V.UINT8, V.INT8, V.UINT16, V.INT16, V.UINT32, V.INT32, V.UINT64, V.INT64]):
        w.add_key_value(f"k.{vtype.name.lower()}", i + 1, vtype)
    w.add_float32("k.f32", 0.5)
    w.add_float64("k.f64", -2.25)
    w.add_bool("k.bool", True)
    w.add_string("k.str", "text")
    w.add_key_value("k.u16s", [1, 2, 3], V.ARRAY, sub_type=V.UINT16)
    w.add_key_value("k.bools", [True, False], V.ARRAY, sub_type=V.BOOL)
    w.add_key_value("k.nested", [["a", "bc"], ["d"]], V.ARRAY)
    rng = np.random.default_rng(0)
    w.add_tensor("f32", rng.standard_normal(8).astype(np.float32))
    w.add_tensor("q8_0", rng.integers(0, 256, (1, 34), dtype=np.uint8), raw_dtype=Q.Q8_0)
    w.add_tensor("q4_k", rng.integers(0, 256, (1, 144), dtype=np.uint8), raw_dtype=Q.Q4_K)


def aligned(w):
    w.add_custom_alignment(64)
    w.add_key_value("k.strs", ["x", "", "yz"], V.ARRAY, sub_type=V.STRING)
    w.add_tensor("i32", np.arange(6, dtype=np.int32).reshape(2, 3))
    w.add_tensor("f16", np.ones((2, 4), dtype=np.float16))


def metadata_only(w):
    w.add_uint32("llama.block_count", 30)


out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name, fill in [("every_type", every_type), ("aligned", aligned), ("metadata_only", metadata_only)]:
    write(out / f"{name}.gguf", fill)
