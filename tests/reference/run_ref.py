#!/usr/bin/python3
"""Run the PyTorch reference on a model file and print every exit's value as JSON.

  /usr/bin/python3 tests/reference/run_ref.py MODEL.safetensors \\
      --image IMG.npy --audio LOGMEL.npy [--out OUT.json] [--density D.npy] [--dump DIR]

IMG.npy: (H, W, 3) RGB pixel values at the model's input size (0..255 when the
preprocess scale is 1/255), any numeric dtype; with --preprocessed, the network
input itself, (3, H, W) or (1, 3, H, W) float. LOGMEL.npy: 96 x 64 log-mel values
(any shape with 6144 elements, time-major). Without --image/--audio, inputs are drawn
from --seed and can be kept with --save-inputs PREFIX (PREFIX.image.npy, PREFIX.audio.npy).

Output JSON: {"order": [...], "exits": {"v1": 1.23, ..., "final": 4.56},
"audio_vector_sum": ..., "density_sum": ..., "dtype": "float64"}.
--density writes the final low-resolution density map D (H/8, W/8) before the count
scale, float32; --dump DIR writes every tap (frontend.npy, backend.0.npy, ...) and
audio_vector.npy as float32 for op-level debugging. Exit status non-zero on error.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audiocsrnet_ref as ref  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--image")
    ap.add_argument("--audio")
    ap.add_argument("--preprocessed", action="store_true",
                    help="--image is the normalised (3,H,W) network input")
    ap.add_argument("--out", help="write the JSON here as well")
    ap.add_argument("--density", help="write the final density map D (.npy)")
    ap.add_argument("--dump", help="directory for tap tensors (.npy)")
    ap.add_argument("--float32", action="store_true", help="compute in float32 "
                    "(default float64)")
    ap.add_argument("--seed", type=int, default=0, help="for inputs not given")
    ap.add_argument("--save-inputs", help="prefix for writing generated inputs")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        cfg, tensors = ref.load_model(args.model)
    except Exception as exc:  # noqa: BLE001
        print(f"error: {exc}", file=sys.stderr)
        return 1
    m = ref.AudioCSRNetRef(cfg, tensors, torch.float32 if args.float32 else torch.float64)
    rng = np.random.default_rng(args.seed)
    h, w = cfg["input_height"], cfg["input_width"]
    if args.image:
        image = np.load(args.image)
    else:
        image = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
        args.preprocessed = False
    logmel = np.load(args.audio) if args.audio else \
        rng.uniform(-4.6, 2.0, (96, 64)).astype(np.float32)
    if args.save_inputs:
        if not args.image:
            np.save(args.save_inputs + ".image.npy", image)
        if not args.audio:
            np.save(args.save_inputs + ".audio.npy", logmel)
    try:
        r = m.run(image, logmel, preprocessed=args.preprocessed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = {"order": list(r["exits"]),
           "exits": {k: ref.exit_value(v) for k, v in r["exits"].items()},
           "audio_vector_sum": float(r["audio_vector"].sum()),
           "density_sum": float(r["density"].sum()),
           "dtype": "float32" if args.float32 else "float64"}
    text = json.dumps(out, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.density:
        np.save(args.density, r["density"].numpy().astype(np.float32))
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        for k, v in r["taps"].items():
            np.save(os.path.join(args.dump, k + ".npy"), v.numpy().astype(np.float32))
        np.save(os.path.join(args.dump, "audio_vector.npy"),
                r["audio_vector"].numpy().astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
