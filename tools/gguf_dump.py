"""What the `gguf` package's own reader (GGUFReader) sees in a GGUF file, as JSON: a second
reader for ecr's to agree with.

    python -m tools.gguf_dump F.gguf --out F.json

{"version", "metadata": [{"key", "types", "value"}], "tensors": [{"name", "type_id", "dims",
"offset", "nbytes", "crc32"}]}: "types" is the value's type chain as GGUFReader reports it
(["array", "array", "string"] for an array of arrays of strings); "value" is its contents, with
nested arrays flattened into one list of leaves, as GGUFReader returns them. "dims" are ggml's
(ne0 first), "offset" is absolute, "crc32" is zlib's CRC-32 of the tensor's bytes. Needs the
PyPI package gguf (tools/setup_venv.sh).
"""

import argparse
import json
import zlib

from gguf import GGUFReader, GGUFValueType as V

TYPE_NAMES = {V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
              V.INT32: "i32", V.UINT64: "u64", V.INT64: "i64", V.FLOAT32: "f32", V.FLOAT64: "f64",
              V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    r = GGUFReader(args.file)
    metadata = [{"key": key, "types": [TYPE_NAMES[t] for t in field.types], "value": field.contents()}
                for key, field in r.fields.items() if not key.startswith("GGUF.")]  # GGUF.*: the header
    tensors = [{"name": t.name, "type_id": int(t.tensor_type), "dims": [int(d) for d in t.shape],
                "offset": int(t.data_offset), "nbytes": int(t.n_bytes), "crc32": zlib.crc32(t.data.tobytes())}
               for t in r.tensors]
    with open(args.out, "w") as f:
        json.dump({"version": int(r.fields["GGUF.version"].contents()), "metadata": metadata, "tensors": tensors},
                  f, ensure_ascii=False)


if __name__ == "__main__":
    main()
