#!/usr/bin/python3
"""The Keras .h5 converter (models/convert/keras.py) against PyTorch.

Weights drawn at random in the model file's layout are written with h5py in the
Keras layout (docs/model-format.md 4.3: HWIO conv kernels, (in, out) Dense
kernels, separate FiLM gamma and beta Dense layers, BatchNorm gamma/beta/moving
statistics, MultiHeadAttention kernels (d, h, k) and (h, k, d), a CNN head's
rows in NHWC flatten order), converted, and then:
- a compact AudioCSRNet with SL-ViT exits, and one with CNN exits (FiLM):
  `earlyexit run` on the converted file matches the PyTorch reference run on
  the original weights within 1e-4 (every exit and the final count); a file
  without one of its layers, and exit options that do not fit the Keras
  weights, are refused with a message naming them;
- the paper-size AudioCSRNet (1024x576): the converted files' exit parameter
  counts (`earlyexit info`) round to the paper's (2.35/2.36/2.35 M SL-ViT,
  2.50/2.52/2.50 M CNN);
- the paper's SL-ViT exits of DenseNet201 (224x224, 10 classes) from Keras on a
  torchvision checkpoint: the engine matches torchvision with the original exits
  within 1e-4, and their parameters round to the paper's 0.59 and 0.66 M.

Usage: test_keras.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import sys

import h5py
import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import audiocsrnet_ref  # noqa: E402
import audiocsrnet as conv  # noqa: E402  (on the path audiocsrnet_ref set)
import exits_ref  # noqa: E402
import classifier  # noqa: E402
import classifier_ref  # noqa: E402
import keras  # noqa: E402
from trainlib import expect_failure, run, start  # noqa: E402

TOL = 1e-4
PAPER = {"slvit": {"v1": 2.35, "av1": 2.36, "av2": 2.35},
         "cnn": {"v1": 2.50, "av1": 2.52, "av2": 2.50},
         "densenet201": {"b1": 0.59, "b2": 0.66}}



class KerasFile:
    """Writes layers as Keras' save_weights does: root attrs layer_names, per
    layer group attrs weight_names, datasets at layer/layer/weight:0."""

    def __init__(self, path):
        self.f = h5py.File(path, "w")
        self.names = []

    def layer(self, name, weights):
        g = self.f.create_group(name)
        wn = []
        for k, v in weights.items():
            full = f"{name}/{k}:0"
            g.create_dataset(full, data=np.asarray(v, np.float32))
            wn.append(full.encode())
        g.attrs["weight_names"] = wn
        self.names.append(name.encode())

    def close(self):
        self.f.attrs["layer_names"] = self.names
        self.f.attrs["backend"] = b"tensorflow"
        self.f.close()


def hwio(w):
    return w.transpose(2, 3, 1, 0)


def write_backbone(path, cfg, t):
    k = KerasFile(path)
    for prefix, names in (("frontend", keras.VGG16_CONVS), ("audio", keras.VGGISH_CONVS)):
        for i, n in enumerate(names):
            k.layer(n, {"kernel": hwio(t[f"{prefix}.{i}.weight"]), "bias": t[f"{prefix}.{i}.bias"]})
    for i, c in enumerate(cfg["backend"]):
        n = keras.backend_names(i)
        k.layer(n["conv"], {"kernel": hwio(t[f"backend.{i}.conv.weight"]),
                            "bias": t[f"backend.{i}.conv.bias"]})
        k.layer(n["bn"], {"gamma": t[f"backend.{i}.bn.weight"], "beta": t[f"backend.{i}.bn.bias"],
                          "moving_mean": t[f"backend.{i}.bn.running_mean"],
                          "moving_variance": t[f"backend.{i}.bn.running_var"]})
        fw, fb = t[f"film.{i}.weight"], t[f"film.{i}.bias"]
        k.layer(n["gamma"], {"kernel": fw[:c].T, "bias": fb[:c]})
        k.layer(n["beta"], {"kernel": fw[c:].T, "bias": fb[c:]})
    k.layer(keras.OUTPUT, {"kernel": hwio(t["output.weight"]), "bias": t["output.bias"]})
    k.close()


def write_exits(path, cfg, t):
    k = KerasFile(path)
    for e in cfg["exits"]:
        n, p = e["name"], f"exits.{e['name']}."

        def dense(part, key, kern=None):
            k.layer(f"{n}_{part}", {"kernel": t[p + key + ".weight"].T if kern is None else kern,
                                    "bias": t[p + key + ".bias"]})

        def norm(part, key):
            k.layer(f"{n}_{part}", {"gamma": t[p + key + ".weight"], "beta": t[p + key + ".bias"]})

        if e["kind"] == "slvit":
            d, h = e["dim"], e["heads"]
            dense("proj", "proj")
            k.layer(f"{n}_pos", {"embeddings": t[p + "pos"]})
            norm("ln1", "ln1")
            mha = {}
            for ours, theirs in (("q", "query"), ("k", "key"), ("v", "value")):
                mha[f"{theirs}/kernel"] = t[p + f"attn.{ours}.weight"].T.reshape(d, h, d)
                mha[f"{theirs}/bias"] = t[p + f"attn.{ours}.bias"].reshape(h, d)
            mha["attention_output/kernel"] = t[p + "attn.out.weight"].T.reshape(h, d, d)
            mha["attention_output/bias"] = t[p + "attn.out.bias"]
            k.layer(f"{n}_mha", mha)
            norm("ln2", "ln2")
            dense("mlp0", "mlp.0")
            dense("mlp1", "mlp.1")
            if e["final_ln"]:
                norm("ln_out", "ln_out")
            dense("head0", "head.0")
        else:
            k.layer(f"{n}_conv", {"kernel": hwio(t[p + "conv.weight"]), "bias": t[p + "conv.bias"]})
            if e["film"]:
                f = e["filters"]
                fw, fb = t[p + "film.weight"], t[p + "film.bias"]
                k.layer(f"{n}_film_gamma", {"kernel": fw[:f].T, "bias": fb[:f]})
                k.layer(f"{n}_film_beta", {"kernel": fw[f:].T, "bias": fb[f:]})
            _, hh, ww = exits_ref.tap_shape(cfg, e["tap"])
            pad, pool = e["conv_padding"], e["pool"]
            ho, wo = (hh + 2 * pad - 2) // pool, (ww + 2 * pad - 2) // pool
            w0 = t[p + "head.0.weight"]
            kern = w0.reshape(-1, e["filters"], ho, wo).transpose(2, 3, 1, 0).reshape(-1, w0.shape[0])
            dense("head0", "head.0", kern)
        dense("head1", "head.1")
        dense("head2", "head.2")
    k.close()


def convert(work, name, conv_args, seed, ee, compare=True):
    o = vars(conv.parser().parse_args(conv_args))
    o["bn_affine"] = True
    cfg = conv.make_config(o)
    t = {k: v.astype(np.float32) for k, v in conv.random_tensors(cfg, seed).items()}
    bb, ex = os.path.join(work, f"{name}.h5"), os.path.join(work, f"{name}-exits.h5")
    write_backbone(bb, cfg, t)
    write_exits(ex, cfg, t)
    out = os.path.join(work, f"{name}.safetensors")
    if keras.main(["audiocsrnet", "--h5", bb, "--exits-h5", ex, "--"] + conv_args
                  + ["--out", out]) != 0:
        sys.exit(f"{name}: keras.py failed")
    if compare:  # a missing layer and a wrong exit shape are named
        with h5py.File(bb, "a") as f:
            names = [n.decode() if isinstance(n, bytes) else str(n)
                     for n in f.attrs["layer_names"]]
            f.attrs["layer_names"] = [n.encode() for n in names if n != "film_beta3"]
        cmd = [sys.executable, keras.__file__, "audiocsrnet", "--h5", bb, "--"] + conv_args \
            + ["--out", out + ".bad"]
        expect_failure(cmd, ["no layer 'film_beta3'"])
        expect_failure([sys.executable, keras.__file__, "audiocsrnet", "--exits-h5", ex, "--"]
                       + conv_args + (["--dim", "16"] if name == "slvit" else
                                      ["--cnn-filters", "8"])
                       + ["--random", "--out", out + ".bad"],
                       ["shape", "exit options after `--`"])
    got_cfg, got = conv.load_model(out)
    if got_cfg != cfg:
        sys.exit(f"{name}: converted config differs:\n{got_cfg}\n{cfg}")
    for k, v in t.items():
        if not np.array_equal(got[k], v):
            sys.exit(f"{name}: tensor {k} changed in the conversion")
    if not compare:
        return out
    rng = np.random.default_rng(seed)
    img = rng.uniform(0, 255, (cfg["input_height"], cfg["input_width"], 3)).round()
    lm = rng.normal(-2, 1.5, (96, 64))
    np.save(os.path.join(work, "img.npy"), img.astype(np.float32))
    ref = audiocsrnet_ref.AudioCSRNetRef(cfg, t)
    x = ref.preprocess(img)
    np.save(os.path.join(work, "x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(work, "a.npy"), lm[None, None].astype(np.float32))
    want = ref.forward(torch.from_numpy(x.numpy().astype(np.float32).astype(np.float64)),
                       ref.audio_tensor(lm.astype(np.float32)))["exits"]
    engine = json.loads(run([ee, "run", out, "--image", os.path.join(work, "x.npy"),
                             "--audio", os.path.join(work, "a.npy"), "--json"]))["exits"]
    engine = {e["name"]: e["value"] for e in engine}
    scale = max(abs(float(v.reshape(-1)[0])) for v in want.values())
    for k, v in want.items():
        err = abs(engine[k] - float(v.reshape(-1)[0])) / scale
        print(f"{name:10s} {k:6s} engine {engine[k]:12.5f} PyTorch {float(v.reshape(-1)[0]):12.5f}"
              f" rel err {err:.2e}")
        if err > TOL:
            sys.exit(f"{name}/{k}: converted Keras model differs from PyTorch by {err:.2e}")
    return out


def classifier_exits(work, ee):
    """The paper's SL-ViT exits of DenseNet201 (224x224, 10 classes) from Keras, on a
    torchvision checkpoint: the engine matches torchvision with the original exits
    within 1e-4, and the exits' parameters round to the paper's."""
    args = ["--arch", "densenet201", "--classes", "10", "--exit-kind", "slvit"]
    cfg = keras._config("classifier", args, False)
    t = {k: v.astype(np.float32) for k, v in classifier.random_tensors(cfg, 5).items()}
    ckpt, ex = os.path.join(work, "d201.pth"), os.path.join(work, "d201-exits.h5")
    torch.save({k: torch.from_numpy(v) for k, v in t.items() if not k.startswith("exits.")},
               ckpt)
    write_exits(ex, cfg, t)
    out = os.path.join(work, "d201.safetensors")
    if keras.main(["classifier", "--exits-h5", ex, "--"] + args
                  + ["--checkpoint", ckpt, "--out", out]) != 0:
        sys.exit("densenet201: keras.py failed")
    _, got, _ = classifier.load_model(out)
    for k, v in t.items():
        if not np.array_equal(got[k], v):
            sys.exit(f"densenet201: tensor {k} changed in the conversion")
    x = np.random.default_rng(5).normal(0, 1, (1, 3, 224, 224)).astype(np.float32)
    np.save(os.path.join(work, "d201-x.npy"), x)
    want = classifier_ref.ClassifierRef(cfg, t).forward(
        torch.from_numpy(x.astype(np.float64)))["exits"]
    engine = {e["name"]: e["logits"] for e in json.loads(run(
        [ee, "run", out, "--image", os.path.join(work, "d201-x.npy"), "--json"]))["exits"]}
    for name in ("b1", "b2"):
        w = want[name].numpy()
        err = np.abs(np.asarray(engine[name]) - w).max() / np.abs(w).max()
        print(f"densenet201 {name} engine vs PyTorch: rel err {err:.2e}")
        if err > TOL:
            sys.exit(f"densenet201/{name}: converted Keras exit differs by {err:.2e}")
    for e in json.loads(run([ee, "info", out, "--json"]))["exits"]:
        if e["name"] in PAPER["densenet201"]:
            m = round(e["params"] / 1e6, 2)
            print(f"densenet201 slvit {e['name']} {e['params']:,} parameters = {m} M "
                  f"(paper {PAPER['densenet201'][e['name']]} M)")
            if abs(m - PAPER["densenet201"][e["name"]]) > 1e-9:
                sys.exit(f"densenet201 exit {e['name']}: {m} M, the paper has "
                         f"{PAPER['densenet201'][e['name']]} M")


def main():
    ee, work, _ = start(__doc__)
    small = ["--width-div", "8", "--input-size", "64x64", "--patch", "4", "--head-hidden", "32"]
    convert(work, "slvit", small + ["--exit-kind", "slvit", "--final-ln", "true"], 1, ee)
    convert(work, "cnn", small + ["--exit-kind", "cnn", "--cnn-pool", "2"], 2, ee)
    for kind in ("slvit", "cnn"):
        out = convert(work, f"paper-{kind}", ["--exit-kind", kind], 3, ee, compare=False)
        info = json.loads(run([ee, "info", out, "--json"]))
        for e in info["exits"]:
            if e["name"] == "final":
                continue
            m = round(e["params"] / 1e6, 2)
            print(f"paper {kind:5s} {e['name']:4s} {e['params']:,} parameters = {m} M "
                  f"(paper {PAPER[kind][e['name']]} M)")
            if abs(m - PAPER[kind][e["name"]]) > 1e-9:
                sys.exit(f"paper-size {kind} exit {e['name']}: {m} M, the paper has "
                         f"{PAPER[kind][e['name']]} M")
        os.remove(out)
    classifier_exits(work, ee)
    return 0


if __name__ == "__main__":
    sys.exit(main())
