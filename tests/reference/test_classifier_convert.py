#!/usr/bin/python3
"""The classification converter (models/convert/classifier.py) and the tap arithmetic
of exits_ref.py, checked against torchvision itself: tensor tables, tap shapes,
checkpoints in every layout the converter accepts, exit checkpoints, labels, and the
mistakes it must refuse."""
import contextlib
import io
import os
import sys

import testlib
from testlib import close

import torch  # noqa: E402  (after testlib, which sets the thread count)
import torch.nn as nn  # noqa: E402

import classifier as conv  # noqa: E402
import classifier_ref as ref  # noqa: E402
import exits_ref  # noqa: E402


def convert(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = conv.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def config(arch, head="linear", size=(224, 224), **kw):
    argv = ["--arch", arch, "--classifier", head, "--classes", "10",
            "--input-size", f"{size[0]}x{size[1]}", "--exit-list", "none"]
    o = vars(conv.parser().parse_args(argv))
    o.update(classifier_hidden=96, transform_input=False, exit_specs=[])
    o.update(kw)
    return conv.make_config(o)


def test_tensor_table_is_torchvisions(tmp):
    for arch in conv.ARCHS:
        for head in ("linear", "two_layer"):
            cfg = config(arch, head)
            want = {k: tuple(v.shape) for k, v in conv.torchvision_model(cfg).state_dict()
                    .items() if not k.endswith("num_batches_tracked")}
            got = conv.tensor_shapes(cfg)
            assert got == want, (arch, head, set(got) ^ set(want))


def test_taps_are_torchvisions(tmp):
    """Every tap's shape from exits_ref's arithmetic equals the tensor the hooks of
    the reference read from torchvision's model, at sizes that are not square."""
    for arch, size, extra in (("resnet152", (64, 48), {}),
                              ("resnet152", (64, 48), {"stride_on_1x1": True}),
                              ("densenet201", (72, 64), {}),
                              ("inceptionv3", (96, 80), {})):
        cfg = config(arch, size=size, **extra)
        m = conv.torchvision_model(cfg)
        taps = exits_ref.classifier_taps(cfg)
        store, handles = {}, []
        for name, alias, _ in taps:
            for t in filter(None, (name, alias)):
                handles += ref.tap_hooks(cfg, m, t, store)
        with torch.no_grad():
            m(torch.randn(1, 3, size[1], size[0]))
        for name, alias, shape in taps:
            for t in filter(None, (name, alias)):
                assert tuple(store[t].shape[1:]) == shape, (arch, t, store[t].shape, shape)
                assert exits_ref.tap_shape(cfg, t) == shape


def _save(tmp, name, obj):
    path = os.path.join(tmp, name)
    torch.save(obj, path)
    return path


def _paper_head(f, hidden, classes):
    return nn.Sequential(nn.Linear(f, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, classes))


def test_checkpoint_layouts(tmp):
    """torchvision state_dicts with either head, wrapped and prefixed as training
    scripts save them, convert to the same tensors (a rename at most)."""
    import torchvision.models as tvm
    out = os.path.join(tmp, "c.safetensors")
    # InceptionV3 with its aux classifier, under {"model": ...} with module. prefixes
    m = tvm.inception_v3(weights=None, num_classes=7, aux_logits=True, init_weights=False)
    sd = {"module." + k: v for k, v in m.state_dict().items()}
    ck = _save(tmp, "inc.pth", {"model": sd, "epoch": 3})
    rc, _, err = convert(["--arch", "inceptionv3", "--checkpoint", ck, "--exit-list", "none",
                          "--out", out])
    assert rc == 1 and "--transform-input" in err, err
    rc, _, err = convert(["--arch", "inceptionv3", "--checkpoint", ck, "--exit-list", "none",
                          "--transform-input", "true", "--input-size", "299x299", "--out", out])
    assert rc == 0, err
    cfg, t, labels = conv.load_model(out)
    assert cfg["classes"] == 7 and cfg["classifier"] == "linear" and cfg["transform_input"]
    assert cfg["bn_eps"] == 1e-3 and labels is None
    for k, v in m.state_dict().items():
        if not k.startswith("AuxLogits.") and not k.endswith("num_batches_tracked"):
            close(t[k], v, what=k)
    # DenseNet201 with the paper's head at Sequential slots 1 and 4, pre-0.3 key names
    m = tvm.densenet201(weights=None)
    m.classifier = nn.Sequential(nn.Dropout(), _paper_head(1920, 64, 10)[0], nn.ReLU(),
                                 nn.Dropout(), nn.Linear(64, 10))
    sd = {}
    for k, v in m.state_dict().items():
        old = k.replace(".norm1.", ".norm.1.").replace(".conv2.", ".conv.2.")
        sd[old] = v
    ck = _save(tmp, "dn.pth", {"state_dict": sd})
    rc, _, err = convert(["--arch", "densenet201", "--checkpoint", ck, "--exit-list", "none",
                          "--out", out])
    assert rc == 0, err
    cfg, t, _ = conv.load_model(out)
    assert (cfg["classifier"], cfg["classifier_hidden"], cfg["classes"]) == ("two_layer", 64, 10)
    close(t["classifier.0.weight"], m.classifier[1].weight, what="head 0")
    close(t["classifier.3.bias"], m.classifier[4].bias, what="head 3")
    close(t["features.denseblock3.denselayer7.norm1.running_var"],
          m.features.denseblock3.denselayer7.norm1.running_var, what="old key")
    # ResNet152, paper head, raw state_dict; the head's sizes must agree with options
    m = tvm.resnet152(weights=None)
    m.fc = _paper_head(2048, 32, 4)
    ck = _save(tmp, "rn.pth", m.state_dict())
    rc, _, err = convert(["--arch", "resnet152", "--checkpoint", ck, "--classes", "5",
                          "--exit-list", "none", "--out", out])
    assert rc == 1 and "--classes 5" in err and "4" in err, err
    rc, _, err = convert(["--arch", "resnet152", "--checkpoint", ck, "--random-exits",
                          "--input-size", "64x64", "--patch", "2", "--out", out])
    assert rc == 0, err
    cfg, t, _ = conv.load_model(out)
    assert [e["name"] for e in cfg["exits"]] == ["b1", "b2"]
    close(t["fc.3.weight"], m.fc[3].weight, what="fc.3")
    close(t["layer3.35.bn3.running_mean"], m.layer3[35].bn3.running_mean, what="bn")


def test_checkpoint_refusals(tmp):
    import torchvision.models as tvm
    out = os.path.join(tmp, "r.safetensors")
    m = tvm.densenet201(weights=None, num_classes=3)
    sd = m.state_dict()
    del sd["features.denseblock2.denselayer4.conv1.weight"]
    sd["features.extra.weight"] = torch.zeros(3)
    sd["features.norm5.bias"] = torch.zeros(5)
    ck = _save(tmp, "bad.pth", sd)
    rc, _, err = convert(["--arch", "densenet201", "--checkpoint", ck, "--exit-list", "none",
                          "--out", out])
    assert rc == 1, err
    for word in ("denseblock2.denselayer4.conv1.weight", "features.extra.weight",
                 "features.norm5.bias", "(1920,)", "(5,)"):
        assert word in err, (word, err)
    ck = _save(tmp, "three.pth", {k: v for k, v in m.state_dict().items()
                                  if not k.startswith("classifier")}
               | {f"classifier.{i}.weight": torch.zeros(3, 3) for i in (0, 2, 4)})
    rc, _, err = convert(["--arch", "densenet201", "--checkpoint", ck, "--exit-list", "none",
                          "--out", out])
    assert rc == 1 and "two Linear layers" in err, err
    rc, _, err = convert(["--arch", "densenet201", "--checkpoint", _save(tmp, "ok.pth", m.state_dict()),
                          "--out", out])
    assert rc == 1 and "--random-exits" in err, err


def test_exits_checkpoint(tmp):
    """An ExitSet trained on a classification config goes in unchanged (or with its
    patch columns permuted from torch's unfold order)."""
    out = os.path.join(tmp, "e.safetensors")
    args = ["--arch", "resnet152", "--random", "--seed", 2, "--input-size", "64x64",
            "--classes", "6", "--exit", "p:slvit:layer1.0.conv2", "--exit", "q:cnn:layer2",
            "--patch", "4", "--dim", "8", "--heads", "2", "--print-config"]
    rc, text, err = convert(args)
    assert rc == 0, err
    import json
    cfg = json.loads(text)
    torch.manual_seed(0)
    es = exits_ref.ExitSet(cfg)
    ck = _save(tmp, "exits.pth", {"state_dict": {"exits." + k: v for k, v in
                                                 es.state_dict().items()}})
    backbone = conv.torchvision_model(cfg)
    bk = _save(tmp, "bb.pth", backbone.state_dict())
    base = ["--arch", "resnet152", "--checkpoint", bk, "--input-size", "64x64",
            "--exit", "p:slvit:layer1.0.conv2", "--exit", "q:cnn:layer2", "--patch", "4",
            "--dim", "8", "--heads", "2", "--exits", ck, "--out", out]
    rc, _, err = convert(base)
    assert rc == 0, err
    _, t, _ = conv.load_model(out)
    for k, v in es.state_dict().items():
        close(t["exits." + k], v, what=k)
    rc, _, err = convert(base + ["--exits-patch-order", "cpyx"])
    assert rc == 0, err
    _, t2, _ = conv.load_model(out)
    w = es.p.proj.weight.detach().numpy().reshape(8, 64, 16)  # (d, c, py*px)
    close(t2["exits.p.proj.weight"], w.transpose(0, 2, 1).reshape(8, -1), what="cpyx")
    rc, _, err = convert(base[:-4] + ["--dim", "16", "--exits", ck, "--out", out])
    assert rc == 1 and "exits.p.proj.weight" in err and "mis-shaped" in err, err


def test_labels_and_config_errors(tmp):
    out = os.path.join(tmp, "l.safetensors")
    labels = os.path.join(tmp, "labels.txt")
    with open(labels, "w") as f:
        f.write("cat\ndog\nbird\n\n")
    base = ["--arch", "inceptionv3", "--random", "--input-size", "96x96", "--classes", "3",
            "--exit-list", "none", "--labels", labels, "--out", out]
    rc, _, err = convert(base)
    assert rc == 0, err
    cfg, _, got = conv.load_model(out)
    assert got == ["cat", "dog", "bird"] and cfg["audio_features"] is None
    for argv, msg in [
            (["--classes", "4"], "3 labels for 4 classes"),
            (["--exit-list", "b1"], "give --patch"),
            (["--exit", "x:slvit:Mixed_9z", "--patch", "3"], "not a tap of inceptionv3"),
            (["--exit", "x:cnn:Mixed_6e", "--exit", "y:cnn:Mixed_5b"], "tap order"),
            (["--exit", "x:slvit:Mixed_5b", "--patch", "2"], "not divisible by patch 2"),
            (["--input-size", "64x64"], ">= 75")]:
        rc, _, err = convert(base + argv)
        assert rc == 1 and msg in err, (argv, err)


def test_audio_features_config(tmp):
    out = os.path.join(tmp, "a.safetensors")
    rc, _, err = convert(["--arch", "densenet201", "--random", "--input-size", "64x64",
                          "--classes", "10", "--exit-list", "none", "--audio-features", "gtzan",
                          "--feature-mel-scale", "htk", "--feature-mean", "1,2,3",
                          "--out", out])
    assert rc == 0, err
    cfg, _, _ = conv.load_model(out)
    assert cfg["audio_features"] == {"kind": "gtzan", "log": True, "log_offset": 1e-6,
                                     "mel_scale": "htk", "mean": [1.0, 2.0, 3.0],
                                     "std": [1.0, 1.0, 1.0]}


if __name__ == "__main__":
    sys.exit(testlib.run([test_tensor_table_is_torchvisions, test_taps_are_torchvisions,
                          test_checkpoint_layouts, test_checkpoint_refusals,
                          test_exits_checkpoint, test_labels_and_config_errors,
                          test_audio_features_config]))
