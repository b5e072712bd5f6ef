#!/usr/bin/python3
"""Smoke tests of earlyexit-train (models/earlyexit-train), one per data layout,
each on a tiny data set generated here:

- images: ImageFolder of coloured noise (3 classes), ResNet152 (random weights,
  32x32), SL-ViT and CNN exits at the paper's taps;
- audio: WAV tones in class folders (2 classes), DenseNet201 on Speech Commands
  features with SL-ViT exits, and on GTZAN features (3.5 s clips at 22.05 kHz)
  with CNN exits;
- crowd: the AudioCSRNet reference code's layout (imgs/, auds/, labels/ head
  points), a compact random AudioCSRNet, CNN and SL-ViT exits (flatten and
  per-token heads); the same
  samples as density/{train,test}/*.mat maps give the counts those maps sum to;
  copycat fine-tuning with those samples, unlabelled, changes the exits; the
  same seed gives the same exits; bad folders and arguments are named.

Each run trains one epoch and writes its model files; then, for every file,
`earlyexit info` loads it, `earlyexit run` computes every exit on a sample,
and each trained exit must match PyTorch on the same input within 1e-4
(relative to its largest output): the trainer's exits checkpoint (the weights it
trained) on the taps of the PyTorch reference backbone (float64). The same
exits freshly initialised (the trainer's He init and seed) must differ from the
engine's output by far more than that, so untrained weights fail.

Usage: test_train.py EARLYEXIT_BINARY WORKDIR images|audio|crowd ...
"""
import json
import os
import shutil
import sys
import time
import wave

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "models", "train"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import audiocsrnet_ref  # noqa: E402
import classifier_ref  # noqa: E402
import data as ds  # noqa: E402
import exits_ref  # noqa: E402
import fit  # noqa: E402
from trainlib import expect_failure, run, start  # noqa: E402

TOL = 1e-4
TRAIN = [sys.executable, os.path.join(ROOT, "models", "earlyexit-train")]
SEED = 3



def write_wav(path, x, rate=16000):
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def train(layout, data, out, conv_args, kinds):
    t0 = time.time()
    text = run(TRAIN + [layout, data, "--out-dir", out, "--epochs", "1", "--batch", "4",
                        "--kinds", kinds, "--seed", str(SEED), "--earlyexit", EE, "--"]
               + conv_args)
    print(text.strip().split("\n\n")[-2] if "\n\n" in text else text)
    print(f"{layout}: trained in {time.time() - t0:.1f} s")
    with open(os.path.join(out, "model-report.json")) as f:
        rep = json.load(f)
    for r in rep["exits"]:
        if not np.isfinite(r["metric"]):
            sys.exit(f"{layout}: exit {r['exit']}: no held-out metric")
    if not rep["costs"]:
        sys.exit(f"{layout}: the report has no FLOPs from earlyexit info")
    return rep


def trained_and_fresh(cfg, exits_pth):
    """Per exit: (the trained module from the exits checkpoint, the same exit as
    the trainer initialises it before training), float64."""
    sd = torch.load(exits_pth, weights_only=True)
    out = {}
    for i, e in enumerate(cfg["exits"]):
        m = exits_ref.build_exit(cfg, e)
        prefix = e["name"] + "."
        m.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
        fresh = exits_ref.build_exit(cfg, e)
        torch.manual_seed(SEED * 1000 + i)
        fit.he_init(fresh)
        out[e["name"]] = (m.double().eval(), fresh.double().eval())
    return out


def check_exits(name, cfg, engine, taps, audio_vec, exits_pth, scale=1.0):
    """engine: {exit: outputs}; taps from the PyTorch reference backbone."""
    for ex, (trained, fresh) in trained_and_fresh(cfg, exits_pth).items():
        e = next(e for e in cfg["exits"] if e["name"] == ex)
        with torch.no_grad():
            want = trained(taps[e["tap"]], audio_vec)[0].numpy()
            untrained = fresh(taps[e["tap"]], audio_vec)[0].numpy() * scale
        got = np.asarray(engine[ex], np.float64).reshape(-1)
        ref = max(np.abs(want).max(), 1e-6)
        err = np.abs(got - want).max() / ref
        gap = np.abs(got - untrained).max() / ref
        print(f"{name:12s} {ex:4s} {e['kind']:5s} engine vs trained PyTorch: rel err "
              f"{err:.2e}; vs untrained: {gap:.2e}")
        if err > TOL:
            sys.exit(f"{name}/{ex}: the engine's exit differs from the trained PyTorch exit "
                     f"by {err:.2e} > {TOL}")
        if gap < 100 * TOL:
            sys.exit(f"{name}/{ex}: the engine's exit is the untrained one (gap {gap:.2e})")


def engine_logits(model, args):
    run([EE, "info", model])
    got = json.loads(run([EE, "run", model, "--json"] + args))["exits"]
    return {e["name"]: e.get("logits", e.get("value")) for e in got}


# ----------------------------------------------------------------- layouts

def images(work):
    data = os.path.join(work, "images")
    from PIL import Image
    rng = np.random.default_rng(1)
    for name, col in (("blue", (40, 40, 200)), ("green", (40, 200, 40)), ("red", (200, 40, 40))):
        os.makedirs(os.path.join(data, name))
        for i in range(8):
            a = np.clip(np.array(col)[None, None] + rng.normal(0, 50, (40, 48, 3)), 0, 255)
            Image.fromarray(a.astype(np.uint8)).save(os.path.join(data, name, f"{i}.png"))
    out = os.path.join(work, "images-out")
    train("images", data, out, ["--arch", "densenet201", "--random", "--seed", "1",
                                "--input-size", "32x32"], "slvit,cnn")
    sample = os.path.join(data, "red", "0.png")
    ref = None
    for kind in ("slvit", "cnn"):
        model = os.path.join(out, f"model-{kind}.safetensors")
        cfg, tensors, labels = classifier_ref.load_model(model)
        if labels != ["blue", "green", "red"]:
            sys.exit(f"images: labels {labels}, expected the class folders")
        x = ds.preprocess_pixels(ds.load_image(sample, cfg), cfg)[None]
        if ref is None:  # both kinds sit on one backbone, at the same taps
            ref = classifier_ref.ClassifierRef(dict(cfg, exits=[]), tensors).forward(
                torch.from_numpy(x.astype(np.float64)), [e["tap"] for e in cfg["exits"]])
            backbone = {k: v for k, v in tensors.items() if not k.startswith("exits.")}
        elif any(not np.array_equal(v, tensors[k]) for k, v in backbone.items()):
            sys.exit("images: the two kinds' files hold different backbones")
        # the engine reads the PNG itself: the trainer's resize is the engine's
        check_exits(f"images-{kind}", cfg, engine_logits(model, ["--image", sample]),
                    ref["taps"], None, os.path.join(out, f"model-{kind}-exits.pth"))


def audio_set(work, layout, rate, seconds, kind):
    """Tones in class folders: Speech Commands clips (1 s at 16 kHz) or GTZAN
    tracks (longer than the 3 s window, at 22.05 kHz); `kind` exits trained on
    DenseNet201 with the layout's features."""
    data = os.path.join(work, layout)
    rng = np.random.default_rng(2)
    t = np.arange(int(rate * seconds)) / rate
    for name, f0 in (("high", 2500.0), ("low", 300.0)):
        os.makedirs(os.path.join(data, name))
        for i in range(6):
            x = 0.3 * np.sin(2 * np.pi * f0 * (1 + 0.05 * rng.random()) * t) \
                + 0.05 * rng.standard_normal(len(t))
            write_wav(os.path.join(data, name, f"{i}.wav"), x, rate)
    out = os.path.join(work, f"{layout}-out")
    train("audio", data, out, ["--arch", "densenet201", "--random", "--seed", "2",
                               "--input-size", "32x32", "--audio-features", layout,
                               "--feature-mean=-4,-4,-4", "--feature-std", "3,3,3"], kind)
    model = os.path.join(out, f"model-{kind}.safetensors")
    cfg, tensors, _ = classifier_ref.load_model(model)
    clip = os.path.join(data, "low", "0.wav")
    # the trainer's input path (features_ref) against the engine's own features
    feats = os.path.join(work, f"{layout}.features.npy")
    run([EE, "features", "--kind", layout, "--audio", clip, "--height", "32", "--width", "32",
         "--out", feats])
    mine = ds.audio_input(clip, cfg)
    engine_x = (np.load(feats)[0] + 4.0) / 3.0
    if np.abs(mine - engine_x).max() > 1e-4 * max(1.0, np.abs(engine_x).max()):
        sys.exit(f"{layout}: the trainer's features differ from the engine's by "
                 f"{np.abs(mine - engine_x).max():.2e}")
    ref = classifier_ref.ClassifierRef(dict(cfg, exits=[]), tensors).forward(
        torch.from_numpy(engine_x[None].astype(np.float64)), [e["tap"] for e in cfg["exits"]])
    check_exits(f"{layout}-{kind}", cfg, engine_logits(model, ["--audio", clip]), ref["taps"],
                None, os.path.join(out, f"model-{kind}-exits.pth"))


def audio(work):
    audio_set(work, "sc", 16000, 1.0, "slvit")
    audio_set(work, "gtzan", 22050, 3.5, "cnn")


def crowd(work):
    data = os.path.join(work, "crowd")
    from PIL import Image
    rng = np.random.default_rng(3)
    for d in ("imgs", "auds", "labels"):
        os.makedirs(os.path.join(data, d))
    heads = {}
    for i in range(10):
        sid = f"{i + 1:04d}"
        n = int(rng.integers(0, 30))
        pts = rng.uniform(2, 62, (n, 2)).round()
        img = np.full((64, 64, 3), 60.0) + rng.normal(0, 10, (64, 64, 3))
        for x, y in pts:
            img[int(y) - 2:int(y) + 2, int(x) - 2:int(x) + 2] = 230
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            os.path.join(data, "imgs", sid + ".jpg"), quality=95)
        write_wav(os.path.join(data, "auds", sid + ".wav"),
                  0.01 * (1 + n) * rng.standard_normal(16000))
        with open(os.path.join(data, "labels", f"new_{sid}.txt"), "w") as f:
            f.write("".join(f"{int(x)} {int(y)}\n" for x, y in pts))
        heads[sid] = pts
    out = os.path.join(work, "crowd-out")
    conv_args = ["--random", "--seed", "4", "--width-div", "8", "--input-size", "64x64",
                 "--patch", "4", "--head-hidden", "32"]
    rep = train("crowd", data, out, conv_args + ["--cnn-pool", "2"], "cnn,slvit")
    if rep["metric"] != "MAE":
        sys.exit("crowd: the report should give the MAE")
    # SL-ViT exits with the per-token head (a count map per exit)
    run(TRAIN + ["crowd", data, "--out-dir", out, "--name", "pertoken", "--epochs", "1",
                 "--batch", "4", "--kinds", "slvit", "--seed", str(SEED),
                 "--earlyexit", EE, "--"] + conv_args + ["--exit-head", "per_token"])
    with open(os.path.join(out, "pertoken-report.json")) as f:
        rep_pt = json.load(f)
    sid = "0001"
    for name, kind, r in (("model", "cnn", rep), ("model", "slvit", rep),
                          ("pertoken", "slvit", rep_pt)):
        model = os.path.join(out, f"{name}-{kind}.safetensors")
        cfg, tensors = audiocsrnet_ref.load_model(model)
        x = ds.preprocess_pixels(ds.load_image(os.path.join(data, "imgs", sid + ".jpg"), cfg),
                                 cfg)[None]
        lm = ds.logmel(os.path.join(data, "auds", sid + ".wav"))
        np.save(os.path.join(work, "crowd-x.npy"), x)
        np.save(os.path.join(work, "crowd-a.npy"), lm[None, None])
        ref = audiocsrnet_ref.AudioCSRNetRef(cfg, tensors).forward(
            torch.from_numpy(x.astype(np.float64)),
            torch.from_numpy(lm.astype(np.float64)).reshape(1, 1, 96, 64))
        engine = engine_logits(model, ["--image", os.path.join(work, "crowd-x.npy"),
                                       "--audio", os.path.join(work, "crowd-a.npy")])
        # the untrained exit gives count / scale; the trained file gives counts
        if name == "pertoken" and any(e.get("head_kind") != "per_token" for e in cfg["exits"]):
            sys.exit("crowd: --exit-head per_token did not reach the model file")
        check_exits(f"crowd-{name}-{kind}", cfg, engine, ref["taps"], ref["audio_vector"][None],
                    os.path.join(out, f"{name}-{kind}-exits.pth"), r["output_scale"])
    # the density/ layout: .mat maps made from the same heads, split train/test
    import scipy.io
    dens = os.path.join(work, "crowd-mat")
    shutil.copytree(os.path.join(data, "imgs"), os.path.join(dens, "imgs"))
    shutil.copytree(os.path.join(data, "auds"), os.path.join(dens, "auds"))
    sums = {}
    for k, (sid, pts) in enumerate(sorted(heads.items())):
        part = "test" if k % 4 == 0 else "train"
        os.makedirs(os.path.join(dens, "density", part), exist_ok=True)
        m = ds.density_map(pts, 64, 64)
        scipy.io.savemat(os.path.join(dens, "density", part, sid + ".mat"), {"map": m})
        sums[sid] = (part, m.sum(), len(pts))
    tr, va = ds.crowd_folder(dens, 0.2, 0)
    for rows, part in ((tr, "train"), (va, "test")):
        for sid, _, _, count in rows:
            want_part, want, n = sums[sid]
            if want_part != part or abs(count - want) > 1e-9:
                sys.exit(f"crowd density/: sample {sid} count {count} in {part}, expected "
                         f"{want} in {want_part}")
            if n and not 0.5 * n <= count <= n + 1e-9:
                sys.exit(f"crowd: sample {sid}: density sum {count} for {n} heads")
    print(f"crowd density/ layout: {len(tr)} train, {len(va)} test, counts = map sums: ok")
    # copycat: the density/ copy's images and clips as unlabelled samples; the
    # backbone labels them and they change what the exits learn
    text = run(TRAIN + ["crowd", data, "--out-dir", out, "--name", "copycat", "--epochs", "1",
                        "--batch", "4", "--kinds", "cnn", "--seed", str(SEED),
                        "--copycat", dens, "--copycat-ratio", "2", "--earlyexit", EE, "--"]
               + conv_args + ["--cnn-pool", "2"])
    if "copycat: 10 samples labelled by the backbone" not in text:
        sys.exit(f"crowd copycat: no copycat samples in the log:\n{text}")
    plain = torch.load(os.path.join(out, "model-cnn-exits.pth"), weights_only=True)
    copied = torch.load(os.path.join(out, "copycat-cnn-exits.pth"), weights_only=True)
    if all(torch.equal(plain[k], copied[k]) for k in plain):
        sys.exit("crowd copycat: the exits are those trained without the copycat samples")
    run([EE, "info", os.path.join(out, "copycat-cnn.safetensors")])
    print("crowd copycat: trained with the backbone's labels mixed in: ok")
    # seeded: the same run again gives the same exits
    run(TRAIN + ["crowd", data, "--out-dir", out, "--name", "again", "--epochs", "1",
                 "--batch", "4", "--kinds", "cnn", "--seed", str(SEED), "--earlyexit", EE,
                 "--"] + conv_args + ["--cnn-pool", "2"])
    again = torch.load(os.path.join(out, "again-cnn-exits.pth"), weights_only=True)
    if not all(torch.equal(plain[k], again[k]) for k in plain):
        sys.exit("crowd: the same seed gave other exits")
    print("crowd: the same seed gives the same exits: ok")
    # bad input is named
    bad = os.path.join(work, "bad")
    os.makedirs(os.path.join(bad, "imgs"))
    expect_failure(TRAIN + ["crowd", bad, "--out-dir", bad, "--"] + conv_args,
                   ["auds/", "reference code's layout"])
    expect_failure(TRAIN + ["crowd", data, "--out-dir", bad], ["--checkpoint", "after `--`"])
    expect_failure(TRAIN + ["crowd", data, "--out-dir", bad, "--lr-factor", "1.5", "--"]
                   + conv_args, ["--lr-factor", "between 0 and 1"])
    expect_failure(TRAIN + ["crowd", data, "--out-dir", bad, "--"] + conv_args
                   + ["--exits", "x.pth"], ["leave --exits"])
    expect_failure(TRAIN + ["audio", os.path.join(data, "imgs"), "--out-dir", bad, "--",
                            "--arch", "densenet201", "--random"], ["--audio-features"])
    one = os.path.join(bad, "one", "only")
    os.makedirs(one)
    shutil.copy(os.path.join(data, "imgs", "0001.jpg"), one)
    expect_failure(TRAIN + ["images", os.path.dirname(one), "--out-dir", bad, "--",
                            "--arch", "densenet201", "--random"], ["one class folder"])


def main():
    global EE
    layouts = {"images": images, "audio": audio, "crowd": crowd}
    EE, work, names = start(__doc__, 3, 5)
    if any(a not in layouts for a in names):
        sys.exit(__doc__)
    for fn in (layouts[a] for a in names):
        t0 = time.time()
        fn(work)
        print(f"== {fn.__name__}: ok ({time.time() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
