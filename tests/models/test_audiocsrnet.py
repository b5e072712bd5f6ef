#!/usr/bin/python3
"""Golden tests of the C AudioCSRNet (earlyexit run) against the PyTorch reference
(tests/reference/, float64) on random-weight model files written by the converter.

Every configuration switch of MODELS.md is exercised by at least one model:
exit kind (slvit, cnn), bn_affine, count_head (sum, dense +/- bias), last_residual,
final_ln, mlp_out_gelu, head_act, ln_eps, audio_token, channel order, width scale.

Tolerance: |engine - reference| <= TOL * max(1, |reference|) per exit value, the
engine computing in float32 and the reference in float64.

Usage: test_audiocsrnet.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CONVERT = os.path.join(ROOT, "models", "convert", "audiocsrnet.py")
RUN_REF = os.path.join(ROOT, "tests", "reference", "run_ref.py")
TOL = 1e-4

BASE = ["--width-div", "8", "--input-size", "256x128"]
CONFIGS = {
    "slvit-default": [],
    "slvit-switches": ["--bn-affine", "true", "--count-head", "dense", "--dense-bias", "true",
                       "--last-residual", "false", "--final-ln", "true",
                       "--mlp-out-gelu", "true", "--head-act", "relu", "--ln-eps", "1e-3",
                       "--channel-order", "bgr", "--heads", "3", "--dim", "16", "--patch", "4"],
    "slvit-no-audio-token": ["--audio-token", "none", "--count-head", "dense"],
    "cnn": ["--exit-kind", "cnn"],
    "cnn-valid-no-film": ["--exit-kind", "cnn", "--cnn-padding", "0", "--cnn-pool", "2",
                          "--cnn-film", "false", "--bn-affine", "true"],
}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    worst = 0.0
    for seed, (name, extra) in enumerate(CONFIGS.items()):
        model = os.path.join(work, f"{name}.safetensors")
        run([py, CONVERT, "--random", "--seed", str(seed + 1), "--out", model] + BASE + extra)
        rng = np.random.default_rng(100 + seed)
        img = os.path.join(work, f"{name}.image.npy")
        mel = os.path.join(work, f"{name}.audio.npy")
        np.save(img, rng.standard_normal((1, 3, 128, 256)).astype(np.float32))
        np.save(mel, rng.uniform(-4.6, 2.0, (1, 1, 96, 64)).astype(np.float32))
        ref = json.loads(run([py, RUN_REF, model, "--image", img, "--audio", mel,
                              "--preprocessed"]))["exits"]
        got = json.loads(run([ee, "run", model, "--image", img, "--audio", mel, "--json"]))
        got = {e["name"]: e["value"] for e in got["exits"]}
        if set(got) != set(ref):
            sys.exit(f"{name}: exits {sorted(got)} != reference {sorted(ref)}")
        for k in ref:
            err = abs(got[k] - ref[k]) / max(1.0, abs(ref[k]))
            worst = max(worst, err)
            status = "ok" if err <= TOL else "FAIL"
            print(f"{name:22s} {k:6s} engine {got[k]:+.7e} reference {ref[k]:+.7e} "
                  f"rel err {err:.2e} {status}")
            if err > TOL:
                sys.exit(f"{name}/{k}: relative error {err:.2e} > {TOL}")

        # a subset of exits and the no-audio path
        sub = json.loads(run([ee, "run", model, "--image", img, "--audio", mel, "--json",
                              "--exits", "v1"]))
        if [e["name"] for e in sub["exits"]] != ["v1"] or \
                abs(sub["exits"][0]["value"] - got["v1"]) > 1e-6 * max(1, abs(got["v1"])):
            sys.exit(f"{name}: --exits v1 gave {sub}")
        info = json.loads(run([ee, "info", model, "--json"]))
        visual = [e["name"] for e in info["exits"] if not e["uses_audio"]]
        vis = json.loads(run([ee, "run", model, "--image", img, "--json"]))
        if [e["name"] for e in vis["exits"]] != visual or \
                sorted(vis.get("skipped_no_audio", [])) != sorted(set(got) - set(visual)):
            sys.exit(f"{name}: without audio expected only {visual}, got {vis}")
    print(f"all {len(CONFIGS)} configurations match; worst relative error {worst:.2e} "
          f"(tolerance {TOL})")


if __name__ == "__main__":
    main()
