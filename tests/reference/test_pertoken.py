#!/usr/bin/python3
"""The per_token SL-ViT head (our own exit kind: the head on each patch token, a
map of per-patch counts whose sum is the count) through the C engine against the
PyTorch reference (models/convert/exits_ref.py, float64), on random-weight model
files written by the converter (--exit-head per_token).

Per configuration and input: every exit's count and map (shape and values) match
the reference to TOL, and the engine's map sums to the engine's count to float
rounding (SUM_TOL); with --precision bf16 the same, count and map to BF16_TOL of
the reference (where the CPU has bf16 kernels: the convolutions round to bf16,
and a per-token count adds up to 128 patch values that each carry that rounding;
the worst measured on the development machine was 2.9e-2, the map of
pt-patch2-no-audio-token, against 8e-6 in f32). Then: a file without the head_kind
key is the paper's flatten head (no map, the same values as head_kind "flatten"),
and bad head_kind settings are refused with a message that names them.

Usage: test_pertoken.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
import audiocsrnet_ref  # noqa: E402
import eesafetensors  # noqa: E402

CONVERT = os.path.join(ROOT, "models", "convert", "audiocsrnet.py")
TOL = 1e-4
BF16_TOL = 6e-2
SUM_TOL = 1e-5
INPUTS = 2

# 256x128 at width / 8: the exits' taps are 32 channels of 16x32
BASE = ["--width-div", "8", "--input-size", "256x128", "--exit-head", "per_token"]
CONFIGS = {
    "pt-default": [],  # patch 8: a 2x4 map; AV1 with the audio token
    "pt-switches": ["--last-residual", "false", "--final-ln", "true",
                    "--mlp-out-gelu", "true", "--head-act", "relu", "--ln-eps", "1e-3",
                    "--heads", "3", "--dim", "16", "--patch", "4"],  # 4x8
    "pt-patch2-no-audio-token": ["--audio-token", "none", "--patch", "2",
                                 "--head-hidden", "32"],  # 8x16, as the default model
}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def reference(model, x, mel):
    """{exit: (count, map (gh, gw))} of the per_token exits, float64."""
    cfg, tensors = audiocsrnet_ref.load_model(model)
    ref = audiocsrnet_ref.AudioCSRNetRef(cfg, tensors)
    out = ref.forward(torch.from_numpy(x.astype(np.float64)),
                      torch.from_numpy(mel.astype(np.float64)))
    res = {}
    with torch.no_grad():
        for e in cfg["exits"]:
            count, m = ref.exits[e["name"]].forward_map(out["taps"][e["tap"]],
                                                        out["audio_vector"][None])
            res[e["name"]] = (count.item(), m[0].numpy())
    return res


def engine(ee, args):
    """(results by exit name, None) or (None, stderr) when the engine refused."""
    p = subprocess.run([ee, "run"] + args + ["--json"], capture_output=True, text=True)
    if p.returncode != 0:
        return None, p.stderr
    return {e["name"]: e for e in json.loads(p.stdout)["exits"]}, None


def check(name, got, ref, tol, what):
    """Returns the worst relative error of the counts and maps."""
    worst = 0.0
    for k, (count, want_map) in ref.items():
        g = got[k]
        if "map" not in g:
            sys.exit(f"{name}/{k} ({what}): the engine gave no map")
        gm = g["map"]
        if (gm["height"], gm["width"]) != want_map.shape:
            sys.exit(f"{name}/{k} ({what}): map {gm['height']}x{gm['width']}, "
                     f"reference {want_map.shape[0]}x{want_map.shape[1]}")
        m = np.array(gm["values"], np.float64).reshape(want_map.shape)
        scale = max(1.0, np.abs(want_map).max())
        map_err = np.abs(m - want_map).max() / scale
        count_err = abs(g["value"] - count) / max(1.0, abs(count))
        # the count is the map's sum, whatever the precision
        sum_err = abs(m.sum() - g["value"]) / max(1.0, np.abs(m).sum())
        worst = max(worst, map_err, count_err)
        print(f"{name:26s} {k:4s} {what:5s} count {g['value']:+.6e} reference {count:+.6e} "
              f"rel err {count_err:.1e}; map {m.shape[0]}x{m.shape[1]} max err {map_err:.1e}; "
              f"|sum(map) - count| {sum_err:.1e}")
        if count_err > tol or map_err > tol:
            sys.exit(f"{name}/{k} ({what}): count error {count_err:.2e}, map error "
                     f"{map_err:.2e} > {tol}")
        if sum_err > SUM_TOL:
            sys.exit(f"{name}/{k} ({what}): the map sums to {m.sum():.7g}, the count is "
                     f"{g['value']:.7g}")
    if "final" not in got:
        sys.exit(f"{name} ({what}): no final exit in {sorted(got)}")
    return worst


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    worst, worst16, bf16 = 0.0, 0.0, True
    for seed, (name, extra) in enumerate(CONFIGS.items()):
        model = os.path.join(work, f"{name}.safetensors")
        run([sys.executable, CONVERT, "--random", "--seed", str(seed + 11), "--out", model]
            + BASE + extra)
        for trial in range(INPUTS):
            rng = np.random.default_rng(100 * trial + seed)
            x = rng.standard_normal((1, 3, 128, 256)).astype(np.float32)
            mel = rng.uniform(-4.6, 2.0, (1, 1, 96, 64)).astype(np.float32)
            img, aud = os.path.join(work, f"{name}.image.npy"), os.path.join(work, f"{name}.audio.npy")
            np.save(img, x)
            np.save(aud, mel)
            ref = reference(model, x, mel)
            got, err = engine(ee, [model, "--image", img, "--audio", aud])
            if got is None:
                sys.exit(f"{name}: earlyexit run failed\n{err}")
            worst = max(worst, check(name, got, ref, TOL, "f32"))
            if bf16:
                got, err = engine(ee, [model, "--image", img, "--audio", aud,
                                       "--precision", "bf16"])
                if got is None and "cannot compute in bf16" in err:
                    print(f"bf16 skipped: {err.strip()}")
                    bf16 = False
                elif got is None:
                    sys.exit(f"{name}: earlyexit run --precision bf16 failed\n{err}")
                else:
                    worst16 = max(worst16, check(name, got, ref, BF16_TOL, "bf16"))
    print(f"all {len(CONFIGS)} per_token configurations x {INPUTS} inputs match; worst "
          f"relative error {worst:.2e} (tolerance {TOL})"
          + (f", bf16 {worst16:.2e} (tolerance {BF16_TOL})" if bf16 else ""))
    flatten_default(ee, work)
    bad_config(ee, work)


def edit_config(src, dst, edit):
    tensors, meta = eesafetensors.load(src)
    cfg = json.loads(meta["config"])
    edit(cfg)
    meta["config"] = json.dumps(cfg)
    eesafetensors.save(dst, tensors, meta)


def flatten_default(ee, work):
    """A file written before head_kind existed (no key) is the paper's head."""
    model = os.path.join(work, "flatten.safetensors")
    old = os.path.join(work, "flatten-no-key.safetensors")
    run([sys.executable, CONVERT, "--random", "--seed", "5", "--out", model,
         "--width-div", "8", "--input-size", "256x128", "--exit-head", "flatten"])

    def drop(cfg):
        for e in cfg["exits"]:
            assert e.pop("head_kind") == "flatten"
    edit_config(model, old, drop)
    img = os.path.join(work, "pt-default.image.npy")
    aud = os.path.join(work, "pt-default.audio.npy")
    a, _ = engine(ee, [model, "--image", img, "--audio", aud])
    b, err = engine(ee, [old, "--image", img, "--audio", aud])
    if b is None:
        sys.exit(f"a file without head_kind was refused:\n{err}")
    for k in ("v1", "av1", "av2"):
        if "map" in a[k] or "map" in b[k] or a[k]["value"] != b[k]["value"]:
            sys.exit(f"without head_kind, exit {k} differs from flatten: {a[k]} / {b[k]}")
    print("a file without head_kind runs the flatten head (no map, the same values)")


def bad_config(ee, work):
    model = os.path.join(work, "pt-default.safetensors")
    img = os.path.join(work, "pt-default.image.npy")
    cases = [
        ("head_kind \"tokens\"", lambda c: c["exits"][0].update(head_kind="tokens"),
         ["exit v1", "head_kind", "tokens"]),
        ("per_token with 2 outputs", lambda c: c["exits"][1].update(outputs=2),
         ["exit av1", "per_token", "outputs must be 1"]),
        ("head_kind not a string", lambda c: c["exits"][2].update(head_kind=1),
         ["exit av2", "head_kind"]),
    ]
    for what, edit, words in cases:
        bad = os.path.join(work, "bad.safetensors")
        edit_config(model, bad, edit)
        p = subprocess.run([ee, "run", bad, "--image", img], capture_output=True, text=True)
        if p.returncode == 0 or not all(w in p.stderr for w in words):
            sys.exit(f"{what}: expected a refusal naming {words}, got status "
                     f"{p.returncode}\n{p.stdout}\n{p.stderr}")
        print(f"{what}: refused: {p.stderr.strip().splitlines()[-1]}")
    # the converter's own check
    import audiocsrnet
    cfg, _ = audiocsrnet.load_model(model)
    cfg["exits"][1]["outputs"] = 2
    try:
        audiocsrnet.validate_config(cfg)
    except audiocsrnet.ConvertError as exc:
        if "outputs must be 1" not in str(exc):
            raise
    else:
        sys.exit("validate_config accepted a per_token head with 2 outputs")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
