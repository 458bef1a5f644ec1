"""Reads and writes `ecr` bundle files (docs/format.md), byte-identical to the C++ BundleWriter.

    from ecr_bundle import BundleWriter, read_bundle
    w = BundleWriter({"ecr_bundle": 1, "components": {}})   # or the metadata text, stored verbatim
    w.add("backbone/transformer.wte.weight", array)         # numpy array or torch tensor
    w.add("backbone/x", array, codec="zstd", level=3)
    w.write("model.ecr")
    metadata, tensors = read_bundle("model.ecr")             # bf16 comes back as uint16 bits

    python3 -m tools.ecr_bundle inspect FILE [--metadata]

zstd goes through ctypes to the system libzstd, so a frame is what the C++ writer's
ZSTD_compress makes at the same level with the same library.
"""

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import struct
import sys
import zlib

import numpy as np

MAGIC = b"ECRBUNDL"
VERSION = 1
ALIGNMENT = 64
HEADER_SIZE = 64
MAX_NAME = 4096
MAX_RANK = 8
DEFAULT_ZSTD_LEVEL = 3

# Codes are part of the format.
DTYPES = {"f32": 0, "f16": 1, "bf16": 2, "i32": 3, "i64": 4, "i8": 5, "u8": 6}
DTYPE_NAMES = {code: name for name, code in DTYPES.items()}
# numpy dtype each format dtype is read into (bf16: its raw bits).
NUMPY_OF = {"f32": "<f4", "f16": "<f2", "bf16": "<u2", "i32": "<i4", "i64": "<i8", "i8": "i1", "u8": "u1"}
_FROM_NUMPY = {np.dtype(np.float32): "f32", np.dtype(np.float16): "f16", np.dtype(np.int32): "i32",
               np.dtype(np.int64): "i64", np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8"}
CODECS = {"raw": 0, "zstd": 1}
CODEC_NAMES = {code: name for name, code in CODECS.items()}

_HEADER = struct.Struct("<8sIIQQQQQII")
assert _HEADER.size == HEADER_SIZE


class BundleError(Exception):
    """A malformed bundle or a tensor the format cannot hold."""


def dumps_metadata(obj):
    """The canonical metadata text: compact, sorted keys, UTF-8 (what the C++ writer produces)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


# --- zstd through the system library -----------------------------------------------------------

class _Zstd:
    CONTENTSIZE_UNKNOWN = (1 << 64) - 1
    CONTENTSIZE_ERROR = (1 << 64) - 2

    def __init__(self):
        name = ctypes.util.find_library("zstd") or "libzstd.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as e:
            raise BundleError(f"zstd codec needs the system libzstd ({name}): {e}") from None
        size_t, p = ctypes.c_size_t, ctypes.c_void_p
        lib.ZSTD_compressBound.argtypes, lib.ZSTD_compressBound.restype = [size_t], size_t
        lib.ZSTD_compress.argtypes, lib.ZSTD_compress.restype = [p, size_t, p, size_t, ctypes.c_int], size_t
        lib.ZSTD_decompress.argtypes, lib.ZSTD_decompress.restype = [p, size_t, p, size_t], size_t
        lib.ZSTD_isError.argtypes, lib.ZSTD_isError.restype = [size_t], ctypes.c_uint
        lib.ZSTD_getErrorName.argtypes, lib.ZSTD_getErrorName.restype = [size_t], ctypes.c_char_p
        lib.ZSTD_getFrameContentSize.argtypes, lib.ZSTD_getFrameContentSize.restype = [p, size_t], ctypes.c_ulonglong
        self.lib = lib

    def _check(self, code, what):
        if self.lib.ZSTD_isError(code):
            raise BundleError(f"{what}: {self.lib.ZSTD_getErrorName(code).decode()}")
        return code

    def compress(self, data, level):
        src = np.frombuffer(data, dtype=np.uint8)
        dst = np.empty(self.lib.ZSTD_compressBound(src.size), dtype=np.uint8)
        n = self._check(self.lib.ZSTD_compress(dst.ctypes.data, dst.size, src.ctypes.data, src.size, level),
                        "ZSTD_compress")
        return dst[:n].tobytes()

    def decompress(self, frame, expected_size, what):
        src = np.frombuffer(frame, dtype=np.uint8)
        declared = self.lib.ZSTD_getFrameContentSize(src.ctypes.data, src.size)
        if declared in (self.CONTENTSIZE_UNKNOWN, self.CONTENTSIZE_ERROR) or declared != expected_size:
            raise BundleError(f"{what}: zstd frame declares {declared} bytes, expected {expected_size}")
        dst = np.empty(expected_size, dtype=np.uint8)
        n = self._check(self.lib.ZSTD_decompress(dst.ctypes.data, dst.size, src.ctypes.data, src.size), what)
        if n != expected_size:
            raise BundleError(f"{what}: zstd frame decompressed to {n} bytes, expected {expected_size}")
        return dst


_zstd = None


def zstd():
    global _zstd
    if _zstd is None:
        _zstd = _Zstd()
    return _zstd


# --- writing ----------------------------------------------------------------------------------

def _as_numpy(array, dtype):
    """(format dtype name, C-contiguous little-endian numpy array) for a numpy array or torch tensor.
    A uint16 numpy array passes as bf16 bits when dtype="bf16"."""
    if type(array).__module__.startswith("torch"):
        import torch
        t = array.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            name, a = "bf16", t.view(torch.int16).numpy().view(np.uint16)
        elif t.dtype == torch.bool:
            name, a = "u8", t.to(torch.uint8).numpy()
        else:
            a = t.numpy()
            name = _FROM_NUMPY.get(a.dtype)
            if name is None:
                raise BundleError(f"torch dtype {t.dtype} has no bundle dtype (cast to f32/f16/bf16/i32/i64/i8/u8)")
    else:
        a = np.asarray(array)
        if a.dtype == np.bool_:
            a = a.astype(np.uint8)
        if dtype == "bf16" and a.dtype == np.uint16:
            name = "bf16"
        else:
            name = _FROM_NUMPY.get(a.dtype.newbyteorder("="))
            if name is None:
                raise BundleError(f"numpy dtype {a.dtype} has no bundle dtype (cast to float32/float16/int32/"
                                  "int64/int8/uint8, or pass uint16 bits with dtype='bf16')")
    if dtype is not None and dtype != name:
        raise BundleError(f"array is {name}, not {dtype}")
    # np.require keeps rank 0 (np.ascontiguousarray would make a scalar 1-d).
    a = np.require(a.astype(a.dtype.newbyteorder("<"), copy=False), requirements="C")
    return name, a


class BundleWriter:
    """Collects metadata and tensors; to_bytes()/write() lay them out as docs/format.md says."""

    def __init__(self, metadata):
        if isinstance(metadata, str):
            text = metadata
            try:
                parsed = json.loads(text)
            except ValueError as e:
                raise BundleError(f"metadata is not valid JSON: {e}") from None
        else:
            parsed, text = metadata, dumps_metadata(metadata)
        if not isinstance(parsed, dict):
            raise BundleError("metadata must be a JSON object")
        self._metadata = text.encode("utf-8")
        self._entries = []  # (name bytes, dtype code, codec code, shape, stored buffer, crc)
        self._names = set()

    def add(self, name, array, codec="raw", level=DEFAULT_ZSTD_LEVEL, dtype=None):
        """Adds a tensor. `array`: numpy array or torch tensor (f32, f16, bf16, i32, i64, i8, u8;
        bool is stored as u8). `dtype` optionally asserts the format dtype ("bf16" lets a uint16
        numpy array of raw bits through)."""
        encoded = name.encode("utf-8")
        if not 1 <= len(encoded) <= MAX_NAME or "\0" in name:
            raise BundleError(f"tensor name {name!r}: must be 1..{MAX_NAME} UTF-8 bytes without NUL")
        if name in self._names:
            raise BundleError(f"tensor name {name!r} is used twice")
        if codec not in CODECS:
            raise BundleError(f"tensor {name!r}: unknown codec {codec!r} (raw or zstd)")
        dtype_name, a = _as_numpy(array, dtype)
        if a.ndim > MAX_RANK:
            raise BundleError(f"tensor {name!r}: rank {a.ndim} > {MAX_RANK}")
        data = memoryview(a.reshape(-1).view(np.uint8))
        stored = zstd().compress(data, level) if codec == "zstd" else data
        self._names.add(name)
        self._entries.append((encoded, DTYPES[dtype_name], CODECS[codec], tuple(a.shape), stored,
                              zlib.crc32(stored)))

    def _layout(self):
        """(header + metadata + table bytes, [(data_offset, stored buffer)], file size)."""
        rows, sizes = [], []
        for encoded, dtype, codec, shape, stored, crc in self._entries:
            sizes.append(len(stored))
            rows.append((encoded, dtype, codec, shape, crc))
        table_size = sum(4 + len(e) + 4 + 8 * len(shape) + 8 + 8 + 4 + 4 for e, _, _, shape, _ in rows)
        table_offset = HEADER_SIZE + len(self._metadata)
        cursor = table_offset + table_size
        offsets = []
        for size in sizes:
            cursor = -(-cursor // ALIGNMENT) * ALIGNMENT
            offsets.append(cursor)
            cursor += size
        table = bytearray()
        for (encoded, dtype, codec, shape, crc), offset, size in zip(rows, offsets, sizes):
            table += struct.pack("<I", len(encoded)) + encoded
            table += struct.pack("<BBBB", dtype, codec, len(shape), 0)
            table += struct.pack(f"<{len(shape)}Q", *shape)
            table += struct.pack("<QQII", offset, size, crc, 0)
        assert len(table) == table_size
        header = _HEADER.pack(MAGIC, VERSION, ALIGNMENT, HEADER_SIZE, len(self._metadata), table_offset,
                              table_size, len(self._entries), zlib.crc32(self._metadata), zlib.crc32(table))
        prologue = header + self._metadata + bytes(table)
        return prologue, list(zip(offsets, (e[4] for e in self._entries))), cursor

    def _chunks(self):
        prologue, placed, _ = self._layout()
        yield prologue
        cursor = len(prologue)
        for offset, stored in placed:
            yield bytes(offset - cursor)
            yield stored
            cursor = offset + len(stored)

    def to_bytes(self):
        return b"".join(self._chunks())

    def write(self, path):
        """Writes to PATH.tmp and renames, so a failure never leaves a half-written bundle."""
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as f:
            for chunk in self._chunks():
                f.write(chunk)
        os.replace(tmp, path)


# --- reading ----------------------------------------------------------------------------------

def parse_bundle(buf, label="<memory>"):
    """Validates a bundle image (bytes, mmap, ...) and returns (header dict, metadata text, entries).
    Each entry: dict(name, dtype, codec, shape, offset, stored_size, crc32)."""
    def fail(msg):
        raise BundleError(f"bundle '{label}': {msg}")

    size = len(buf)
    if size < HEADER_SIZE:
        fail(f"file is {size} bytes, shorter than the 64-byte header")
    (magic, version, alignment, meta_off, meta_size, table_off, table_size, count, meta_crc,
     table_crc) = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        fail(f"magic is {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        fail(f"version {version}, expected {VERSION}")
    if alignment != ALIGNMENT:
        fail(f"alignment {alignment}, expected {ALIGNMENT}")
    if meta_off != HEADER_SIZE or table_off != meta_off + meta_size or table_off + table_size > size:
        fail(f"metadata [{meta_off}, +{meta_size}) / table [{table_off}, +{table_size}) do not fit a "
             f"{size}-byte file in order")
    meta = bytes(buf[meta_off:meta_off + meta_size])
    if zlib.crc32(meta) != meta_crc:
        fail("metadata CRC-32 mismatch")
    table = bytes(buf[table_off:table_off + table_size])
    if zlib.crc32(table) != table_crc:
        fail("table CRC-32 mismatch")
    try:
        text = meta.decode("utf-8")
        if not isinstance(json.loads(text), dict):
            fail("metadata is not a JSON object")
    except ValueError as e:
        fail(f"metadata is not UTF-8 JSON: {e}")

    entries, names, pos = [], set(), 0
    for i in range(count):
        def take(n, what):
            nonlocal pos
            if pos + n > table_size:
                fail(f"table entry {i}: {what} runs past the table")
            out = table[pos:pos + n]
            pos += n
            return out
        (name_len,) = struct.unpack("<I", take(4, "name length"))
        if not 1 <= name_len <= MAX_NAME:
            fail(f"table entry {i}: name length {name_len} outside 1..{MAX_NAME}")
        try:
            name = take(name_len, "name").decode("utf-8")
        except UnicodeDecodeError:
            fail(f"table entry {i}: name is not UTF-8")
        if "\0" in name or name in names:
            fail(f"tensor '{name}': name contains NUL or is not unique")
        names.add(name)
        dtype, codec, rank, reserved = struct.unpack("<BBBB", take(4, "dtype/codec/rank"))
        if dtype not in DTYPE_NAMES or codec not in CODEC_NAMES or rank > MAX_RANK or reserved:
            fail(f"tensor '{name}': dtype {dtype}, codec {codec}, rank {rank}, reserved {reserved} not known")
        shape = struct.unpack(f"<{rank}Q", take(8 * rank, "dims"))
        offset, stored_size, crc, reserved2 = struct.unpack("<QQII", take(24, "offset/size/crc"))
        if reserved2:
            fail(f"tensor '{name}': reserved field is {reserved2}, expected 0")
        numel = 1
        for d in shape:
            numel *= d
        if numel >= 1 << 63:
            fail(f"tensor '{name}': element count overflows")
        raw_size = numel * np.dtype(NUMPY_OF[DTYPE_NAMES[dtype]]).itemsize
        if codec == CODECS["raw"] and stored_size != raw_size:
            fail(f"tensor '{name}': stored_size {stored_size}, expected {raw_size}")
        if offset % ALIGNMENT or offset < table_off + table_size or offset + stored_size > size:
            fail(f"tensor '{name}': data [{offset}, +{stored_size}) misaligned or outside the file")
        entries.append(dict(name=name, dtype=DTYPE_NAMES[dtype], codec=CODEC_NAMES[codec], shape=shape,
                            offset=offset, stored_size=stored_size, crc32=crc, raw_size=raw_size))
    if pos != table_size:
        fail(f"table has {table_size - pos} bytes after its {count} entries")
    # A zero-size tensor occupies no bytes, so it may share its offset with the next one.
    spans = sorted((e["offset"], e["offset"] + e["stored_size"], e["name"]) for e in entries if e["stored_size"])
    for (_, end, a), (begin, _, b) in zip(spans, spans[1:]):
        if begin < end:
            fail(f"tensors '{a}' and '{b}' overlap")
    header = dict(version=version, alignment=alignment, metadata_size=meta_size, table_size=table_size,
                  tensor_count=count, file_size=size)
    return header, text, entries


def read_metadata(path):
    """The metadata dict of the bundle at `path`, reading the header and metadata only."""
    with open(path, "rb") as f:
        header = f.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            raise BundleError(f"bundle '{path}': shorter than the 64-byte header")
        _, _, _, meta_off, meta_size, *_ = _HEADER.unpack_from(header, 0)
        f.seek(meta_off)
        return json.loads(f.read(meta_size).decode("utf-8"))


def read_bundle(path, bf16_as_f32=False):
    """(metadata dict, {name: numpy array}) with every CRC checked. Raw tensors are read-only views
    of a memory map; bf16 tensors are uint16 arrays of the raw bits unless bf16_as_f32."""
    with open(path, "rb") as f:
        buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if f.seek(0, 2) else b""
    _, text, entries = parse_bundle(buf, str(path))
    tensors = {}
    for e in entries:
        stored = memoryview(buf)[e["offset"]:e["offset"] + e["stored_size"]]
        if zlib.crc32(stored) != e["crc32"]:
            raise BundleError(f"bundle '{path}': tensor '{e['name']}': CRC-32 mismatch")
        if e["codec"] == "zstd":
            stored = zstd().decompress(stored, e["raw_size"], f"bundle '{path}': tensor '{e['name']}'")
        a = np.frombuffer(stored, dtype=NUMPY_OF[e["dtype"]]).reshape(e["shape"])
        if e["dtype"] == "bf16" and bf16_as_f32:
            a = bf16_bits_to_f32(a)
        tensors[e["name"]] = a
    return json.loads(text), tensors


def bf16_bits_to_f32(bits):
    """float32 values of bf16 raw bits (exact)."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


# --- command line -----------------------------------------------------------------------------

def _inspect(path, show_metadata):
    with open(path, "rb") as f:
        buf = f.read()
    header, text, entries = parse_bundle(buf, path)
    print(f"{path}: version {header['version']}, {header['file_size']} bytes, metadata {header['metadata_size']} "
          f"bytes, {header['tensor_count']} tensors")
    meta = json.loads(text)
    if show_metadata:
        print(json.dumps(meta, indent=2, ensure_ascii=False))
    else:
        for key, value in meta.items():
            summary = f"{{{', '.join(value)}}}" if isinstance(value, dict) else json.dumps(value, ensure_ascii=False)
            print(f"  {key}: {summary[:200]}")
    width = max([len(e["name"]) for e in entries] + [4])
    print(f"{'name':<{width}}  dtype  codec  {'shape':<20} {'offset':>12} {'stored':>12}  crc32")
    for e in entries:
        shape = "[" + ", ".join(map(str, e["shape"])) + "]"
        print(f"{e['name']:<{width}}  {e['dtype']:<5}  {e['codec']:<5}  {shape:<20} {e['offset']:>12} "
              f"{e['stored_size']:>12}  {e['crc32']:08x}")


def replace_component(bundle, donor, component, out, level=DEFAULT_ZSTD_LEVEL):
    """Writes `out`: `bundle` with component `component` (its metadata entry and every tensor named
    `component/...`) taken from `donor` instead; the rest is copied unchanged. Used to ship a
    retrained part (python3 -m tools.train --emotion-only --replace-in BUNDLE) without retraining
    the others. Each tensor keeps the codec it had (zstd recompressed at `level`)."""
    meta, tensors = read_bundle(bundle)
    donor_meta, donor_tensors = read_bundle(donor)
    def codecs(path):
        with open(path, "rb") as f:
            return {e["name"]: e["codec"] for e in parse_bundle(f.read(), path)[2]}
    for name, m in ((bundle, meta), (donor, donor_meta)):
        if component not in m.get("components", {}):
            raise BundleError(f"bundle '{name}' has no component {component!r}")
    prefix = component + "/"
    meta["components"][component] = donor_meta["components"][component]
    writer = BundleWriter(meta)
    for source, table, keep in ((bundle, tensors, False), (donor, donor_tensors, True)):
        codec = codecs(source)
        for name, a in table.items():
            if name.startswith(prefix) == keep:
                writer.add(name, a, codec=codec[name], level=level, dtype="bf16" if a.dtype == np.uint16 else None)
    writer.write(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description="ecr bundle files (docs/format.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("inspect", help="print the header, metadata summary and tensor table")
    p.add_argument("file")
    p.add_argument("--metadata", action="store_true", help="print the whole metadata JSON")
    p = sub.add_parser("replace", help="copy a bundle with one component taken from another bundle")
    p.add_argument("bundle")
    p.add_argument("--component", required=True)
    p.add_argument("--from", dest="donor", required=True, metavar="BUNDLE", help="the bundle to take it from")
    p.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "replace":
            replace_component(args.bundle, args.donor, args.component, args.out)
            return 0
        _inspect(args.file, args.metadata)
    except BrokenPipeError:  # `| head`
        sys.stderr.close()
    except (BundleError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
