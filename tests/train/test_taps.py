#!/usr/bin/python3
"""The taps of the classification backbones come from one definition:
exits_ref.classifier_taps (names, aliases, shapes; the converters check exit
configs against it) and models/convert/taps.py (which tensor of torchvision's
model a name is; the PyTorch reference and earlyexit-train read taps through
it). This test checks that the C builders accept exactly those names, in that
order: a model file whose exit names an unknown tap makes `earlyexit info` list
the taps it knows, and that list must be the Python one (AudioCSRNet: frontend,
backend.0..N-1). That every hook gives the table's shape is
tests/reference/test_classifier_convert.py's test_taps_are_torchvisions.

Usage: test_taps.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "convert"))
import audiocsrnet  # noqa: E402
import classifier  # noqa: E402
import eesafetensors  # noqa: E402
import exits_ref  # noqa: E402
from trainlib import start  # noqa: E402

SIZES = {"resnet152": 32, "densenet201": 32, "inceptionv3": 75}  # input sizes


def zero_model(path, cfg, shapes, fmt_version, bad_tap):
    """A model file of zeros whose first exit reads `bad_tap`."""
    tensors = {k: np.zeros(v, np.float32) for k, v in shapes.items()}
    cfg = json.loads(json.dumps(cfg))
    cfg["exits"][0]["tap"] = bad_tap
    eesafetensors.save(path, tensors, {"format": audiocsrnet.FORMAT,
                                       "format_version": fmt_version,
                                       "config": json.dumps(cfg)})


def engine_error(ee, path):
    p = subprocess.run([ee, "info", path], capture_output=True, text=True)
    if p.returncode == 0:
        sys.exit(f"{path}: earlyexit info accepted an exit at an unknown tap")
    return p.stderr


def classifier_arch(ee, work, arch):
    size = SIZES[arch]
    o = vars(classifier.parser().parse_args(
        ["--arch", arch, "--classes", "3", "--input-size", f"{size}x{size}",
         "--exit", f"e:cnn:{classifier.ARCHS[arch]['taps']['b1']}", "--cnn-pool", "1"]))
    o["classifier"], o["classifier_hidden"], o["transform_input"] = "linear", 0, False
    o["exit_specs"] = o["exit"]
    cfg = classifier.make_config(o)
    table = exits_ref.classifier_taps(cfg)
    names = [n for name, alias, _ in table for n in (name, alias) if n]
    path = os.path.join(work, f"{arch}.safetensors")
    zero_model(path, cfg, classifier.tensor_shapes(cfg), classifier.FORMAT_VERSION,
               "no.such.tap")
    err = engine_error(ee, path)
    m = re.search(r"its taps, in order: (.*?)\)\s*$", err.strip(), re.S)
    if not m:
        sys.exit(f"{arch}: the engine's message lists no taps:\n{err}")
    engine = [t.strip() for t in m.group(1).split(",")]
    if engine != names:
        extra = [t for t in engine if t not in names]
        missing = [t for t in names if t not in engine]
        sys.exit(f"{arch}: C and Python taps differ: only in C {extra}, only in Python "
                 f"{missing}" + ("" if extra or missing else " (order differs)"))
    print(f"{arch}: {len(engine)} tap names (aliases included) agree with C")


def audiocsrnet_taps(ee, work):
    o = vars(audiocsrnet.parser().parse_args(["--width-div", "8", "--input-size", "64x64",
                                              "--exit-list", "v1", "--patch", "4"]))
    o["bn_affine"] = False
    cfg = audiocsrnet.make_config(o)
    path = os.path.join(work, "audiocsrnet.safetensors")
    zero_model(path, cfg, audiocsrnet.tensor_shapes(cfg), audiocsrnet.FORMAT_VERSION,
               "backend.6")
    err = engine_error(ee, path)
    n = len(cfg["backend"])
    if f"frontend or backend.0..backend.{n - 1}" not in err:
        sys.exit(f"audiocsrnet: the engine's taps are not frontend, backend.0..{n - 1}:\n{err}")
    for t in ["frontend"] + [f"backend.{i}" for i in range(n)]:
        exits_ref.tap_shape(cfg, t)
    print(f"audiocsrnet: frontend and backend.0..{n - 1} in C and Python")


def main():
    ee, work, _ = start(__doc__)
    for arch in SIZES:
        classifier_arch(ee, work, arch)
    audiocsrnet_taps(ee, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
