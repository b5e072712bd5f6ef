#!/usr/bin/python3
"""Golden tests of the C classification backbones (earlyexit run) against torchvision's
own ResNet152, DenseNet201 and InceptionV3 (float64, eval mode, the model file's
random weights loaded) and the exits against models/convert/exits_ref.py.

Each backbone runs once at 224x224 with SL-ViT and CNN exits at the paper's taps;
smaller inputs cover the switches: stride_on_1x1, transform_input, linear and
two-layer classifiers, other taps and exit options, labels, channel order, an image
file instead of a tensor, audio features as the input, a subset of exits, and
configurations the engine must refuse; and `earlyexit evaluate` on a labelled folder.

Tolerance: max |engine - reference| <= TOL * max |reference| over each exit's logits.

Usage: test_classifiers.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import wave
import zlib

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import classifier_ref  # noqa: E402
import classifier  # noqa: E402  (the converter, on the path classifier_ref set)
import eesafetensors  # noqa: E402

TOL = 1e-4

PAPER_EXITS = {
    "resnet152": ("layer2.0.conv2", "layer2"),
    "densenet201": ("features.transition1", "features.transition2.conv"),
    "inceptionv3": ("Mixed_5c", "Mixed_5d"),
}


def paper_exits(arch):
    t1, t2 = PAPER_EXITS[arch]
    return ["--exit", f"s1:slvit:{t1}", "--exit", f"c1:cnn:{t1}",
            "--exit", f"s2:slvit:{t2}", "--exit", f"c2:cnn:{t2}"]


# name -> (converter arguments, input size (W, H))
CONFIGS = {
    "resnet152-224": (["--arch", "resnet152", "--classes", "10", "--classifier", "two_layer",
                       "--classifier-hidden", "128"] + paper_exits("resnet152"), (224, 224)),
    "densenet201-224": (["--arch", "densenet201", "--classes", "10"]
                        + paper_exits("densenet201"), (224, 224)),
    "inceptionv3-224": (["--arch", "inceptionv3", "--classes", "10", "--classifier",
                         "two_layer", "--classifier-hidden", "64"]
                        + paper_exits("inceptionv3"), (224, 224)),
    "resnet152-v1-switches": (["--arch", "resnet152", "--stride-on-1x1", "true",
                               "--classes", "1000", "--input-size", "64x48",
                               "--exit", "stem:slvit:stem", "--exit", "l1:slvit:layer1.1.conv1",
                               "--exit", "l3:cnn:layer3.5", "--patch", "4", "--dim", "16",
                               "--heads", "3", "--final-ln", "true", "--last-residual", "false",
                               "--mlp-out-gelu", "true", "--head-act", "relu",
                               "--ln-eps", "1e-3", "--cnn-padding", "1", "--cnn-pool", "3",
                               "--channel-order", "bgr"], (64, 48)),
    "densenet201-taps": (["--arch", "densenet201", "--classes", "100", "--classifier",
                          "two_layer", "--input-size", "64x64",
                          "--exit", "d1:slvit:features.denseblock1.denselayer3",
                          "--exit", "t2:cnn:features.transition2.conv",
                          "--exit", "n5:slvit:features.norm5", "--patch", "2",
                          "--head-hidden", "64"], (64, 64)),
    "inceptionv3-transform": (["--arch", "inceptionv3", "--classes", "5",
                               "--transform-input", "true", "--input-size", "96x96",
                               "--exit", "m5:slvit:Mixed_5b", "--exit", "m6:cnn:Mixed_6e",
                               "--patch", "3", "--cnn-filters", "8"], (96, 96)),
}


def convert(argv):
    """The converter in this process (it and the reference share one torch import)."""
    if classifier.main([str(a) for a in argv]) != 0:
        sys.exit(f"FAILED: classifier.py {' '.join(map(str, argv))}")


def reference(model, x=None, pixels=None):
    """Every exit's logits from torchvision's model with the file's weights (float64):
    x the network input (1, 3, H, W), or pixels (H, W, 3) to preprocess."""
    cfg, tensors, _ = classifier_ref.load_model(model)
    ref = classifier_ref.ClassifierRef(cfg, tensors)
    if x is None:
        x = ref.preprocess(pixels)
    out = ref.forward(torch.from_numpy(np.asarray(x, np.float64)))["exits"]
    return {k: v.tolist() for k, v in out.items()}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def expect_failure(cmd, words):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0 or not all(w in p.stderr for w in words):
        sys.exit(f"expected failure mentioning {words}: {' '.join(cmd)}\n"
                 f"status {p.returncode}\n{p.stdout}\n{p.stderr}")
    print(f"refused as expected: {p.stderr.strip().splitlines()[-1][:150]}")


def compare(name, got_exits, ref_exits):
    """Checks every exit's logits; returns the worst relative error."""
    got = {e["name"]: e for e in got_exits}
    if list(got) != list(ref_exits):
        sys.exit(f"{name}: exits {list(got)} != reference {list(ref_exits)}")
    worst = 0.0
    for k, want in ref_exits.items():
        want = np.asarray(want)
        logits = np.asarray(got[k]["logits"])
        err = np.abs(logits - want).max() / np.abs(want).max()
        worst = max(worst, err)
        top = int(np.argmax(want))
        p = np.exp(want - want.max())
        p /= p.sum()
        status = "ok" if err <= TOL else "FAIL"
        print(f"{name:24s} {k:6s} {len(want):5d} logits, rel err {err:.2e}, top-1 "
              f"{got[k]['label_id']} ({got[k]['confidence']:.4f}) reference {top} "
              f"({p[top]:.4f}) {status}")
        if err > TOL:
            sys.exit(f"{name}/{k}: relative error {err:.2e} > {TOL}")
        # the decision must be the reference's unless two classes tie within TOL
        second = np.sort(want)[-2] if len(want) > 1 else -np.inf
        if got[k]["label_id"] != top and want[top] - second > 2 * TOL * np.abs(want).max():
            sys.exit(f"{name}/{k}: top-1 {got[k]['label_id']}, reference {top}")
        if abs(got[k]["confidence"] - p[top]) > 1e-4:
            sys.exit(f"{name}/{k}: confidence {got[k]['confidence']}, reference {p[top]}")
    return worst


def write_png(path, rgb):
    """8-bit RGB PNG with zlib, no filter (enough for a test image)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\0" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def golden(ee, work):
    worst = 0.0
    for seed, (name, (args, (w, h))) in enumerate(CONFIGS.items()):
        t0 = time.time()
        model = os.path.join(work, f"{name}.safetensors")
        convert(["--random", "--seed", seed + 1, "--out", model] + args)
        x = os.path.join(work, f"{name}.input.npy")
        np.save(x, np.random.default_rng(100 + seed).standard_normal((1, 3, h, w))
                .astype(np.float32))
        ref = reference(model, np.load(x))
        got = json.loads(run([ee, "run", model, "--image", x, "--json"]))["exits"]
        if any("value" in e for e in got):
            sys.exit(f"{name}: a classifier's exits must not have a value: {got}")
        worst = max(worst, compare(name, got, ref))
        print(f"{name}: {time.time() - t0:.1f} s")
    print(f"all {len(CONFIGS)} configurations match; worst relative error {worst:.2e} "
          f"(tolerance {TOL})")


def image_and_labels(ee, work):
    """A PNG at the input size (no resize), labels from the model file, a subset of
    exits: the text and JSON output name the classes."""
    model = os.path.join(work, "labelled.safetensors")
    labels = os.path.join(work, "labels.txt")
    names = [f"class {i}" for i in range(7)]
    with open(labels, "w") as f:
        f.write("\n".join(names) + "\n")
    convert(["--arch", "resnet152", "--random", "--seed", "11", "--classes", "7",
         "--input-size", "32x32", "--exit", "a:cnn:layer1", "--exit", "b:slvit:layer2",
         "--patch", "2", "--labels", labels, "--out", model])
    rgb = np.random.default_rng(3).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    png = os.path.join(work, "img.png")
    write_png(png, rgb)
    ref = reference(model, pixels=rgb)
    out = json.loads(run([ee, "run", model, "--image", png, "--json"]))
    compare("png-labelled", out["exits"], ref)
    for e in out["exits"]:
        if e["label"] != names[e["label_id"]]:
            sys.exit(f"label {e['label']!r} for class {e['label_id']}")
    sub = json.loads(run([ee, "run", model, "--image", png, "--json", "--exits", "b"]))
    if [e["name"] for e in sub["exits"]] != ["b"] or \
            sub["exits"][0]["logits"] != [e for e in out["exits"] if e["name"] == "b"][0]["logits"]:
        sys.exit(f"--exits b gave {sub}")
    text = run([ee, "run", model, "--image", png])
    if "confidence" not in text or not any(n in text for n in names):
        sys.exit(f"text output without labels or confidence:\n{text}")
    print("png input, labels, --exits subset and text output: ok")


def evaluate(ee, work):
    """`earlyexit evaluate` on a labelled folder: per-exit accuracies agree with
    `earlyexit run`, and without a deadline each policy's accuracy and FLOPs are
    those of the exit it answers with; a deadline nothing meets answers nothing."""
    model = os.path.join(work, "labelled.safetensors")
    data = os.path.join(work, "data")
    shutil.rmtree(data, ignore_errors=True)
    rng = np.random.default_rng(8)
    truth = []
    for cls in (0, 3, 5):
        os.makedirs(os.path.join(data, f"class {cls}"), exist_ok=True)
        for k in range(2):
            path = os.path.join(data, f"class {cls}", f"{k}.npy")
            np.save(path, rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
            got = json.loads(run([ee, "run", model, "--image", path, "--json"]))["exits"]
            truth.append({e["name"]: e["label_id"] == cls for e in got})
    info = json.loads(run([ee, "info", model, "--json"]))
    to_exit = {e["name"]: e["flops_to_exit"] for e in info["exits"]}
    out = json.loads(run([ee, "evaluate", model, "--data", data, "--json", "--threshold", "0",
                          "--exit", "b"]))
    exits = {e["name"]: e for e in out["exits"]}
    pol = {p["name"]: p for p in out["policies"]}
    acc = {k: sum(t[k] for t in truth) / len(truth) for k in truth[0]}
    # full runs every exit (as the elements do), fixed the one exit alone
    every = sum(s["flops"] for s in info["segments"])
    want = {"full": (acc["final"], every), "fixed": (acc["b"], to_exit["b"]),
            "confidence": (acc["a"], to_exit["a"]), "anytime": (acc["final"], every)}
    if out["samples"] != 6 or any(abs(exits[k]["accuracy"] - a) > 1e-9 for k, a in acc.items()):
        sys.exit(f"evaluate: exit accuracies {exits}, earlyexit run gives {acc}")
    for name, (a, flops) in want.items():
        p = pol[name]
        if abs(p["accuracy"] - a) > 1e-9 or p["answered"] != 1 or \
                abs(p["mean_flops"] - flops) > 1e-6 * flops:
            sys.exit(f"evaluate {name}: {p}, expected accuracy {a} and {flops} FLOPs")
    late = json.loads(run([ee, "evaluate", model, "--data", data, "--json",
                           "--deadline", "uniform:0.000001:0.000002"]))
    if any(p["answered"] or p["accuracy"] for p in late["policies"]):
        sys.exit(f"evaluate with an impossible deadline answered: {late['policies']}")
    os.makedirs(os.path.join(data, "cat"))
    expect_failure([ee, "evaluate", model, "--data", data], ["cat", "not a class"])
    print(f"evaluate: policies agree with the exits they answer with: "
          f"{ {k: round(v['accuracy'], 3) for k, v in pol.items()} }")


def audio_classifier(ee, work):
    """An SC audio classifier: `run --audio` computes the features the model file
    asks for and feeds them to the backbone."""
    model = os.path.join(work, "sc.safetensors")
    convert(["--arch", "densenet201", "--random", "--seed", "12", "--classes", "12",
         "--input-size", "64x64", "--audio-features", "sc", "--feature-mean=-5,-5,-5",
         "--feature-std", "3,3,3", "--exit", "t1:slvit:features.transition1",
         "--patch", "4", "--out", model])
    clip = os.path.join(work, "clip.wav")
    t = np.arange(16000) / 16000
    with wave.open(clip, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(16000)
        f.writeframes((np.sin(2 * np.pi * 440 * t) * 6000 + np.sin(2 * np.pi * 2900 * t)
                       * 3000).astype("<i2").tobytes())
    feats = os.path.join(work, "clip.features.npy")
    run([ee, "features", "--kind", "sc", "--audio", clip, "--height", "64", "--width", "64",
         "--out", feats])
    ref = reference(model, (np.load(feats).astype(np.float64) + 5.0) / 3.0)
    got = json.loads(run([ee, "run", model, "--audio", clip, "--json"]))["exits"]
    compare("sc-audio", got, ref)
    print("audio classifier: features from the WAV feed the backbone: ok")


def refusals(ee, work):
    model = os.path.join(work, "inceptionv3-transform.safetensors")
    tensors, meta = eesafetensors.load(model)
    bad = os.path.join(work, "bad.safetensors")
    x = os.path.join(work, "inceptionv3-transform.input.npy")

    def with_cfg(edit, words, m=None):
        cfg = json.loads(meta["config"])
        edit(cfg)
        eesafetensors.save(bad, tensors, dict(m or meta, config=json.dumps(cfg)))
        expect_failure([ee, "run", bad, "--image", x], words)

    with_cfg(lambda c: c["exits"][0].update(tap="Mixed_9z"),
             ["m5", "Mixed_9z", "not a tap of inceptionv3", "Mixed_5b"])
    with_cfg(lambda c: c["exits"].reverse(), ["m5", "tap order"])
    with_cfg(lambda c: c["exits"][1].update(outputs=3), ["m6", "outputs", "5"])
    with_cfg(lambda c: c.update(surprise=1), ["unknown key", "surprise"])
    with_cfg(lambda c: c.update(input_width=64), ["input_width", "75"])
    with_cfg(lambda c: c["exits"][0].update(patch=2), ["m5", "not divisible by patch 2"])
    with_cfg(lambda c: c["exits"][1].update(film=True), ["m6", "audio vector"])
    with_cfg(lambda c: None, ["format_version", "2"], dict(meta, format_version="1"))
    with_cfg(lambda c: None, ["labels", "5 classes"], dict(meta, labels='["a", "b"]'))
    t2 = dict(tensors)
    t2["fc.weight"] = tensors["fc.weight"][:, :100]
    eesafetensors.save(bad, t2, meta)
    expect_failure([ee, "run", bad, "--image", x], ["fc.weight", "2048"])


def main():
    ee, work = sys.argv[1], sys.argv[2]
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    os.makedirs(work, exist_ok=True)
    t0 = time.time()
    golden(ee, work)
    image_and_labels(ee, work)
    evaluate(ee, work)
    audio_classifier(ee, work)
    refusals(ee, work)
    print(f"classifier tests passed in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
