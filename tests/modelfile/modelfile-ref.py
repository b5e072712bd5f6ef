"""Reference files for test-modelfile, written and checked with numpy and torch.

  modelfile-ref.py CONVERT_DIR gen DIR        write the files test-modelfile reads
  modelfile-ref.py CONVERT_DIR check-npy DIR  check the .npy files it wrote

CONVERT_DIR is models/convert, for the project's own safetensors writer.
"""
import io
import json
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, sys.argv[1])
import eesafetensors  # noqa: E402

# Every half and every bfloat16, by bit pattern, NaNs and subnormals included.
ALL16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)


def npy_f4_values(shape):
    """The values test-modelfile writes: element i is i * 0.5 - 1."""
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32) * np.float32(0.5) - 1).reshape(shape)


def gen(d):
    rng = np.random.default_rng(7)
    f16_mat = rng.standard_normal((7, 3)).astype(np.float16)
    eesafetensors.save(f"{d}/ref.safetensors", {
        "f16_all": ALL16.view(np.float16),
        "f16_all_as_f32": ALL16.view(np.float16).astype(np.float32),
        "f16_mat": f16_mat,
        "f16_mat_as_f32": f16_mat.astype(np.float32),
        "f32_cube": np.arange(60, dtype=np.float32).reshape(3, 4, 5) / 8 - 3,
    }, {"format_version": "1", "arch": "test", "n_classes": 3})

    # eesafetensors writes no BF16, so this file is laid out by hand; torch
    # gives the reference conversion.
    bf16 = ALL16.astype("<u2").tobytes()
    ref = torch.from_numpy(ALL16.view(np.int16).copy()).view(torch.bfloat16)
    ref = ref.float().numpy().astype("<f4").tobytes()
    header = {
        "bf16_all": {"dtype": "BF16", "shape": [65536],
                     "data_offsets": [0, len(bf16)]},
        "bf16_all_as_f32": {"dtype": "F32", "shape": [65536],
                            "data_offsets": [len(bf16), len(bf16) + len(ref)]},
    }
    blob = json.dumps(header).encode()
    with open(f"{d}/bf16.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + bf16 + ref)

    np.save(f"{d}/py_f4.npy", npy_f4_values((2, 3, 4)))
    np.save(f"{d}/py_f8.npy", np.arange(1, 6) * 0.1)
    np.save(f"{d}/py_scalar.npy", np.float32(2.5))
    np.save(f"{d}/py_empty.npy", np.zeros((0, 7), np.float32))
    np.save(f"{d}/py_fortran.npy", np.asfortranarray(npy_f4_values((3, 4))))
    np.save(f"{d}/py_big_endian.npy", npy_f4_values((3,)).astype(">f4"))
    np.save(f"{d}/py_int32.npy", np.arange(3, dtype=np.int32))
    np.save(f"{d}/py_5d.npy", np.zeros((1, 1, 1, 1, 2), np.float32))


def check_npy(d):
    """The C writer's files must load and equal np.save's output byte for byte."""
    for name, shape in (("c_4d", (2, 3, 4, 5)), ("c_1d", (3,)),
                        ("c_scalar", ()), ("c_empty", (0, 7))):
        arr = np.load(f"{d}/{name}.npy")
        want = npy_f4_values(shape)
        if arr.dtype != np.dtype("<f4") or arr.shape != shape:
            sys.exit(f"{name}.npy: got {arr.dtype} {arr.shape}, want <f4 {shape}")
        if not np.array_equal(arr, want):
            sys.exit(f"{name}.npy: values differ")
        buf = io.BytesIO()
        np.save(buf, want)
        with open(f"{d}/{name}.npy", "rb") as f:
            if f.read() != buf.getvalue():
                sys.exit(f"{name}.npy: bytes differ from np.save's")


if __name__ == "__main__":
    {"gen": gen, "check-npy": check_npy}[sys.argv[2]](sys.argv[3])
