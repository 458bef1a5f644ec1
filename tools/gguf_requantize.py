"""A GGUF file's matrices re-stored in another type, everything else copied: for running a model
whose stored type ecr has no kernel for, and for speed tables across types.

    python -m tools.gguf_requantize IN.gguf OUT.gguf --type Q8_0|Q4_0|F16|F32

Every tensor of two or more dimensions is dequantized with gguf.quants.dequantize and quantized
with gguf.quants.quantize (GGML's reference rounding); 1-D tensors (norms) become F32; the
metadata is copied, except general.file_type, which would now be wrong. llama.cpp's
llama-quantize --allow-requantize does the same with its own quantizers. Needs the PyPI package
gguf (tools/setup_venv.sh).
"""

import argparse

import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, GGUFValueType as V, GGUFWriter
from gguf.quants import dequantize, quantize


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--type", required=True, choices=("Q8_0", "Q4_0", "F16", "F32"))
    args = ap.parse_args()
    qtype = Q[args.type]
    reader = GGUFReader(args.src)
    writer = GGUFWriter(args.dst, reader.get_field("general.architecture").contents())
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        vtype = V(field.types[0])
        writer.add_key_value(name, field.contents(), vtype, sub_type=V(field.types[1]) if vtype == V.ARRAY else None)
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))  # ggml dims are ne0 first
        values = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if len(shape) == 1 or qtype == Q.F32:
            writer.add_tensor(t.name, values)
        elif qtype == Q.F16:
            writer.add_tensor(t.name, values.astype(np.float16))
        else:
            writer.add_tensor(t.name, quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
