#!/usr/bin/python3
"""Convert Keras .h5 weights (h5py only, no TensorFlow) into a gst-earlyexit model
file: an AudioCSRNet of the Keras reimplementation's layout and/or Keras SL-ViT or
CNN exits (docs/model-format.md 4.3 lists every layer name and permutation).

    /usr/bin/python3 models/convert/keras.py audiocsrnet --h5 audiocsrnet.h5 \\
        [--exits-h5 exits.h5] -- --input-size 1024x576 --out model.safetensors
    /usr/bin/python3 models/convert/keras.py classifier --exits-h5 exits.h5 \\
        -- --arch resnet152 --checkpoint r152.pth --classes 10 --out model.safetensors

Everything after `--` goes to models/convert/audiocsrnet.py or classifier.py: the
configuration (input size, widths, exit kind and shape) and the output. The
Keras weights become a checkpoint of the reference code's keys (--checkpoint) and
an exits checkpoint (--exits) in a temporary folder, which that converter then
checks and writes as usual. `--print-layers FILE.h5` lists a file's layers and
weights.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audiocsrnet  # noqa: E402
import classifier  # noqa: E402
import exits_ref  # noqa: E402

ConvertError = audiocsrnet.ConvertError

# Keras layer names of the AudioCSRNet reimplementation: the front end is Keras'
# VGG16, the audio branch Keras' VGGish; the back end's blocks i = 0..5.
VGG16_CONVS = ["block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
               "block3_conv1", "block3_conv2", "block3_conv3", "block4_conv1",
               "block4_conv2", "block4_conv3"]
VGGISH_CONVS = ["conv1", "conv2", "conv3/conv3_1", "conv3/conv3_2", "conv4/conv4_1",
                "conv4/conv4_2"]


def backend_names(i):
    return {"conv": f"backend_conv{i}", "bn": f"backend_bn{i}",
            "gamma": f"film_gamma{i}", "beta": f"film_beta{i}"}


OUTPUT = "output_conv"


# ----------------------------------------------------------------- reading h5

class H5Weights:
    """Layer name -> {weight name: array} of a Keras .h5 file (a whole model saved
    with model.save, under `model_weights`, or model.save_weights). A weight's
    name is its path inside the layer's group without the repeated layer name and
    the `:0` suffix: `kernel`, `bias`, `gamma`, `query/kernel`."""

    def __init__(self, path):
        try:
            import h5py
        except ImportError as exc:
            raise ConvertError("reading .h5 files needs h5py (Debian: apt-get install "
                               "python3-h5py)") from exc
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ConvertError(f"{path}: not an HDF5 file ({exc})") from exc
        self.path = path
        root = f["model_weights"] if "model_weights" in f else f
        self.layers = {}

        def text(v):
            return v.decode() if isinstance(v, bytes) else str(v)

        if "layer_names" not in root.attrs:
            f.close()
            raise ConvertError(f"{path}: no layer_names attribute: not weights written by "
                               "Keras (model.save or model.save_weights to .h5)")
        for name in map(text, root.attrs["layer_names"]):
            g = root[name]
            wn = [text(w) for w in g.attrs.get("weight_names", [])]
            if wn:
                self.layers[name] = self._tidy(name, {w: np.asarray(g[w], np.float64)
                                                      for w in wn})
        f.close()

    @staticmethod
    def _tidy(name, raw):
        out = {}
        base = name.split("/")[-1]
        for k, v in raw.items():
            # Keras stores layer/layer/kernel:0: drop the repeated layer name
            for p in (name + "/", base + "/"):
                if k.startswith(p):
                    k = k[len(p):]
                    break
            out[k[:-2] if k.endswith(":0") else k] = v
        return out

    def get(self, layer, weight, shape=None):
        if layer not in self.layers:
            near = sorted(self.layers)[:40]
            raise ConvertError(f"{self.path}: no layer {layer!r} (its layers: "
                               f"{', '.join(near)}{' ...' if len(self.layers) > 40 else ''})")
        w = self.layers[layer]
        if weight not in w:
            raise ConvertError(f"{self.path}: layer {layer} has no weight {weight!r} "
                               f"(it has {sorted(w)})")
        v = w[weight]
        if shape is not None and tuple(v.shape) != tuple(shape):
            raise ConvertError(f"{self.path}: {layer}/{weight} has shape {tuple(v.shape)}, "
                               f"expected {tuple(shape)} (Keras layout)")
        return v

    def has(self, layer):
        return layer in self.layers


# ----------------------------------------------------------------- permutations

def conv_kernel(k):
    """Keras Conv2D kernel (kh, kw, in, out) -> (out, in, kh, kw)."""
    return np.ascontiguousarray(k.transpose(3, 2, 0, 1))


def dense_kernel(k):
    """Keras Dense kernel (in, out) -> (out, in)."""
    return np.ascontiguousarray(k.T)


def mha_in(k):
    """MultiHeadAttention query/key/value kernel (d, h, k) -> (h*k, d)."""
    d, h, kd = k.shape
    return np.ascontiguousarray(k.reshape(d, h * kd).T)


def mha_out(k):
    """MultiHeadAttention attention_output kernel (h, k, d) -> (d, h*k)."""
    h, kd, d = k.shape
    return np.ascontiguousarray(k.reshape(h * kd, d).T)


def yxc_to_cyx(w, c, h, wd):
    """A Dense kernel's input rows in Keras' NHWC flatten order (y, x, c) -> our
    (c, y, x): returns the (out, in) weight."""
    out = w.shape[1]
    return np.ascontiguousarray(w.reshape(h, wd, c, out).transpose(3, 2, 0, 1).reshape(out, -1))


# ----------------------------------------------------------------- AudioCSRNet

def audiocsrnet_state_dict(h5, cfg):
    """The reference code's state_dict (CSRWaveNet.CSRNet keys) of a Keras
    AudioCSRNet: what audiocsrnet.py --checkpoint reads."""
    layers = audiocsrnet._layers
    if len(layers(cfg["frontend"])) != len(VGG16_CONVS) or \
            len(layers(cfg["audio"])) != len(VGGISH_CONVS):
        raise ConvertError("the Keras layout is VGG16's 10 front-end convs and VGGish's 6 "
                           "audio convs: use the paper's --frontend and --audio-cfg")
    shapes = audiocsrnet.tensor_shapes(cfg)
    t = {}
    for prefix, names in (("frontend", VGG16_CONVS), ("audio", VGGISH_CONVS)):
        for i, layer in enumerate(names):
            o, c, kh, kw = shapes[f"{prefix}.{i}.weight"]
            t[f"{prefix}.{i}.weight"] = conv_kernel(h5.get(layer, "kernel", (kh, kw, c, o)))
            t[f"{prefix}.{i}.bias"] = h5.get(layer, "bias", (o,))
    a = audiocsrnet.audio_dim(cfg)
    for i, c in enumerate(cfg["backend"]):
        n = backend_names(i)
        o, ci, kh, kw = shapes[f"backend.{i}.conv.weight"]
        t[f"backend.{i}.conv.weight"] = conv_kernel(h5.get(n["conv"], "kernel", (kh, kw, ci, o)))
        t[f"backend.{i}.conv.bias"] = h5.get(n["conv"], "bias", (o,))
        t[f"backend.{i}.bn.running_mean"] = h5.get(n["bn"], "moving_mean", (c,))
        t[f"backend.{i}.bn.running_var"] = h5.get(n["bn"], "moving_variance", (c,))
        if cfg["bn_affine"]:
            t[f"backend.{i}.bn.weight"] = h5.get(n["bn"], "gamma", (c,))
            t[f"backend.{i}.bn.bias"] = h5.get(n["bn"], "beta", (c,))
        g = [h5.get(n[k], "kernel", (a, c)) for k in ("gamma", "beta")]
        b = [h5.get(n[k], "bias", (c,)) for k in ("gamma", "beta")]
        t[f"film.{i}.weight"] = dense_kernel(np.concatenate(g, axis=1))
        t[f"film.{i}.bias"] = np.concatenate(b)
    cin = cfg["backend"][-1]
    t["output.weight"] = conv_kernel(h5.get(OUTPUT, "kernel", (1, 1, cin, 1)))
    t["output.bias"] = h5.get(OUTPUT, "bias", (1,))
    keys = audiocsrnet.reference_keys(cfg)
    return {keys[k]: v for k, v in t.items()}


def bn_affine(h5):
    """True when the Keras back end's BatchNorms have gamma/beta."""
    return h5.has("backend_bn0") and "gamma" in h5.layers["backend_bn0"]


# ----------------------------------------------------------------- exits

def exit_state_dict(h5, cfg):
    """An ExitSet state_dict (`<exit>.<param>`, what --exits reads) of Keras exits
    named `<exit>_<part>` (docs/model-format.md 4.3)."""
    sd = {}
    for e in cfg["exits"]:
        n = e["name"]
        ref = exits_ref.build_exit(cfg, e).state_dict()
        c, h, w = exits_ref.tap_shape(cfg, e["tap"])
        t = {}

        def dense(part, key, rows=None):
            kern = h5.get(f"{n}_{part}", "kernel")
            t[f"{key}.weight"] = dense_kernel(kern) if rows is None else rows(kern)
            t[f"{key}.bias"] = h5.get(f"{n}_{part}", "bias")

        def norm(part, key):
            t[f"{key}.weight"] = h5.get(f"{n}_{part}", "gamma")
            t[f"{key}.bias"] = h5.get(f"{n}_{part}", "beta")

        if e["kind"] == "slvit":
            dense("proj", "proj")
            t["pos"] = h5.get(f"{n}_pos", "embeddings")
            norm("ln1", "ln1")
            for ours, theirs in (("q", "query"), ("k", "key"), ("v", "value")):
                t[f"attn.{ours}.weight"] = mha_in(h5.get(f"{n}_mha", f"{theirs}/kernel"))
                t[f"attn.{ours}.bias"] = h5.get(f"{n}_mha", f"{theirs}/bias").reshape(-1)
            t["attn.out.weight"] = mha_out(h5.get(f"{n}_mha", "attention_output/kernel"))
            t["attn.out.bias"] = h5.get(f"{n}_mha", "attention_output/bias")
            norm("ln2", "ln2")
            dense("mlp0", "mlp.0")
            dense("mlp1", "mlp.1")
            if e.get("final_ln"):
                norm("ln_out", "ln_out")
            dense("head0", "head.0")
        else:
            kern = h5.get(f"{n}_conv", "kernel")
            t["conv.weight"] = conv_kernel(kern)
            t["conv.bias"] = h5.get(f"{n}_conv", "bias")
            if e.get("film"):
                g = [h5.get(f"{n}_film_{k}", "kernel") for k in ("gamma", "beta")]
                t["film.weight"] = dense_kernel(np.concatenate(g, axis=1))
                t["film.bias"] = np.concatenate([h5.get(f"{n}_film_{k}", "bias")
                                                 for k in ("gamma", "beta")])
            p, pad = e["pool"], e["conv_padding"]
            ho, wo = (h + 2 * pad - 2) // p, (w + 2 * pad - 2) // p
            shape = h5.get(f"{n}_head0", "kernel").shape
            if shape[0] != e["filters"] * ho * wo:
                raise ConvertError(f"exit {n}: head0/kernel from Keras has shape "
                                   f"{tuple(shape)}; the configuration wants "
                                   f"{e['filters'] * ho * wo} rows ({e['filters']} filters x "
                                   f"{ho}x{wo}; check the exit options after `--`)")
            dense("head0", "head.0", lambda k: yxc_to_cyx(k, e["filters"], ho, wo))
        dense("head1", "head.1")
        dense("head2", "head.2")
        for k, v in t.items():
            if k not in ref:
                raise ConvertError(f"exit {n}: {k} is not a parameter of this exit")
            if tuple(v.shape) != tuple(ref[k].shape):
                raise ConvertError(f"exit {n}: {k} from Keras has shape {tuple(v.shape)}, the "
                                   f"configuration wants {tuple(ref[k].shape)} (check the "
                                   "exit options after `--`)")
            sd[f"{n}.{k}"] = v
        missing = [k for k in ref if f"{n}.{k}" not in sd]
        if missing:
            raise ConvertError(f"exit {n}: no Keras weights for {missing}")
    return sd


# ----------------------------------------------------------------- command line

def _config(target, args, affine):
    """The converter's configuration for its arguments (no weights read)."""
    if target == "audiocsrnet":
        o = vars(audiocsrnet.parser().parse_args(args))
        o["bn_affine"] = affine
        return audiocsrnet.make_config(o)
    o = vars(classifier.parser().parse_args(args))
    if o["classes"] is None:
        raise ConvertError("Keras exits of a classifier: say --classes after `--`")
    o["classifier"] = o["classifier"] or "linear"
    o["classifier_hidden"] = o["classifier_hidden"] or 1024
    o["transform_input"] = bool(o["transform_input"])
    o["exit_specs"] = o["exit"] or [(n, o["exit_kind"], classifier.ARCHS[o["arch"]]["taps"][n])
                                    for n in classifier.EXIT_NAMES if n in o["exit_list"]]
    return classifier.make_config(o)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    conv_args = []
    if "--" in argv:
        i = argv.index("--")
        argv, conv_args = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("target", nargs="?", choices=["audiocsrnet", "classifier"])
    ap.add_argument("--h5", help="Keras AudioCSRNet weights (audiocsrnet)")
    ap.add_argument("--exits-h5", help="Keras exits (SL-ViT or CNN)")
    ap.add_argument("--print-layers", metavar="H5", help="list an .h5 file's layers")
    args = ap.parse_args(argv)
    try:
        if args.print_layers:
            h5 = H5Weights(args.print_layers)
            for name, ws in sorted(h5.layers.items()):
                print(name + ": " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(ws.items())))
            return 0
        if not args.target:
            raise ConvertError("say audiocsrnet or classifier")
        if args.target == "classifier" and args.h5:
            raise ConvertError("--h5 is for AudioCSRNet; a classifier's backbone comes from "
                               "its torchvision --checkpoint after `--`")
        if not args.h5 and not args.exits_h5:
            raise ConvertError("give --h5 and/or --exits-h5")
        conv = audiocsrnet if args.target == "audiocsrnet" else classifier
        with tempfile.TemporaryDirectory() as tmp:
            import torch
            extra = []
            affine = False
            if args.h5:
                h5 = H5Weights(args.h5)
                affine = bn_affine(h5)
                cfg = _config("audiocsrnet", conv_args, affine)
                sd = audiocsrnet_state_dict(h5, cfg)
                ckpt = os.path.join(tmp, "backbone.pth")
                torch.save({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sd.items()},
                           ckpt)
                extra += ["--checkpoint", ckpt]
            if args.exits_h5:
                cfg = _config(args.target, conv_args + extra, affine)
                sd = exit_state_dict(H5Weights(args.exits_h5), cfg)
                ex = os.path.join(tmp, "exits.pth")
                torch.save({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in sd.items()},
                           ex)
                extra += ["--exits", ex]
            elif args.h5:
                if not any(a.startswith("--exit-list") or a == "--random-exits"
                           for a in conv_args):
                    extra += ["--exit-list", "none"]
            return conv.main(conv_args + extra)
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
