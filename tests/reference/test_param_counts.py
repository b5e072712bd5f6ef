#!/usr/bin/python3
"""Exit parameter counts against docs/models.md 3.4 (the paper's tables), counted
twice: from the PyTorch exit modules and from the converter's tensor table (what a
model file holds). No forward pass; runs in about a second.

  /usr/bin/python3 tests/reference/test_param_counts.py   (exit status 0 = all match)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402

import audiocsrnet as conv  # noqa: E402
import exits_ref  # noqa: E402

# (label, kind, tap shape (C, H, W), module options, expected count)
CLASSIFICATION = [
    ("SL-ViT ResNet152 b1", "slvit", (128, 28, 28), dict(patch=4), 591_818),
    ("SL-ViT ResNet152 b1, 1 head", "slvit", (128, 28, 28), dict(patch=4, heads=1), 545_706),
    ("SL-ViT ResNet152 b1, 16 heads", "slvit", (128, 28, 28), dict(patch=4, heads=16), 608_586),
    ("SL-ViT ResNet152 b1, CIFAR-100", "slvit", (128, 28, 28),
     dict(patch=4, outputs=100), 614_948),
    ("SL-ViT ResNet152 b1, with final LN", "slvit", (128, 28, 28),
     dict(patch=4, final_ln=True), 591_882),
    ("SL-ViT ResNet152 b2", "slvit", (512, 28, 28), dict(patch=4), 788_426),
    ("SL-ViT DenseNet201 b1", "slvit", (128, 28, 28), dict(patch=4), 591_818),
    ("SL-ViT DenseNet201 b2", "slvit", (256, 28, 28), dict(patch=4), 657_354),
    ("SL-ViT InceptionV3", "slvit", (288, 25, 25), dict(patch=5), 559_306),
    ("SL-ViT InceptionV3 CIFAR-100 (d=36, h=8)", "slvit", (288, 25, 25),
     dict(patch=5, dim=36, heads=8, outputs=100), 630_092),
    ("CNN ResNet152 b1", "cnn", (128, 28, 28), {}, 779_290),
    ("CNN ResNet152 b2", "cnn", (512, 28, 28), {}, 834_586),
    ("CNN DenseNet201 b1", "cnn", (128, 28, 28), {}, 779_290),
    ("CNN DenseNet201 b2", "cnn", (256, 28, 28), {}, 797_722),
    ("CNN InceptionV3", "cnn", (288, 25, 25), {}, 605_722),
]

AUDIOCSRNET = {"slvit": {"v1": 2_353_825, "av1": 2_362_049, "av2": 2_353_825},
               "cnn": {"v1": 2_499_345, "av1": 2_515_761, "av2": 2_499_345}}


def _paper_config(kind):
    o = vars(conv.parser().parse_args(["--input-size", "1024x576", "--exit-kind", kind]))
    o["bn_affine"] = False
    return conv.make_config(o)


def test_classification_exits(tmp):
    bad = []
    for label, kind, shape, kw, want in CLASSIFICATION:
        if kind == "slvit":
            m = exits_ref.SLViTExit(shape, **{"dim": 32, "heads": 12, "outputs": 10, **kw})
        else:  # classification CNN exit: 'valid' conv, 2x2 pool
            m = exits_ref.CNNExit(shape, conv_padding=0, pool=2, outputs=10, **kw)
        got = exits_ref.count_params(m)
        print(f"  {label:44s} {got:>10,d}  (expected {want:,d})")
        if got != want:
            bad.append(label)
    assert not bad, f"counts differ: {bad}"


def test_audiocsrnet_exits(tmp):
    bad = []
    for kind, want in AUDIOCSRNET.items():
        cfg = _paper_config(kind)
        from_table = conv.exit_param_counts(cfg)
        modules = exits_ref.ExitSet(cfg)
        for name, n in want.items():
            got = exits_ref.count_params(modules[name])
            print(f"  {kind:5s} AudioCSRNet {name:4s} module {got:>10,d} "
                  f"model file {from_table[name]:>10,d}  (expected {n:,d})")
            if got != n or from_table[name] != n:
                bad.append(f"{kind} {name}")
    assert not bad, f"counts differ: {bad}"


def test_backbone_known_counts(tmp):
    """VGG-16 conv1_1..conv4_3 and the VGGish conv stack have well-known sizes."""
    shapes = conv.tensor_shapes(_paper_config("slvit"))

    def total(prefix):
        return int(sum(np.prod(s) for n, s in shapes.items() if n.startswith(prefix)))

    for prefix, want in (("frontend.", 7_635_264), ("audio.", 4_499_712)):
        print(f"  {prefix:10s} {total(prefix):>10,d}")
        assert total(prefix) == want, (prefix, total(prefix), want)
    for prefix in ("film.", "backend.", "output."):
        print(f"  {prefix:10s} {total(prefix):>10,d}")


if __name__ == "__main__":
    sys.exit(testlib.run([test_classification_exits, test_audiocsrnet_exits,
                          test_backbone_known_counts]))
