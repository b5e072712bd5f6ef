#!/usr/bin/python3
"""Golden tests of the C AudioCSRNet (earlyexit run) against the PyTorch reference
(tests/reference/, float64) on random-weight model files written by the converter.

Every configuration switch of docs/models.md is exercised by at least one model:
exit kind (slvit, cnn), bn_affine, count_head (sum, dense +/- bias), last_residual,
final_ln, mlp_out_gelu, head_act, ln_eps, audio_token, channel order, width scale;
both variants: PyTorch-reference style (BN without affine, eps 1e-5, DISCO mean/std,
sum head x 0.64) and Keras style (affine BN, eps 1e-3, mean 0 / std 1, dense head).
Each model runs on INPUTS random inputs. Then: a checkpoint laid out as the public
reference code saves it (CCN.module. prefix, BN without affine) is converted and
the engine reproduces that code's own forward pass; and bad input is refused with a
message that says what is wrong.

Tolerance: |engine - reference| <= TOL * max(1, |reference|) per exit value, the
engine computing in float32 and the reference in float64.

Each configuration and input also runs with --precision bf16 (convolutions in
bf16), held to BF16_TOL against the same reference. These compact random models
(an eighth of the channels, random heads) average bf16's rounding over fewer
terms than the full-width model: their worst error is 1.7e-2 (slvit-default av1,
input 0; 43 of the 48 values stay under 1e-2), where the 1024x576 model's exits
move by under 1e-2 (docs/cpu-backend.md). On a CPU without bf16 kernels the bf16
runs are skipped, saying so.

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
BF16_TOL = 3e-2
INPUTS = 2

BASE = ["--width-div", "8", "--input-size", "256x128"]
CONFIGS = {
    "slvit-default": [],
    "slvit-switches": ["--bn-affine", "true", "--count-head", "dense", "--dense-bias", "true",
                       "--last-residual", "false", "--final-ln", "true",
                       "--mlp-out-gelu", "true", "--head-act", "relu", "--ln-eps", "1e-3",
                       "--channel-order", "bgr", "--heads", "3", "--dim", "16", "--patch", "4"],
    "keras-style": ["--bn-affine", "true", "--bn-eps", "1e-3", "--mean", "0,0,0",
                    "--std", "1,1,1", "--count-head", "dense", "--ln-eps", "1e-3"],
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


def check_bf16(ee, name, trial, args, ref, state):
    """The same run in bf16 against the float64 reference; state holds the worst
    error, or skipped once the engine refuses bf16 on this CPU."""
    if state.get("skipped"):
        return
    p = subprocess.run([ee, "run"] + args + ["--json", "--precision", "bf16"],
                       capture_output=True, text=True)
    if p.returncode != 0 and "cannot compute in bf16" in p.stderr:
        print(f"bf16 skipped: {p.stderr.strip()}")
        state["skipped"] = True
        return
    if p.returncode != 0:
        sys.exit(f"FAILED: earlyexit run --precision bf16 {' '.join(args)}\n{p.stderr}")
    got = {e["name"]: e["value"] for e in json.loads(p.stdout)["exits"]}
    if set(got) != set(ref):
        sys.exit(f"{name} bf16: exits {sorted(got)} != reference {sorted(ref)}")
    for k in ref:
        err = abs(got[k] - ref[k]) / max(1.0, abs(ref[k]))
        state["worst"] = max(state.get("worst", 0.0), err)
        print(f"{name:22s} input {trial} {k:6s} bf16   {got[k]:+.7e} "
              f"reference {ref[k]:+.7e} rel err {err:.2e} "
              f"{'ok' if err <= BF16_TOL else 'FAIL'}")
        if err > BF16_TOL:
            sys.exit(f"{name}/{k} in bf16: relative error {err:.2e} > {BF16_TOL}")


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    py = sys.executable
    worst = 0.0
    bf16 = {}
    for seed, (name, extra) in enumerate(CONFIGS.items()):
        model = os.path.join(work, f"{name}.safetensors")
        run([py, CONVERT, "--random", "--seed", str(seed + 1), "--out", model] + BASE + extra)
        for trial in range(INPUTS):
            rng = np.random.default_rng(100 * trial + seed)
            img = os.path.join(work, f"{name}.image.npy")
            mel = os.path.join(work, f"{name}.audio.npy")
            np.save(img, rng.standard_normal((1, 3, 128, 256)).astype(np.float32))
            np.save(mel, rng.uniform(-4.6, 2.0, (1, 1, 96, 64)).astype(np.float32))
            ref = json.loads(run([py, RUN_REF, model, "--image", img, "--audio", mel,
                                  "--preprocessed"]))["exits"]
            got = json.loads(run([ee, "run", model, "--image", img, "--audio", mel,
                                  "--json"]))
            got = {e["name"]: e["value"] for e in got["exits"]}
            if set(got) != set(ref):
                sys.exit(f"{name}: exits {sorted(got)} != reference {sorted(ref)}")
            for k in ref:
                err = abs(got[k] - ref[k]) / max(1.0, abs(ref[k]))
                worst = max(worst, err)
                status = "ok" if err <= TOL else "FAIL"
                print(f"{name:22s} input {trial} {k:6s} engine {got[k]:+.7e} "
                      f"reference {ref[k]:+.7e} rel err {err:.2e} {status}")
                if err > TOL:
                    sys.exit(f"{name}/{k}: relative error {err:.2e} > {TOL}")
            check_bf16(ee, name, trial, [model, "--image", img, "--audio", mel], ref, bf16)

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
    print(f"all {len(CONFIGS)} configurations x {INPUTS} inputs match; worst relative "
          f"error {worst:.2e} (tolerance {TOL})")
    if not bf16.get("skipped"):
        print(f"bf16: all {len(CONFIGS)} configurations x {INPUTS} inputs match; worst "
              f"relative error {bf16['worst']:.2e} (tolerance {BF16_TOL})")
    reference_checkpoint(ee, work)
    bad_input(ee, work)


def reference_checkpoint(ee, work):
    """Round trip: reference-code layout checkpoint -> converter -> engine."""
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import test_convert as tc
    net, sd = tc.fake_state_dict("CCN.module.")
    ck = os.path.join(work, "refcode.pth")
    torch.save({"net": sd}, ck)
    model = os.path.join(work, "refcode.safetensors")
    run([sys.executable, CONVERT, "--checkpoint", ck, "--exit-list", "none", "--out", model,
         "--width-div", str(tc.DIV), "--input-size", f"{tc.SIZE[0]}x{tc.SIZE[1]}"])
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 3, tc.SIZE[1], tc.SIZE[0]))
    a = rng.uniform(-4.6, 2.0, (1, 1, 96, 64))
    img, mel = os.path.join(work, "refcode.image.npy"), os.path.join(work, "refcode.audio.npy")
    np.save(img, x.astype(np.float32))
    np.save(mel, a.astype(np.float32))
    with torch.no_grad():
        want = net.double()(torch.from_numpy(x.astype(np.float32).astype(np.float64)),
                            torch.from_numpy(a.astype(np.float32).astype(np.float64))).item()
    got = json.loads(run([ee, "run", model, "--image", img, "--audio", mel, "--json"]))
    got = {e["name"]: e["value"] for e in got["exits"]}["final"]
    err = abs(got - want) / max(1.0, abs(want))
    print(f"reference-code checkpoint: engine {got:+.7e} reference code {want:+.7e} "
          f"rel err {err:.2e}")
    if err > TOL:
        sys.exit(f"reference-code checkpoint: relative error {err:.2e} > {TOL}")


def expect_failure(cmd, words):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0 or not all(w in p.stderr for w in words):
        sys.exit(f"expected failure mentioning {words}: {' '.join(cmd)}\n"
                 f"status {p.returncode}\n{p.stdout}\n{p.stderr}")
    print(f"refused as expected: {p.stderr.strip().splitlines()[-1]}")


def bad_input(ee, work):
    model = os.path.join(work, "slvit-default.safetensors")
    img = os.path.join(work, "slvit-default.image.npy")
    # a model file of another architecture
    other = os.path.join(work, "other-arch.safetensors")
    sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
    import eesafetensors
    tensors, meta = eesafetensors.load(model)
    cfg = json.loads(meta["config"])
    cfg["arch"] = "resnet9000"
    meta["config"] = json.dumps(cfg)
    eesafetensors.save(other, tensors, meta)
    expect_failure([ee, "run", other, "--image", img], ["resnet9000", "not supported"])
    # an exit the model does not have
    expect_failure([ee, "run", model, "--image", img, "--exits", "v1,av9"],
                   ["av9", "v1,av1,av2,final"])
    # an image of the wrong input size
    small = os.path.join(work, "small.npy")
    np.save(small, np.zeros((1, 3, 64, 128), np.float32))
    expect_failure([ee, "run", model, "--image", small], ["small.npy", "(1,3,64,128)",
                                                          "(1,3,128,256)"])
    # audio shorter than the 1 s window: zero-padded, the coverage is reported
    import wave
    short = os.path.join(work, "short.wav")
    with wave.open(short, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(4000) / 5) * 8000).astype("<i2").tobytes())
    p = subprocess.run([ee, "run", model, "--image", img, "--audio", short, "--json"],
                       capture_output=True, text=True)
    out = json.loads(p.stdout) if p.returncode == 0 else {}
    if p.returncode != 0 or abs(out.get("audio_coverage", -1) - 0.25) > 1e-9 or \
            "zero-padded" not in p.stderr:
        sys.exit(f"short audio: expected coverage 0.25 and a warning, got {p.returncode} "
                 f"{p.stdout} {p.stderr}")
    print("short audio: zero-padded, audio_coverage 0.25 reported")
    # audio at the wrong rate
    fast = os.path.join(work, "fast.wav")
    with wave.open(fast, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(np.zeros(48000, "<i2").tobytes())
    expect_failure([ee, "run", model, "--image", img, "--audio", fast], ["48000", "resample"])


if __name__ == "__main__":
    main()
