#!/usr/bin/python3
"""`earlyexit calibrate` and `earlyexit run --precision int8` end to end.

On a model file without scales (the bundled CNN-exit model with its `int8` key
removed, written here):
- `run --precision int8` fails, saying to calibrate;
- `calibrate --data random:3` writes a file whose tensors and other metadata are
  the input's, byte for byte, plus `int8`: a range for every convolution of the
  model (its `*.weight` tensors of 4 dims), in_max > 0, out_max >= 0, in_min 0
  for inputs after a ReLU (frontend.1..) and < 0 for the image's (frontend.0);
- calibrating from a directory (two inputs: NAME.npy and NAME.audio.npy) works
  and a directory without images is refused;
- `run --precision int8` on the calibrated file gives every exit within 5% of
  the fp32 run on the same scene input (max(1, |fp32|)); the scales come from
  random pixels here, not scenes, hence the margin (docs/cpu-backend.md gives
  the held-out accuracy).
A CPU without VNNI refuses the int8 runs: the test then only checks calibrate
and says so.

Usage: test_calibrate.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
MODEL = os.path.join(ROOT, "models", "default", "crowd-synth-cnn.safetensors")


def read_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    return header, data


def write_without_int8(src, dst):
    header, data = read_header(src)
    header.get("__metadata__", {}).pop("int8", None)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + data)


def run(ee, *args, check=True):
    r = subprocess.run([ee, *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)}: {r.stderr}")
    return r


def values(ee, model, image, audio, precision):
    r = run(ee, "run", model, "--image", image, "--audio", audio, "--json",
            "--precision", precision, "--threads", "1")
    return {e["name"]: e["value"] for e in json.loads(r.stdout)["exits"]}


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    plain = os.path.join(work, "plain.safetensors")
    calibrated = os.path.join(work, "calibrated.safetensors")
    write_without_int8(MODEL, plain)
    rng = np.random.default_rng(5)
    data = os.path.join(work, "data")
    os.makedirs(data, exist_ok=True)
    for i in range(2):
        np.save(os.path.join(data, f"in{i}.npy"),
                rng.standard_normal((1, 3, 144, 256)).astype(np.float32))
        np.save(os.path.join(data, f"in{i}.audio.npy"),
                rng.uniform(-4, 2, (1, 1, 96, 64)).astype(np.float32))
    image, audio = os.path.join(data, "in0.npy"), os.path.join(data, "in0.audio.npy")

    vnni = True
    r = run(ee, "run", plain, "--image", image, "--audio", audio, "--precision", "int8",
            check=False)
    if "no VNNI" in r.stderr:
        vnni = False
        print(f"skip the int8 runs: {r.stderr.strip()}")
    elif r.returncode == 0 or "earlyexit calibrate" not in r.stderr:
        sys.exit(f"FAIL: int8 on a file without scales: status {r.returncode}, {r.stderr}")
    else:
        print(f"ok   refused without scales: {r.stderr.strip()}")

    run(ee, "calibrate", plain, "--data", "random:3", "--out", calibrated, "--threads", "1")
    h0, d0 = read_header(plain)
    h1, d1 = read_header(calibrated)
    m0, m1 = h0.pop("__metadata__"), h1.pop("__metadata__")
    assert d0 == d1 and h0 == h1, "tensors changed"
    assert {k: v for k, v in m1.items() if k != "int8"} == m0, "metadata changed"
    int8 = json.loads(m1["int8"])
    convs = sorted(k[:-len(".weight")] for k, v in h0.items()
                   if k.endswith(".weight") and len(v["shape"]) == 4)
    assert sorted(int8["ops"]) == convs, (sorted(int8["ops"]), convs)
    for name, (lo, hi, out) in int8["ops"].items():
        assert hi > 0 and out >= 0 and lo <= 0, (name, lo, hi, out)
    assert int8["ops"]["frontend.0"][0] < 0 and int8["ops"]["frontend.1"][0] == 0
    assert int8["method"] == "percentile" and int8["inputs"] == 3
    print(f"ok   calibrate random:3: {len(convs)} convolutions, tensors unchanged")

    from_dir = os.path.join(work, "from-dir.safetensors")
    run(ee, "calibrate", plain, "--data", data, "--out", from_dir, "--method", "entropy")
    assert json.loads(read_header(from_dir)[0]["__metadata__"]["int8"])["inputs"] == 2
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    r = run(ee, "calibrate", plain, "--data", empty, "--out", from_dir, check=False)
    assert r.returncode != 0 and "holds no images" in r.stderr, r.stderr
    print("ok   calibrate from a directory; an empty one refused")

    if vnni:
        ref = values(ee, calibrated, image, audio, "fp32")
        got = values(ee, calibrated, image, audio, "int8")
        for k, v in ref.items():
            err = abs(got[k] - v) / max(1.0, abs(v))
            print(f"{'ok  ' if err <= 0.05 else 'FAIL'} int8 {k}: {got[k]:.4g} fp32 {v:.4g} "
                  f"({100 * err:.2f}%)")
            assert err <= 0.05
    return 0


if __name__ == "__main__":
    sys.exit(main())
