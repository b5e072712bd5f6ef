"""Times torchvision's classifier (float32, eager) with a model file's weights up to
each exit, for tests/bench/bench-classifier.c.

Usage: bench_classifier_torch.py MODEL --threads N --iterations I [--channels-last]

The backbone is torchvision's own ResNet152, DenseNet201 or InceptionV3 with the
file's weights (tests/reference/classifier_ref.py); the exits are
models/convert/exits_ref.py's. For each exit, the work it needs runs alone, as the
engine's benchmark runs it: the backbone's forward() up to the exit's tap (a forward
hook stops it there), then the exit; "final" is the whole forward(). Prints "exit
NAME MEDIAN_MS" lines after one warm-up run each.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import classifier_ref  # noqa: E402


class Stop(Exception):
    """Raised by the tap hook: the rest of the backbone is not needed."""


def tap_module(cfg, model, tap):
    """The module whose output is `tap` and how to read it (classifier_ref's rules
    for the taps this benchmark uses: module outputs, ResNet's convN, DenseNet's
    norm5)."""
    if cfg["arch"] == "resnet152" and len(tap.split(".")) == 3:
        k, i, conv = tap.split(".")
        return classifier_ref.module_at(model, f"{k}.{i}.bn{conv[-1]}"), F.relu
    if cfg["arch"] == "densenet201" and tap == "features.norm5":
        return model.features.norm5, F.relu
    if ".denselayer" in tap:
        raise SystemExit(f"bench_classifier_torch: tap {tap} is not supported here")
    return classifier_ref.module_at(model, tap), (lambda t: t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, tensors, _ = classifier_ref.load_model(args.model)
    ref = classifier_ref.ClassifierRef(cfg, tensors, torch.float32)
    model = ref.model
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(
        (1, 3, cfg["input_height"], cfg["input_width"])).astype(np.float32))
    x = x.contiguous(memory_format=fmt)

    def upto(e):
        if e is None:
            return model(x)
        mod, read = tap_module(cfg, model, e["tap"])
        seen = {}

        def hook(_m, _i, out):
            seen["t"] = read(out)
            raise Stop()
        h = mod.register_forward_hook(hook)
        try:
            model(x)
        except Stop:
            pass
        finally:
            h.remove()
        return ref.exits[e["name"]](seen["t"])

    with torch.no_grad():
        for e in cfg["exits"] + [None]:
            upto(e)
            times = []
            for _ in range(args.iterations):
                t0 = time.perf_counter()
                upto(e)
                times.append((time.perf_counter() - t0) * 1000.0)
            name = e["name"] if e else "final"
            print(f"exit {name} {statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
