#!/usr/bin/env python3
"""int8 on the CPU: calibration data and the held-out accuracy per precision.

    # calibration inputs: training scenes (seeds 0..N-1), as the engine's
    # network inputs (NAME.npy, preprocessed) and log-mel (NAME.audio.npy)
    python3 models/synth/int8_eval.py data MODEL --scenes 200 --out DIR
    # held-out accuracy: the report's 600 test scenes (models/synth/report.py,
    # seeds 2,000,000..) through `earlyexit run` in each precision
    python3 models/synth/int8_eval.py eval MODEL --earlyexit BUILD/models/earlyexit \\
        [--precisions fp32,bf16,int8] [--scenes 600] [--cache DIR] [--json OUT]

--cache keeps the test scenes' inputs in DIR (made on first use), for
another model or calibration.

The default model's calibration (docs/cpu-backend.md, "int8"):

    python3 models/synth/int8_eval.py data MODEL --scenes 200 --out /tmp/calib
    earlyexit calibrate MODEL --data /tmp/calib --out MODEL

MAE per exit and per light is printed with the scene's audio, for each
precision, and int8's difference from fp32 in percent.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
import eesafetensors  # noqa: E402
import features_ref  # noqa: E402
import scenes  # noqa: E402


def preprocess(cfg, image):
    p = cfg["preprocess"]
    img = np.asarray(image, np.float64)
    if p.get("channel_order") == "bgr":
        img = img[:, :, ::-1]
    x = (img * p["scale"] - np.array(p["mean"])) / np.array(p["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1))[None].astype(np.float32)


def model_config(path):
    _, meta = eesafetensors.load(path)
    return json.loads(meta["config"])


def write_scene(cfg, s, out, name):
    np.save(os.path.join(out, name + ".npy"), preprocess(cfg, s["image"]))
    lm = features_ref.vggish(s["audio"])[0, 0].astype(np.float32)
    np.save(os.path.join(out, name + ".audio.npy"), lm.reshape(1, 1, 96, 64))


def cmd_data(args):
    cfg = model_config(args.model)
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.scenes):
        write_scene(cfg, scenes.make_scene(args.seed0 + i), args.out, f"scene{i:05d}")
    print(f"{args.scenes} training scenes (seeds {args.seed0}..) in {args.out}")
    return 0


def cmd_eval(args):
    cfg = model_config(args.model)
    precisions = args.precisions.split(",")
    counts, light = [], []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = args.cache or scratch
        os.makedirs(tmp, exist_ok=True)
        truth = os.path.join(tmp, "truth.json")
        known = json.load(open(truth)) if os.path.exists(truth) else {}
        if known.get("preprocess") != cfg["preprocess"] or len(known.get("count", [])) < args.scenes:
            known = {"preprocess": cfg["preprocess"], "count": [], "light": []}
            for i in range(args.scenes):
                s = scenes.test_scene(scenes.TEST_SEED0, i)
                write_scene(cfg, s, tmp, f"t{i:05d}")
                known["count"].append(s["count"])
                known["light"].append(s["conditions"]["light"])
            json.dump(known, open(truth, "w"))
        counts = np.array(known["count"][:args.scenes], float)
        light = np.array(known["light"][:args.scenes])
        preds = {}
        for p in precisions:
            for i in range(args.scenes):
                base = os.path.join(tmp, f"t{i:05d}")
                r = subprocess.run([args.earlyexit, "run", args.model, "--image", base + ".npy",
                                    "--audio", base + ".audio.npy", "--json", "--precision", p,
                                    "--threads", str(args.threads)],
                                   check=True, capture_output=True, text=True)
                for e in json.loads(r.stdout)["exits"]:
                    preds.setdefault(p, {}).setdefault(e["name"], []).append(e["value"])
    splits = {"all": np.ones(len(counts), bool), "normal": light == "normal", "low": light == "low"}
    report = {"model": os.path.basename(args.model), "scenes": args.scenes, "mae": {}}
    print(f"{args.model}: MAE on the {args.scenes} held-out scenes (with audio)\n")
    head = "| exit | light | " + " | ".join(f"{p} MAE" for p in precisions)
    if "int8" in precisions and "fp32" in precisions:
        head += " | int8 vs fp32"
    print(head + " |")
    print("|---" * (head.count("|")) + "|")
    for ex in preds[precisions[0]]:
        for sp, mask in splits.items():
            maes = {p: float(np.abs(np.array(preds[p][ex])[mask] - counts[mask]).mean())
                    for p in precisions}
            report["mae"].setdefault(ex, {})[sp] = maes
            row = f"| {ex} | {sp} | " + " | ".join(f"{maes[p]:.3f}" for p in precisions)
            if "int8" in maes and "fp32" in maes:
                row += f" | {100 * (maes['int8'] - maes['fp32']) / maes['fp32']:+.2f}%"
            print(row + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data", help="calibration inputs from training scenes")
    d.add_argument("model")
    d.add_argument("--scenes", type=int, default=200)
    d.add_argument("--seed0", type=int, default=0)
    d.add_argument("--out", required=True)
    e = sub.add_parser("eval", help="held-out MAE per precision")
    e.add_argument("model")
    e.add_argument("--earlyexit", required=True)
    e.add_argument("--precisions", default="fp32,bf16,int8")
    e.add_argument("--scenes", type=int, default=600)
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--cache", help="keep the test scenes' inputs here")
    e.add_argument("--json")
    args = ap.parse_args(argv)
    return cmd_data(args) if args.cmd == "data" else cmd_eval(args)


if __name__ == "__main__":
    sys.exit(main())
