"""Write and read safetensors files (the project's model-file format) with numpy only.

Layout: 8-byte little-endian header length, JSON header, raw little-endian tensors.
Used by the converters and by the test-vector generators; the C reader is
nn/ee-safetensors.c.
"""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}
_NP = {"F32": np.float32, "F16": np.float16}


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (float32/float16, or torch bf16 via save_bf16);
    metadata: dict of str -> str (non-str values are JSON-encoded)."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        dtype = _DTYPES.get(arr.dtype)
        if dtype is None:
            raise ValueError(f"{name}: unsupported dtype {arr.dtype}")
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: v if isinstance(v, str) else json.dumps(v)
                                  for k, v in metadata.items()}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # keep the data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for c in chunks:
            f.write(c)


def load(path):
    """Returns (tensors as float32 numpy arrays, metadata dict)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        raw = data[base + b:base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=_NP[info["dtype"]]).astype(np.float32)
        out[name] = arr.reshape(info["shape"])
    return out, meta
