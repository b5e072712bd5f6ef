#!/usr/bin/python3
"""The final exit's density map out of the runtime (`earlyexit run --json`).

For random-weight AudioCSRNet files written by the converter, one with the `sum`
count head and one with the `dense` head (with its bias), on random inputs:

- the final exit has a map of the model's 1/8 grid (input 256x128: 32x16) and no
  other exit has one;
- the map's sum equals the exit's count: to float rounding in fp32
  (|sum - count| <= SUM_TOL * max(1, |count|)), and in bf16 likewise (the count
  is the sum of the same map, so only the order of the additions differs);
- the map is what the reference (tests/reference/run_ref.py, float64) says it is:
  count_scale * D for `sum`, and count_scale * (dense.weight * D + dense.bias /
  cells) for `dense`, each cell within MAP_TOL * max(1, max |map|) in fp32 and
  BF16_MAP_TOL in bf16 (convolutions in bf16; skipped on a CPU without bf16,
  saying so).

Usage: test_density_map.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import audiocsrnet_ref as ref  # noqa: E402

CONVERT = os.path.join(ROOT, "models", "convert", "audiocsrnet.py")
RUN_REF = os.path.join(ROOT, "tests", "reference", "run_ref.py")
SUM_TOL = 1e-5
MAP_TOL = 1e-4
BF16_MAP_TOL = 3e-2
BASE = ["--width-div", "8", "--input-size", "256x128"]
CONFIGS = {
    "sum-head": [],
    "dense-head": ["--count-head", "dense", "--dense-bias", "true", "--bn-affine", "true"],
}


def run(cmd, allow_fail=False):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0 and not allow_fail:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p


def expected_map(model, density):
    """The map the model format promises, from the reference's D (float64)."""
    cfg, tensors = ref.load_model(model)
    d = np.asarray(density, dtype=np.float64)
    scale = cfg["count_scale"]
    if cfg["count_head"] == "sum":
        return scale * d
    w = np.asarray(tensors["dense.weight"], dtype=np.float64).reshape(d.shape)
    b = float(tensors["dense.bias"][0]) if cfg["dense_bias"] else 0.0
    return scale * (w * d + b / d.size)


def check(name, label, got, want_map, tol):
    exits = {e["name"]: e for e in got["exits"]}
    with_map = [k for k, e in exits.items() if "map" in e]
    if with_map != ["final"]:
        sys.exit(f"{name} {label}: exits with a map {with_map}, expected ['final']")
    m = exits["final"]["map"]
    grid = np.array(m["values"], dtype=np.float64)
    if (m["height"], m["width"]) != want_map.shape or grid.size != want_map.size:
        sys.exit(f"{name} {label}: map {m['width']}x{m['height']} ({grid.size} values), "
                 f"expected {want_map.shape[1]}x{want_map.shape[0]}")
    grid = grid.reshape(want_map.shape)
    count = exits["final"]["value"]
    sum_err = abs(grid.sum() - count) / max(1.0, abs(count))
    map_err = np.abs(grid - want_map).max() / max(1.0, np.abs(want_map).max())
    print(f"{name:10s} {label:5s} count {count:+.6e} map sum {grid.sum():+.6e} "
          f"(rel {sum_err:.1e}), map vs reference max rel {map_err:.1e}")
    if sum_err > SUM_TOL:
        sys.exit(f"{name} {label}: map sum {grid.sum()} != count {count} "
                 f"(relative {sum_err:.2e} > {SUM_TOL})")
    if map_err > tol:
        sys.exit(f"{name} {label}: map differs from the reference by {map_err:.2e} > {tol}")


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    bf16_skipped = None
    for seed, (name, extra) in enumerate(CONFIGS.items()):
        model = os.path.join(work, f"{name}.safetensors")
        run([py, CONVERT, "--random", "--seed", str(seed + 7), "--out", model] + BASE + extra)
        rng = np.random.default_rng(seed)
        img = os.path.join(work, f"{name}.image.npy")
        mel = os.path.join(work, f"{name}.audio.npy")
        dens = os.path.join(work, f"{name}.density.npy")
        np.save(img, rng.standard_normal((1, 3, 128, 256)).astype(np.float32))
        np.save(mel, rng.uniform(-4.6, 2.0, (1, 1, 96, 64)).astype(np.float32))
        run([py, RUN_REF, model, "--image", img, "--audio", mel, "--preprocessed",
             "--density", dens])
        want = expected_map(model, np.load(dens))
        args = [ee, "run", model, "--image", img, "--audio", mel, "--json"]
        check(name, "fp32", json.loads(run(args).stdout), want, MAP_TOL)
        if bf16_skipped:
            continue
        p = run(args + ["--precision", "bf16"], allow_fail=True)
        if p.returncode != 0 and "cannot compute in bf16" in p.stderr:
            bf16_skipped = p.stderr.strip()
            print(f"bf16 skipped: {bf16_skipped}")
            continue
        if p.returncode != 0:
            sys.exit(f"FAILED: {' '.join(args)} --precision bf16\n{p.stderr}")
        check(name, "bf16", json.loads(p.stdout), want, BF16_MAP_TOL)
    print("the final exit's map sums to its count and matches the reference")


if __name__ == "__main__":
    main()
