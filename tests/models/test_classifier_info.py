#!/usr/bin/python3
"""`earlyexit info` on the paper's classification configurations (224x224, CIFAR-10
heads): every exit's parameter count equals docs/models.md 3.4 exactly, for SL-ViT and
CNN exits at the paper's taps of ResNet152, DenseNet201 and InceptionV3; and the
FLOPs of each whole backbone are torchvision's (counted here from its modules).

The weights are zeros: only the structure matters, so the model files are written
straight from the converter's tensor table (no torchvision run, no calibration).

Usage: test_classifier_info.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "convert"))
import classifier  # noqa: E402

# docs/models.md 3.4: (SL-ViT b1, b2), (CNN b1, b2)
EXPECTED = {
    "resnet152": ((591818, 788426), (779290, 834586)),
    "densenet201": ((591818, 657354), (779290, 797722)),
    "inceptionv3": ((559306, 559306), (605722, 605722)),
}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def torchvision_gflop(cfg):
    """Multiply-adds x 2 of torchvision's convs and linears at the config's input
    size. The engine also counts its BN, pools, additions and exits, well under
    1 % of a backbone: the two are compared at 1 %."""
    import torch
    import torch.nn as nn
    m = classifier.torchvision_model(cfg)
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += 2 * out.numel() * mod.weight[0].numel()
        else:
            total[0] += 2 * mod.weight.numel()
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            mod.register_forward_hook(hook)
    with torch.no_grad():
        m(torch.zeros(1, 3, cfg["input_height"], cfg["input_width"]))
    return total[0] / 1e9


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    for arch, ((s1, s2), (c1, c2)) in EXPECTED.items():
        t1, t2 = classifier.ARCHS[arch]["taps"].values()
        args = ["--arch", arch, "--classes", "10", "--classifier", "two_layer",
                "--classifier-hidden", "256", "--exit", f"s1:slvit:{t1}",
                "--exit", f"c1:cnn:{t1}", "--exit", f"s2:slvit:{t2}",
                "--exit", f"c2:cnn:{t2}"]
        o = vars(classifier.parser().parse_args(args))
        o.update(exit_specs=o["exit"], transform_input=False)
        cfg = classifier.make_config(o)
        model = os.path.join(work, f"paper-{arch}.safetensors")
        classifier.write_model(model, cfg, {k: np.zeros(s, np.float32) for k, s in
                                            classifier.tensor_shapes(cfg).items()},
                               dtype="f16", source="zeros (structure only)")
        info = json.loads(run([ee, "info", model, "--json"]))
        exits = {e["name"]: e for e in info["exits"]}
        for name, want in (("s1", s1), ("s2", s2), ("c1", c1), ("c2", c2)):
            got = exits[name]["params"]
            print(f"{arch:12s} {name} ({'SL-ViT' if name[0] == 's' else 'CNN':6s} at "
                  f"{cfg['exits'][['s1', 'c1', 's2', 'c2'].index(name)]['tap']:26s}) "
                  f"params {got:>7d} expected {want:>7d}")
            if got != want:
                sys.exit(f"{arch} {name}: {got} parameters, docs/models.md 3.4 says {want}")
        got = exits["final"]["flops_to_exit"] / 1e9
        want = torchvision_gflop(cfg)
        print(f"{arch:12s} backbone GFLOP {got:.3f}, torchvision's convs and linears "
              f"{want:.3f}")
        if abs(got - want) > 0.01 * want:
            sys.exit(f"{arch}: {got:.3f} GFLOP, torchvision {want:.3f}")
    text = run([ee, "info", model])
    if "classification" not in text or "Mixed_5c" not in text:
        sys.exit(f"info text output:\n{text}")
    print("exit parameter counts match docs/models.md 3.4; backbone FLOPs match torchvision's")


if __name__ == "__main__":
    main()
