"""Writes the fuzz seed corpus (tests/fuzz/corpus/): a few small valid files,
one from the project's writer, and one of each kind of malformation the reader
refuses. Run from the source root with the Python meson finds:
  /usr/bin/python3 tests/fuzz/make-corpus.py
"""
import json
import os
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
import eesafetensors  # noqa: E402

OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def raw(name, header, data=b""):
    """A file from a header given as a dict or as JSON text."""
    if not isinstance(header, str):
        header = json.dumps(header, separators=(",", ":"))
    blob = header.encode()
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + data)


def entry(dtype, shape, begin, end):
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def main():
    os.makedirs(OUT, exist_ok=True)
    eesafetensors.save(os.path.join(OUT, "valid-writer.safetensors"), {
        "conv.weight": np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5,
        "conv.bias": np.array([0, 1e-7, 65504, -np.inf], np.float16),
    }, {"format_version": "1", "arch": "seed"})
    raw("valid-bf16.safetensors",
        {"w": entry("BF16", [2, 2], 0, 8), "__metadata__": {"k": "v"}},
        struct.pack("<4H", 0x3f80, 0x8001, 0x7f80, 0xffc1))
    raw("valid-empty.safetensors", "{}")
    raw("valid-scalar-and-empty.safetensors",
        {"s": entry("F32", [], 0, 4), "z": entry("F16", [0, 5], 4, 4)},
        struct.pack("<f", 1.25))
    raw("invalid-overlap.safetensors",
        {"a": entry("F32", [2], 0, 8), "b": entry("F32", [2], 4, 12)},
        bytes(12))
    raw("invalid-size.safetensors", {"a": entry("F32", [5, 6], 0, 100)},
        bytes(120))
    raw("invalid-unsupported.safetensors", {"a": entry("I64", [1], 0, 8)},
        bytes(8))
    raw("invalid-metadata.safetensors", '{"__metadata__":{"n":3}}')
    raw("invalid-duplicate.safetensors",
        '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', bytes(8))
    raw("invalid-integer.safetensors",
        '{"a":{"dtype":"F32","shape":[18446744073709551617],'
        '"data_offsets":[0,4]}}', bytes(4))
    raw("invalid-json.safetensors", "{'a': [1, 2,]}")
    # json-glib alone reads a sequence of documents (found by fuzzing)
    raw("invalid-two-values.safetensors",
        '{}{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4))
    with open(os.path.join(OUT, "invalid-length.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 2**64 - 7) + b"{}")
    with open(os.path.join(OUT, "invalid-short.safetensors"), "wb") as f:
        f.write(b"\x02\x00\x00")


if __name__ == "__main__":
    main()
