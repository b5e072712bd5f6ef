#!/usr/bin/env python3
"""End-to-end accuracy of the bundled crowd-counting model through a real
pipeline (meson test gst-trained-model).

Generates the held-out test set of models/synth/report.py as a clip
(scenes.test_clip: the report's scenes one per second after a warm-up scene,
normal and low light alternating, each scene's audio centred on its frame;
no training or validation scene), encodes it as Matroska (raw RGB video +
24-bit FLAC), and plays it through
`filesrc ! decodebin ! ... avcrowdcount ...` with pipelines/embed-example once
per exit (policy fixed, max-exit k). Checks, on the scored frames:
- every frame has a fresh result from exit k with its 1 s window fully covered;
- MAE per exit, overall and per light, within the bounds recorded in
  models/default/crowd-synth.json (from models/synth/report.py, see there);
- the final exit beats V1 overall, and AV1 and AV2 beat V1 in low light.
Prints the table. Exit status 1 names what failed.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "synth"))
import scenes  # noqa: E402


def clip_truth(workdir, seed0, n):
    """Makes WORKDIR/clip.mkv unless it is there from the same generator
    (the tests of both exit kinds share it); returns the frames' truth."""
    with open(scenes.__file__, "rb") as f:
        version = hashlib.sha256(f.read()).hexdigest()
    info = {"kind": "test", "seed": seed0, "scenes": n, "generator_sha256": version}
    path = os.path.join(workdir, "truth.json")
    if os.path.exists(path) and os.path.exists(os.path.join(workdir, "clip.mkv")):
        with open(path) as f:
            old = json.load(f)
        if all(old.get(k) == v for k, v in info.items()):
            return old["frames"]
    frames, audio, truth = scenes.test_clip(seed0, n)
    scenes.write_clip(workdir, frames, audio, truth, 1, info, mkv=True)
    return truth


def run_exit(embed, model, clip, k, env):
    cmd = [embed, "--policy", "fixed", "--max-exit", str(k), "--deadline", "0", model, clip]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if p.returncode:
        raise SystemExit(f"FAIL: {' '.join(cmd)} exited {p.returncode}:\n{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--embed", required=True, help="pipelines/embed-example")
    ap.add_argument("--plugin-path", required=True, help="the build's gst/ folder")
    ap.add_argument("--model", required=True)
    ap.add_argument("--bounds", required=True, help="models/default/crowd-synth.json")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()

    with open(args.bounds) as f:
        spec = json.load(f)
    seed0, n = spec["report"]["seed0"], spec["report"]["scenes"]
    truth = clip_truth(args.workdir, seed0, n)
    clip = os.path.join(args.workdir, "clip.mkv")
    env = dict(os.environ, GST_PLUGIN_PATH=args.plugin_path)
    bounds = spec["e2e_bounds"][os.path.basename(args.model)]
    exits = list(bounds)  # anytime order, final last
    scored = [t for t in truth if t["scored"]]
    counts = np.array([t["count"] for t in scored], float)
    light = np.array([t["light"] for t in scored])
    masks = {"all": np.ones(len(scored), bool), "normal": light == "normal",
             "low": light == "low"}
    failures, mae = [], {}
    print(f"clip: {len(truth)} scenes (seeds {seed0 - 1}..), {len(scored)} scored "
          f"({masks['normal'].sum()} normal, {masks['low'].sum()} low light), counts "
          f"{counts.min():.0f}..{counts.max():.0f}")
    print(f"{'exit':<6} {'MAE all':>8} {'normal':>8} {'low':>8}   bounds (all/normal/low)")
    for k, name in enumerate(exits):
        rows = run_exit(args.embed, args.model, clip, -1 if name == "final" else k, env)
        by_pts = {round(r["pts"], 3): r for r in rows}
        if len(rows) != len(truth):
            failures.append(f"exit {name}: {len(rows)} frames out, {len(truth)} in")
        pred = []
        for t in scored:
            r = by_pts.get(round(t["pts"], 3))
            if r is None:
                failures.append(f"exit {name}: no result for the frame at {t['pts']} s")
                pred.append(np.nan)
                continue
            if r["exit"] != name or not r["fresh"] or r["audio_coverage"] < 0.999:
                failures.append(f"exit {name}, frame at {t['pts']} s: exit {r['exit']}, "
                                f"fresh {r['fresh']}, audio coverage {r['audio_coverage']}")
            pred.append(r["count"])
        err = np.abs(np.array(pred) - counts)
        mae[name] = {s: float(err[m].mean()) for s, m in masks.items()}
        b = bounds[name]
        print(f"{name:<6} {mae[name]['all']:>8.2f} {mae[name]['normal']:>8.2f} "
              f"{mae[name]['low']:>8.2f}   {b['all']:.1f} / {b['normal']:.1f} / {b['low']:.1f}")
        for s in masks:
            if not mae[name][s] <= b[s]:
                failures.append(f"exit {name}: MAE {s} {mae[name][s]:.2f} > bound {b[s]:.2f}")
    if not mae["final"]["all"] < mae["v1"]["all"]:
        failures.append(f"final exit MAE {mae['final']['all']:.2f} not below V1's "
                        f"{mae['v1']['all']:.2f}")
    for av in ("av1", "av2"):
        if not mae[av]["low"] < mae["v1"]["low"]:
            failures.append(f"low light: {av} MAE {mae[av]['low']:.2f} not below V1's "
                            f"{mae['v1']['low']:.2f}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("OK: every exit within its bound; final < V1; AV1, AV2 < V1 in low light")
    return 0


if __name__ == "__main__":
    sys.exit(main())
