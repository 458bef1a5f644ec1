#!/usr/bin/env python3
"""Crafted bundles for tests/test_hostile.cpp, made with the project's Python writer.

    hostile_bundles.py --gpt2 LM.ecr --full FULL.ecr --out DIR

LM.ecr is a bundle with one GPT-2 component `lm` (tests/model_fixtures.hpp gpt2_fixture);
FULL.ecr has a Recommender's and a Responder's components, the KG and review entities
(tests/responder_fixture.hpp). Each variant breaks one thing a loader must refuse (or, for
`unused_zeros.ecr`, one thing it must not pay for); the test names what each must say.
"""

import argparse
import copy
import json
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # the repository root
from tools.ecr_bundle import BundleWriter, dumps_metadata, read_bundle  # noqa: E402


def write(path, metadata, tensors, codecs=None, metadata_text=None, patch=None):
    """Writes a bundle; metadata_text replaces the metadata bytes verbatim (the writer's own JSON
    check would recurse on deep documents), patch(entries) edits the table rows before layout."""
    w = BundleWriter({"ecr_bundle": 1} if metadata_text is not None else metadata)
    for name, array in tensors.items():
        w.add(name, array, codec=(codecs or {}).get(name, "raw"), dtype="bf16" if name.endswith(".bf16") else None)
    if metadata_text is not None:
        w._metadata = metadata_text.encode("utf-8")
    if patch:
        patch(w._entries)
    w.write(path)


def with_value(tensors, name, index, value, dtype=None):
    out = dict(tensors)
    a = np.array(tensors[name], dtype=dtype or tensors[name].dtype)
    a[index] = value
    out[name] = a
    return out


def set_shape(entries, name, shape):
    for i, e in enumerate(entries):
        if e[0] == name.encode():
            entries[i] = (e[0], e[1], e[2], tuple(shape), e[4], e[5])


def deep(levels):
    return "[" * levels + "]" * levels


def zstd_zeros(nbytes):
    """A valid zstd frame of `nbytes` zero bytes in RLE blocks of 128 KiB, 4 bytes each (4 GiB in
    128 KiB), as a compressor may write a tensor of zeros; the window is 128 KiB."""
    block = 1 << 17
    frame = bytearray(struct.pack("<IBBQ", 0xFD2FB528, 0xC0, (17 - 10) << 3, nbytes))
    for begin in range(0, nbytes, block):
        size = min(block, nbytes - begin)
        last = begin + size == nbytes
        frame += struct.pack("<I", int(last) | 1 << 1 | size << 3)  # 3-byte header (RLE), then the byte 0
    return bytes(frame)


def add_zeros_f32(entries, name, count, short=False):
    """Appends a zstd tensor of `count` f32 zeros to a writer's table (patch=); `short` drops the
    frame's last block."""
    stored = zstd_zeros(4 * count)[:-4 if short else None]
    entries.append((name.encode(), 0, 1, (count,), stored, zlib.crc32(stored)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gpt2", required=True)
    p.add_argument("--full", required=True)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    out = lambda name: os.path.join(a.out, name)  # noqa: E731

    meta, t = read_bundle(a.gpt2)
    wte, fc = "lm/transformer.wte.weight", "lm/transformer.h.0.mlp.c_fc.weight"
    ln = "lm/transformer.h.1.ln_2.bias"

    # Weights that are not finite, in every floating dtype and codec.
    write(out("nan_f32.ecr"), meta, with_value(t, wte, (3, 5), np.nan))
    write(out("inf_f32.ecr"), meta, with_value(t, fc, (0, 0), -np.inf))
    write(out("nan_zstd.ecr"), meta, with_value(t, wte, (7, 1), np.nan), codecs={wte: "zstd"})
    half = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in t.items()}
    write(out("inf_f16.ecr"), meta, with_value(half, ln, 0, np.inf))
    bits = np.zeros(16, dtype=np.uint16)
    bits[9] = 0x7FC0  # a bf16 NaN
    write(out("nan_bf16.ecr"), meta, {**t, "extra/weights.bf16": bits})

    # layer_norm_epsilon that turns every hidden state into NaN.
    for name, value in [("eps_negative", -1e-5), ("eps_zero", 0)]:
        m = copy.deepcopy(meta)
        m["components"]["lm"]["config"]["layer_norm_epsilon"] = value
        write(out(f"{name}.ecr"), m, t)
    # 1e300 is a double but no float: it becomes infinity as the model reads it.
    text = dumps_metadata(meta).replace('"layer_norm_epsilon":1e-05', '"layer_norm_epsilon":1e300')
    assert "1e300" in text
    write(out("eps_inf.ecr"), None, t, metadata_text=text)

    # zstd frames whose size is not the tensor's: 32 GiB claimed by a 1 MiB frame, and a frame of
    # 4000 bytes for a shape of 8000.
    rng = np.random.default_rng(1)
    blob = {**t, "extra/blob": rng.standard_normal(1 << 18).astype(np.float32)}
    write(out("zstd_32gib.ecr"), meta, blob, codecs={"extra/blob": "zstd"},
          patch=lambda e: set_shape(e, "extra/blob", (8, 1 << 30)))
    small = {**t, "extra/small": np.ones(1000, dtype=np.float32)}
    write(out("zstd_mismatch.ecr"), meta, small, codecs={"extra/small": "zstd"},
          patch=lambda e: set_shape(e, "extra/small", (2000,)))
    # A legitimate 256 MiB tensor of zeros that no component uses (a few KiB of zstd).
    zeros = {**t, "extra/zeros": np.zeros(1 << 26, dtype=np.float32)}
    write(out("unused_zeros.ecr"), meta, zeros, codecs={"extra/zeros": "zstd"})
    # A legitimate 4 GiB tensor of zeros in a 128 KiB frame: verified by streaming, never held.
    write(out("zeros_4gib.ecr"), meta, t, patch=lambda e: add_zeros_f32(e, "extra/zeros", 1 << 30))

    # ... and the same frame without its last block.
    write(out("zeros_short.ecr"), meta, t, patch=lambda e: add_zeros_f32(e, "extra/zeros", 1 << 20, short=True))

    # More layers than the bundle has: one more, and past its tensor count up to the config limit.
    for layers in (3, 1 << 20, 1 << 24, 1 << 30):
        m = copy.deepcopy(meta)
        m["components"]["lm"]["config"]["n_layer"] = layers
        write(out(f"n_layer_{layers}.ecr"), m, t)

    # Metadata nested too deep (100,000 levels; one past the limit) and just deep enough.
    base = dumps_metadata(meta)
    write(out("deep_100k.ecr"), None, t, metadata_text=base[:-1] + ',"deep":' + deep(100000) + "}")
    write(out("deep_65.ecr"), None, t, metadata_text=base[:-1] + ',"deep":' + deep(64) + "}")
    write(out("deep_64.ecr"), None, t, metadata_text=base[:-1] + ',"deep":' + deep(63) + "}")

    # "untrained" that is not a boolean.
    write(out("untrained_yes.ecr"), {**meta, "untrained": "yes"}, t)
    write(out("untrained_one.ecr"), {**meta, "untrained": 1}, t)

    # A tensor name that would drive a terminal.
    write(out("escape_name.ecr"), meta, {**t, "extra/\x1b[2J\x1b]0;owned\x07": np.zeros(2, dtype=np.float32)})

    # The full bundle: a tokenizer id past the model's vocab, review ids outside the KG, a NaN
    # in the rec prompt.
    fmeta, ft = read_bundle(a.full)
    m = copy.deepcopy(fmeta)
    backbone_tokenizer = m["components"]["backbone"]["tokenizer"]
    vocab = m["components"]["backbone"]["config"]["vocab_size"]
    m["tokenizers"][backbone_tokenizer].setdefault("added_tokens", {})["<evil>"] = vocab + 5
    write(out("tokenizer_beyond_vocab.ecr"), m, ft)
    write(out("review_movie_out.ecr"), fmeta, with_value(ft, "review_entities/movie_kg_ids", 0, 100000))
    write(out("review_entity_out.ecr"), fmeta, with_value(ft, "review_entities/entity_kg_ids", 0, 100000))
    prompt = next(k for k in sorted(ft) if k.startswith("rec_prompt/") and ft[k].dtype == np.float32)
    write(out("nan_rec_prompt.ecr"), fmeta, with_value(ft, prompt, (0,) * ft[prompt].ndim, np.nan))
    with open(out("nan_rec_prompt.name"), "w") as f:
        f.write(prompt)
    write(out("full_untrained_yes.ecr"), {**fmeta, "untrained": "yes"}, ft)


if __name__ == "__main__":
    main()
