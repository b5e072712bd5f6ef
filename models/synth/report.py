#!/usr/bin/env python3
"""Accuracy report of crowd-counting model files on held-out synthetic scenes.

    python3 models/synth/report.py models/default/crowd-synth-slvit.safetensors \\
        models/default/crowd-synth-cnn.safetensors [--scenes 600] [--json OUT]

The test set is SCENES scenes of models/synth/scenes.py with seeds
2,000,000.. (training used 0..5999, validation 1,000,000..), half in normal
light and half in low light (alternating). Every model file runs through the
PyTorch reference of the model format (tests/reference/audiocsrnet_ref.py,
float32; the engine matches it to 1e-4, tests/models; models with the same
backbone share its run, in batches), with the scene's audio
and again with the audio removed (a silent window: 16000 zero samples, whose
log-mel is flat). Per exit it prints MAE and MSE, where MSE is the crowd-
counting papers' (CSRNet, AudioCSRNet) root of the mean squared error.

--compare adds the models side by side: per exit and light, each model's MAE and
how far the later models are from the first in percent (e.g. the paper's SL-ViT
head against the per-token head, trained on the same backbone, data and budget:
models/synth/train.py --variants slvit-flatten,slvit-per-token).

--record FILE writes the report as JSON together with the bounds that the
end-to-end test (tests/gst/test_trained_model.py) checks: per model, exit and
light, BOUND_FACTOR x the MAE measured here with audio. That test plays these
same scenes through a pipeline, so its MAE should be this one but for the
engine's rounding (the reference is float32 PyTorch) and the 24-bit FLAC audio.
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

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


def test_set(n, densities=None):
    """Images, log-mel with audio, counts and light of the held-out scenes;
    their density maps (HEIGHT, WIDTH) appended to `densities` if given."""
    images, logmel, counts, light = [], [], [], []
    for i in range(n):
        s = scenes.test_scene(TEST_SEED0, i)
        images.append(s["image"])
        logmel.append(features_ref.vggish(s["audio"])[0, 0])
        counts.append(s["count"])
        light.append(s["conditions"]["light"])
        if densities is not None:
            densities.append(s["density"])
    return images, logmel, np.array(counts, float), np.array(light)


def _backbone_key(cfg, tensors):
    """Models with the same key have the same backbone (config and tensors)."""
    h = hashlib.sha1(json.dumps({k: v for k, v in cfg.items() if k != "exits"},
                                sort_keys=True).encode())
    for k in sorted(tensors):
        if not k.startswith("exits."):
            h.update(k.encode() + np.ascontiguousarray(tensors[k]).tobytes())
    return h.hexdigest()


@torch.no_grad()
def _run_group(refs, images, logmels, bs=16):
    """{exit: predictions} of models sharing one backbone: the backbone of the
    reference (audiocsrnet_ref, as AudioCSRNetRef.forward computes it) runs
    once per batch of images, and every model's exits on its taps."""
    ref = refs[0]
    c = ref.cfg
    preds = [{} for _ in refs]
    maps = [{} for _ in refs]
    for i in range(0, len(images), bs):
        x = torch.cat([ref.preprocess(img) for img in images[i:i + bs]])
        a = torch.cat([ref.audio_tensor(lm) for lm in logmels[i:i + bs]])
        a = ref._vgg(a, c["audio"], "audio").mean(dim=(2, 3))
        x = ref._vgg(x, c["frontend"], "frontend")
        taps = {"frontend": x}
        for j in range(len(c["backend"])):
            x = ref._backend_block(x, j, a)
            taps[f"backend.{j}"] = x
        d = F.conv2d(x, ref.t["output.weight"], ref.t["output.bias"])[:, 0]
        if c["count_head"] == "sum":
            raw = d.sum(dim=(1, 2))
        else:
            raw = (ref.t["dense.weight"][0] * d.reshape(len(d), -1)).sum(dim=1)
            if c["dense_bias"]:
                raw = raw + ref.t["dense.bias"][0]
        for r, p, mp in zip(refs, preds, maps):
            for e in r.cfg["exits"]:
                m = r.exits[e["name"]]
                if e["kind"] == "slvit" and e.get("head_kind") == "per_token":
                    v, grid = m.forward_map(taps[e["tap"]], a)
                    mp.setdefault(e["name"], []).append(grid.numpy())
                else:
                    v = m(taps[e["tap"]], a)
                p.setdefault(e["name"], []).extend(v[:, 0].tolist())
            p.setdefault("final", []).extend((c["count_scale"] * raw).tolist())
            if c["count_head"] == "sum":
                mp.setdefault("final", []).append((c["count_scale"] * d).numpy())
    return ([{k: np.array(v) for k, v in p.items()} for p in preds],
            [{k: np.concatenate(v) for k, v in mp.items()} for mp in maps])


def evaluate(paths, images, logmels):
    """[(config, {audio condition: {exit: predictions}})] for the model files."""
    silent = features_ref.vggish(np.zeros(scenes.RATE, np.float32))[0, 0]
    models, groups = [], {}
    for path in paths:
        cfg, tensors = audiocsrnet_ref.load_model(path)
        models.append((cfg, {}))
        ref = audiocsrnet_ref.AudioCSRNetRef(cfg, tensors, dtype=torch.float32)
        groups.setdefault(_backbone_key(cfg, tensors), []).append((ref, models[-1][1]))
    for group in groups.values():
        for cond in ("audio", "silent"):
            lms = [silent] * len(images) if cond == "silent" else logmels
            preds, maps = _run_group([r for r, _ in group], images, lms)
            for (_, out), p, mp in zip(group, preds, maps):
                out[cond] = p
                if cond == "audio":
                    out["maps"] = mp
    return models


def metrics(pred, truth):
    err = pred - truth
    return {"mae": float(np.abs(err).mean()), "mse": float(np.sqrt((err ** 2).mean()))}


def map_quality(cfg, maps, densities):
    """Per exit with a map: how it places the people. Per-cell MAE against the
    truth (the scenes' density maps summed over the map's cells), against the
    same exit's count spread evenly over its cells (a map that places nothing)
    and against the final exit's map summed to the same grid."""
    truth = np.stack(densities)
    n, h, w = truth.shape
    rows = {}
    for name, m in maps.items():
        if name == "final":
            continue
        gh, gw = m.shape[1:]
        t = truth.reshape(n, gh, h // gh, gw, w // gw).sum(axis=(2, 4))
        even = np.broadcast_to(m.sum(axis=(1, 2))[:, None, None] / (gh * gw), m.shape)
        row = {"grid": [gh, gw], "map_mae": float(np.abs(m - t).mean()),
               "even_mae": float(np.abs(even - t).mean()),
               "negative_cells": float((m < 0).mean()), "truth_mean": float(t.mean())}
        if "final" in maps:
            f = maps["final"]
            fh, fw = f.shape[1:]
            if fh % gh == 0 and fw % gw == 0:
                pooled = f.reshape(n, gh, fh // gh, gw, fw // gw).sum(axis=(2, 4))
                row["final_mae"] = float(np.abs(pooled - t).mean())
        rows[name] = row
    return rows


def exit_kind(cfg):
    """slvit, slvit per_token, cnn or none."""
    if not cfg["exits"]:
        return "none"
    e = cfg["exits"][0]
    return e["kind"] + (" per_token" if e.get("head_kind") == "per_token" else "")


def compare(models, splits):
    """Prints the models' MAE side by side per exit, audio condition and light;
    returns the rows ({exit, audio, light, mae: [per model], change_pct: [...]})."""
    names = list(models)
    rows = []
    for cond in ("audio", "silent"):
        print(f"Side by side, MAE {'with audio' if cond == 'audio' else 'audio removed'}; "
              f"change against {names[0]} ({models[names[0]]['exit_kind']}):\n")
        print("| exit | light | " + " | ".join(f"{n} ({models[n]['exit_kind']})" for n in names)
              + " | " + " | ".join("change" if len(names) == 2 else f"change of {i + 1}"
                                 for i in range(1, len(names))) + " |")
        print("|---|---|" + "---|" * (2 * len(names) - 1))
        for ex in models[names[0]]["results"]:
            if not all(ex in models[n]["results"] for n in names):
                continue
            for split in splits:
                mae = [models[n]["results"][ex][cond][split]["mae"] for n in names]
                change = [100.0 * (m - mae[0]) / mae[0] for m in mae[1:]]
                rows.append({"exit": ex, "audio": cond, "light": split, "mae": mae,
                             "change_pct": change})
                print(f"| {ex} | {split} | " + " | ".join(f"{m:.2f}" for m in mae) + " | "
                      + " | ".join(f"{c:+.1f}%" for c in change) + " |")
        print()
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="model files (.safetensors)")
    ap.add_argument("--scenes", type=int, default=600)
    ap.add_argument("--json", help="write the numbers here too")
    ap.add_argument("--record", help="write the numbers and the end-to-end test's bounds "
                    "here (models/default/crowd-synth.json)")
    ap.add_argument("--maps", action="store_true",
                    help="for exits with a map (per-token SL-ViT): per-cell MAE of the map "
                    "against the scenes' density, with audio")
    ap.add_argument("--compare", action="store_true",
                    help="print the models' MAE side by side (the first as the baseline)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    densities = [] if args.maps else None
    images, logmels, counts, light = test_set(args.scenes, densities)
    print(f"Held-out test set: {args.scenes} scenes of models/synth/scenes.py (seeds "
          f"{TEST_SEED0}..), {np.sum(light == 'normal')} normal light, "
          f"{np.sum(light == 'low')} low light; counts {counts.min():.0f}..{counts.max():.0f}, "
          f"mean {counts.mean():.1f}.")
    print("MAE / MSE (root mean squared error) per exit; 'silent' = the audio removed.\n")
    report = {"scenes": args.scenes, "seed0": TEST_SEED0, "mean_count": float(counts.mean()),
              "models": {}}
    splits = {"all": np.ones(len(counts), bool), "normal": light == "normal",
              "low": light == "low"}
    models = evaluate(args.models, images, logmels)
    for path, (cfg, out) in zip(args.models, models):
        name = os.path.basename(path)
        kind = exit_kind(cfg)
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
    if args.maps:
        for path, (cfg, out) in zip(args.models, models):
            rows = map_quality(cfg, out["maps"], densities)
            if not rows:
                continue
            name = os.path.basename(path)
            report["models"][name]["maps"] = rows
            print(f"Maps of {name}, with audio: per-cell MAE against the truth summed to "
                  "the map's cells; the exit's count spread evenly; the final exit's map "
                  "summed to the same cells:\n")
            print("| exit | grid | mean truth per cell | map MAE | count spread evenly | "
                  "final exit's map | negative cells |")
            print("|---|---|---|---|---|---|---|")
            for ex, r in rows.items():
                fm = f"{r['final_mae']:.3f}" if "final_mae" in r else "-"
                print(f"| {ex} | {r['grid'][1]}x{r['grid'][0]} | {r['truth_mean']:.3f} | "
                      f"{r['map_mae']:.3f} | {r['even_mae']:.3f} | {fm} | "
                      f"{100 * r['negative_cells']:.1f}% |")
            print()
    if args.compare and len(report["models"]) > 1:
        report["compare"] = compare(report["models"], list(splits))
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
