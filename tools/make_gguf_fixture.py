"""A GGUF file written by the `gguf` package's GGUFWriter, and a JSON file of what it holds.

    python -m tools.make_gguf_fixture --out F.gguf --expect F.json [--seed S] [--version 2|3] [--alignment A]

Needs the PyPI package gguf (tools/setup_venv.sh installs it into build/venv; run this module
with that venv's python). The file holds:

- metadata: a key for every value type (u8 .. f64 at their extremes and at random, bool, strings
  with non-ASCII text), arrays of every scalar type, of strings and of arrays of strings;
- tensors: random bytes in every type ecr computes on (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
  Q5_1, Q2_K .. Q6_K), 1 to 4 dimensions, and one I32 tensor (a type ggml defines that ecr does
  not compute on).

--expect gets {"version", "alignment", "metadata": [{"key", "type", "value" | "element"+"items"}],
"tensors": [{"name", "type", "type_id", "dims" (ggml order, ne0 first), "hex"}]}: the values as
written, for the reader's test to compare with. --version 2 rewrites the header's version field;
versions 2 and 3 lay out a little-endian file the same way. --alignment sets general.alignment.
"""

import argparse
import json

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGML_QUANT_SIZES, GGUFValueType as V, GGUFWriter

SCALARS = {  # value type -> numpy dtype
    V.UINT8: np.uint8, V.INT8: np.int8, V.UINT16: np.uint16, V.INT16: np.int16,
    V.UINT32: np.uint32, V.INT32: np.int32, V.UINT64: np.uint64, V.INT64: np.int64,
    V.FLOAT32: np.float32, V.FLOAT64: np.float64,
}
TYPE_NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
              V.INT32: "i32", V.UINT64: "u64", V.INT64: "i64", V.FLOAT32: "f32", V.FLOAT64: "f64",
              V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array"}
# ggml dims (ne0 first) per type: rows of whole blocks, 1 to 4 dimensions.
TENSORS = [
    (Q.F32, [7]), (Q.F16, [5, 3]), (Q.BF16, [4, 3, 2]), (Q.Q8_0, [64, 3]), (Q.Q4_0, [32, 2, 2, 2]),
    (Q.Q4_1, [96, 2]), (Q.Q5_0, [32, 3]), (Q.Q5_1, [64, 1]), (Q.Q2_K, [256, 2]), (Q.Q3_K, [256, 1]),
    (Q.Q4_K, [512, 2]), (Q.Q5_K, [256, 3]), (Q.Q6_K, [256, 2]),
]


def scalar(rng, vtype):
    info = np.finfo if vtype in (V.FLOAT32, V.FLOAT64) else np.iinfo
    dtype = SCALARS[vtype]
    if info is np.finfo:
        return [float(dtype(rng.standard_normal() * 1e3)), float(info(dtype).max), float(info(dtype).tiny)]
    lo, hi = int(info(dtype).min), int(info(dtype).max)
    return [lo, hi, int(rng.integers(lo, hi, dtype=dtype, endpoint=True))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--expect", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--version", type=int, choices=(2, 3), default=3)
    ap.add_argument("--alignment", type=int)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)

    w = GGUFWriter(args.out, "llama")
    metadata = [{"key": "general.architecture", "type": "string", "value": "llama"}]
    if args.alignment:
        w.add_custom_alignment(args.alignment)
        metadata.append({"key": "general.alignment", "type": "u32", "value": args.alignment})

    def add(key, value, vtype, element=None):
        w.add_key_value(key, value, vtype, sub_type=element)
        if vtype == V.ARRAY:
            entry = {"key": key, "type": "array", "element": TYPE_NAMES[element], "items": value}
        else:
            entry = {"key": key, "type": TYPE_NAMES[vtype], "value": value}
        metadata.append(entry)

    for vtype in SCALARS:
        for i, v in enumerate(scalar(rng, vtype)):
            add(f"test.{TYPE_NAMES[vtype]}.{i}", v, vtype)
        values = [v for _ in range(4) for v in scalar(rng, vtype)]
        add(f"test.array.{TYPE_NAMES[vtype]}", values, V.ARRAY, vtype)
    add("test.bool.true", True, V.BOOL)
    add("test.bool.false", False, V.BOOL)
    add("test.array.bool", [bool(b) for b in rng.integers(0, 2, 11)], V.ARRAY, V.BOOL)
    add("test.string", "caf\u00e9 \u2014 \"quoted\" \\ \U0001F3AC", V.STRING)
    add("test.string.empty_elements", ["", "a", ""], V.ARRAY, V.STRING)
    words = [f"w{int(rng.integers(0, 1 << 30))}" for _ in range(300)]
    add("test.array.string", words, V.ARRAY, V.STRING)
    # Arrays of arrays of strings, and one level deeper: the writer infers the inner types.
    nested = [["a", "bc"], ["d\u00e9f"], ["", "g", "hi", "j"]]
    w.add_key_value("test.array.nested", nested, V.ARRAY)
    metadata.append({"key": "test.array.nested", "type": "array", "element": "array",
                     "items": [{"element": "string", "items": inner} for inner in nested]})
    deeper = [[["x"], ["y", "z"]], [["w"]]]
    w.add_key_value("test.array.nested3", deeper, V.ARRAY)
    metadata.append({"key": "test.array.nested3", "type": "array", "element": "array",
                     "items": [{"element": "array", "items": [{"element": "string", "items": s} for s in inner]}
                               for inner in deeper]})

    tensors = []
    for qtype, dims in TENSORS:
        block, block_bytes = GGML_QUANT_SIZES[qtype]
        rows = int(np.prod(dims[1:], dtype=np.int64))
        row_bytes = dims[0] // block * block_bytes
        data = rng.integers(0, 256, size=(rows, row_bytes), dtype=np.uint8)
        # numpy order is the reverse of ggml's; the writer turns a byte shape into elements.
        byte_shape = list(reversed(dims[1:])) + [row_bytes]
        name = f"t.{qtype.name.lower()}"
        w.add_tensor(name, data.reshape(byte_shape), raw_dtype=qtype)
        tensors.append({"name": name, "type": qtype.name, "type_id": int(qtype), "dims": dims,
                        "hex": data.tobytes().hex()})
    ints = rng.integers(-1000, 1000, size=(2, 3), dtype=np.int32)
    w.add_tensor("t.i32", ints)
    tensors.append({"name": "t.i32", "type": "I32", "type_id": int(Q.I32), "dims": [3, 2],
                    "hex": ints.tobytes().hex()})

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    if args.version != 3:
        with open(args.out, "r+b") as f:
            f.seek(4)
            f.write(args.version.to_bytes(4, "little"))
    with open(args.expect, "w") as f:
        json.dump({"version": args.version, "alignment": args.alignment or 32, "metadata": metadata,
                   "tensors": tensors}, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
