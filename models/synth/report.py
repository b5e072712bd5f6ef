#!/usr/bin/env python3
"""Accuracy report of crowd-counting model files on held-out synthetic scenes.

    python3 models/synth/report.py models/default/crowd-synth-slvit.safetensors \\
        models/default/crowd-synth-cnn.safetensors [--scenes 600] [--json OUT]

The test set is SCENES scenes of models/synth/scenes.py with seeds
2,000,000.. (training used 0..5999, validation 1,000,000..), half in normal
light and half in low light (alternating). Every model file runs through the
PyTorch reference of the model format (tests/reference/audiocsrnet_ref.py,
float32; the engine matches it to 1e-4, tests/models), with the scene's audio
and again with the audio removed (a silent window: 16000 zero samples, whose
log-mel is flat). Per exit it prints MAE and MSE, where MSE is the crowd-
counting papers' (CSRNet, AudioCSRNet) root of the mean squared error.

--record FILE writes the report as JSON together with the bounds that the
end-to-end test (tests/gst/test_trained_model.py) checks: per model, exit and
light, BOUND_FACTOR x the MAE measured here with audio. That test plays these
same scenes through a pipeline, so its MAE should be this one but for the
engine's rounding (the reference is float32 PyTorch) and the 24-bit FLAC audio.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
import audiocsrnet_ref  # noqa: E402
import features_ref  # noqa: E402
import scenes  # noqa: E402

TEST_SEED0 = scenes.TEST_SEED0
BOUND_FACTOR = 1.05


def test_set(n):
    """Images, log-mel with audio, counts and light of the held-out scenes."""
    images, logmel, counts, light = [], [], [], []
    for i in range(n):
        s = scenes.test_scene(TEST_SEED0, i)
        images.append(s["image"])
        logmel.append(features_ref.vggish(s["audio"])[0, 0])
        counts.append(s["count"])
        light.append(s["conditions"]["light"])
    return images, logmel, np.array(counts, float), np.array(light)


def evaluate(path, images, logmels):
    """{audio condition: {exit: predictions}} for one model file."""
    cfg, tensors = audiocsrnet_ref.load_model(path)
    ref = audiocsrnet_ref.AudioCSRNetRef(cfg, tensors, dtype=torch.float32)
    silent = features_ref.vggish(np.zeros(scenes.RATE, np.float32))[0, 0]
    out = {}
    for cond in ("audio", "silent"):
        preds = {}
        for img, lm in zip(images, logmels):
            r = ref.run(img, silent if cond == "silent" else lm)
            for name, v in r["exits"].items():
                preds.setdefault(name, []).append(audiocsrnet_ref.exit_value(v))
        out[cond] = {k: np.array(v) for k, v in preds.items()}
    return cfg, out


def metrics(pred, truth):
    err = pred - truth
    return {"mae": float(np.abs(err).mean()), "mse": float(np.sqrt((err ** 2).mean()))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model files (.safetensors)")
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--json", help="write the numbers here too")
    ap.add_argument("--record", help="write the numbers and the end-to-end test's bounds "
                    "here (models/default/crowd-synth.json)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    images, logmels, counts, light = test_set(args.scenes)
    print(f"Held-out test set: {args.scenes} scenes of models/synth/scenes.py (seeds "
          f"{TEST_SEED0}..), {np.sum(light == 'normal')} normal light, "
          f"{np.sum(light == 'low')} low light; counts {counts.min():.0f}..{counts.max():.0f}, "
          f"mean {counts.mean():.1f}.")
    print("MAE / MSE (root mean squared error) per exit; 'silent' = the audio removed.\n")
    report = {"scenes": args.scenes, "seed0": TEST_SEED0, "mean_count": float(counts.mean()),
              "models": {}}
    splits = {"all": np.ones(len(counts), bool), "normal": light == "normal",
              "low": light == "low"}
    for path in args.models:
        cfg, out = evaluate(path, images, logmels)
        name = os.path.basename(path)
        kind = cfg["exits"][0]["kind"] if cfg["exits"] else "none"
        rows = report["models"][name] = {"exit_kind": kind, "results": {}}
        print(f"{name} (exits: {kind})\n")
        print("| exit | audio | all MAE | all MSE | normal MAE | normal MSE | low MAE | low MSE |")
        print("|---|---|---|---|---|---|---|---|")
        for ex in out["audio"]:
            for cond in ("audio", "silent"):
                m = {s: metrics(out[cond][ex][mask], counts[mask]) for s, mask in splits.items()}
                rows["results"].setdefault(ex, {})[cond] = m
                print(f"| {ex} | {'yes' if cond == 'audio' else 'silent'} | "
                      + " | ".join(f"{m[s]['mae']:.2f} | {m[s]['mse']:.2f}" for s in splits)
                      + " |")
        print()
    print(f"({time.time() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    if args.record:
        bounds = {name: {ex: {s: round(BOUND_FACTOR * r["audio"][s]["mae"], 1) for s in splits}
                         for ex, r in m["results"].items()}
                  for name, m in report["models"].items()}
        with open(args.record, "w") as f:
            json.dump({"what": "accuracy of the bundled models on held-out synthetic scenes "
                       "(models/synth/report.py) and the end-to-end test's MAE bounds "
                       f"({BOUND_FACTOR} x the report's MAE with audio)",
                       "report": report, "e2e_bounds": bounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
