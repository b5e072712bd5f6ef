#!/usr/bin/python3
"""Write an AudioCSRNet model file (docs/model-format.md) for gst-earlyexit.

Sources of weights:
  --checkpoint CKPT.pth   a checkpoint of the public reference code's CSRWaveNet.CSRNet
                          (raw state_dict or a dict with a `net` key; key prefixes
                          `CCN.module.`, `CCN.`, `module.` or none)
  --exits EXITS.pth       exits trained with models/convert/exits_ref.py (state_dict keys
                          `<exit>.<param>`, e.g. `v1.proj.weight`)
  --random --seed N       random weights for any configuration (tests)
  --random-exits          random exits on top of a real backbone checkpoint

Examples:
  /usr/bin/python3 models/convert/audiocsrnet.py --checkpoint all_ep_274.pth \\
      --exits exits.pth --input-size 1024x576 --out audiocsrnet.safetensors
  /usr/bin/python3 models/convert/audiocsrnet.py --random --seed 1 --width-div 8 \\
      --input-size 256x128 --out tiny.safetensors
  /usr/bin/python3 models/convert/audiocsrnet.py --print-tensors --input-size 1024x576

The module is also imported by the references in tests/reference/ (config building,
the tensor table `tensor_shapes`, `load_model`).
"""
import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eesafetensors  # noqa: E402

FORMAT = "gst-earlyexit"
FORMAT_VERSION = "1"

PAPER_FRONTEND = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
PAPER_AUDIO = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M"]
PAPER_BACKEND = [512, 512, 512, 256, 128, 64]
DISCO_MEAN = [0.410824894905, 0.370634973049, 0.359682112932]
DISCO_STD = [0.278580576181, 0.26925137639, 0.27156367898]
AUDIO_FRAMES, AUDIO_BANDS = 96, 64
EXIT_NAMES = ("v1", "av1", "av2")  # anytime order
EXIT_TAPS = {"v1": "frontend", "av1": "frontend", "av2": "backend.0"}


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------- configuration

def _layers(spec):
    return [v for v in spec if v != "M"]


def stride(cfg):
    return 2 ** sum(1 for v in cfg["frontend"] if v == "M")


def map_size(cfg):
    """(H, W) of the front-end output, the back end and the density map."""
    s = stride(cfg)
    return cfg["input_height"] // s, cfg["input_width"] // s


def audio_dim(cfg):
    return _layers(cfg["audio"])[-1]


def tap_shape(cfg, tap):
    h, w = map_size(cfg)
    if tap == "frontend":
        return _layers(cfg["frontend"])[-1], h, w
    m = re.fullmatch(r"backend\.(\d+)", tap)
    if m and int(m.group(1)) < len(cfg["backend"]):
        return cfg["backend"][int(m.group(1))], h, w
    raise ConvertError(f"unknown tap {tap!r} (frontend or backend.0..backend."
                       f"{len(cfg['backend']) - 1})")


def tap_rank(cfg, tap):
    return -1 if tap == "frontend" else int(tap.split(".")[1])


def exit_config(name, kind, o):
    """Exit `name` with options `o` (a dict with the argparse fields)."""
    e = {"name": name, "kind": kind, "tap": EXIT_TAPS[name]}
    if kind == "slvit":
        e.update({
            "patch": o["patch"], "dim": o["dim"], "heads": o["heads"],
            "mlp_dim": o["mlp_dim"] or 2 * o["dim"], "ln_eps": o["ln_eps"],
            "last_residual": o["last_residual"], "final_ln": o["final_ln"],
            "mlp_out_gelu": o["mlp_out_gelu"],
            "audio_token": o["audio_token"] if name == "av1" else "none",
            "head_kind": o["exit_head"]})
    else:
        e.update({"filters": o["cnn_filters"], "conv_padding": o["cnn_padding"],
                  "pool": o["cnn_pool"], "film": name == "av1" and o["cnn_film"]})
    e.update({"head_hidden": o["head_hidden"], "head_act": o["head_act"], "outputs": 1})
    return e


def make_config(o):
    div = o["width_div"]

    def scale(spec):
        out = []
        for v in spec:
            if v == "M":
                out.append("M")
            else:
                if v % div:
                    raise ConvertError(f"width {v} not divisible by --width-div {div}")
                out.append(v // div)
        return out

    count_scale = o["count_scale"]
    if count_scale is None:
        count_scale = 0.64 if o["count_head"] == "sum" else 1.0
    cfg = {
        "arch": "audiocsrnet",
        "input_width": o["input_size"][0],
        "input_height": o["input_size"][1],
        "preprocess": {"scale": o["pixel_scale"], "mean": o["mean"], "std": o["std"],
                       "channel_order": o["channel_order"]},
        "audio_input": {"features": "vggish_logmel", "frames": AUDIO_FRAMES,
                        "bands": AUDIO_BANDS},
        "frontend": scale(o["frontend"]),
        "audio": scale(o["audio_cfg"]),
        "backend": scale(o["backend"]),
        "backend_dilation": 2,
        "bn_eps": o["bn_eps"],
        "bn_affine": o["bn_affine"],
        "film": "gamma_beta",
        "count_head": o["count_head"],
        "count_scale": count_scale,
        "dense_bias": o["dense_bias"],
        "exits": [exit_config(n, o["exit_kind"], o) for n in EXIT_NAMES
                  if n in o["exit_list"]],
    }
    validate_config(cfg)
    return cfg


def _need(cond, msg):
    if not cond:
        raise ConvertError("config: " + msg)


def _is_int(v, lo=1):
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_keys(obj, keys, what):
    _need(isinstance(obj, dict), f"{what} is not an object")
    missing = [k for k in keys if k not in obj]
    extra = [k for k in obj if k not in keys]
    _need(not missing, f"{what}: missing keys {missing}")
    _need(not extra, f"{what}: unknown keys {extra}")


TOP_KEYS = ["arch", "input_width", "input_height", "preprocess", "audio_input",
            "frontend", "audio", "backend", "backend_dilation", "bn_eps", "bn_affine",
            "film", "count_head", "count_scale", "dense_bias", "exits"]
SLVIT_KEYS = ["name", "kind", "tap", "patch", "dim", "heads", "mlp_dim", "ln_eps",
              "last_residual", "final_ln", "mlp_out_gelu", "audio_token",
              "head_hidden", "head_act", "outputs"]
# optional in an SL-ViT exit: absent means the paper's "flatten" head
SLVIT_OPTIONAL_KEYS = ["head_kind"]
CNN_KEYS = ["name", "kind", "tap", "filters", "conv_padding", "pool", "film",
            "head_hidden", "head_act", "outputs"]


def validate_config(cfg):
    """The checks docs/model-format.md asks every loader to make."""
    _check_keys(cfg, TOP_KEYS, "config")
    _need(cfg["arch"] == "audiocsrnet", f"arch {cfg['arch']!r} is not audiocsrnet")
    p = cfg["preprocess"]
    _check_keys(p, ["scale", "mean", "std", "channel_order"], "preprocess")
    _need(_is_num(p["scale"]) and p["scale"] > 0, "preprocess.scale must be > 0")
    for k in ("mean", "std"):
        _need(isinstance(p[k], list) and len(p[k]) == 3 and all(map(_is_num, p[k])),
              f"preprocess.{k} must be 3 numbers")
    _need(all(s > 0 for s in p["std"]), "preprocess.std must be > 0")
    _need(p["channel_order"] in ("rgb", "bgr"), "preprocess.channel_order: rgb|bgr")
    _check_keys(cfg["audio_input"], ["features", "frames", "bands"], "audio_input")
    _need(cfg["audio_input"] == {"features": "vggish_logmel", "frames": AUDIO_FRAMES,
                                 "bands": AUDIO_BANDS},
          "audio_input must be vggish_logmel 96 x 64")
    for k in ("frontend", "audio"):
        spec = cfg[k]
        _need(isinstance(spec, list) and spec and all(v == "M" or _is_int(v) for v in spec)
              and _layers(spec), f"{k} must be a list of channel counts and \"M\"")
    _need(isinstance(cfg["backend"], list) and cfg["backend"]
          and all(_is_int(v) for v in cfg["backend"]), "backend must list channel counts")
    _need(cfg["backend_dilation"] == 2, "backend_dilation must be 2")
    _need(_is_num(cfg["bn_eps"]) and cfg["bn_eps"] > 0, "bn_eps must be > 0")
    _need(isinstance(cfg["bn_affine"], bool), "bn_affine must be a boolean")
    _need(cfg["film"] == "gamma_beta", "film must be \"gamma_beta\"")
    _need(cfg["count_head"] in ("sum", "dense"), "count_head: sum|dense")
    _need(_is_num(cfg["count_scale"]), "count_scale must be a number")
    _need(isinstance(cfg["dense_bias"], bool), "dense_bias must be a boolean")
    _need(_is_int(cfg["input_width"]) and _is_int(cfg["input_height"]),
          "input_width/input_height must be positive integers")
    s = stride(cfg)
    _need(cfg["input_width"] % s == 0 and cfg["input_height"] % s == 0,
          f"input size must be a multiple of {s}")
    # The audio branch must leave at least 1x1 after its pools.
    ap = sum(1 for v in cfg["audio"] if v == "M")
    _need(AUDIO_FRAMES >> ap >= 1 and AUDIO_BANDS >> ap >= 1, "too many audio pools")
    _need(isinstance(cfg["exits"], list), "exits must be a list")
    names = set()
    last = -2
    for e in cfg["exits"]:
        _need(isinstance(e, dict) and e.get("kind") in ("slvit", "cnn"),
              "exit kind must be slvit|cnn")
        _check_keys({k: v for k, v in e.items() if k not in SLVIT_OPTIONAL_KEYS}
                    if e["kind"] == "slvit" else e,
                    SLVIT_KEYS if e["kind"] == "slvit" else CNN_KEYS,
                    f"exit {e.get('name')!r}")
        n = e["name"]
        _need(isinstance(n, str) and re.fullmatch(r"[a-z][a-z0-9_]*", n) and n != "final",
              f"bad exit name {n!r}")
        _need(n not in names, f"duplicate exit name {n!r}")
        names.add(n)
        c, h, w = tap_shape(cfg, e["tap"])
        r = tap_rank(cfg, e["tap"])
        _need(r >= last, f"exit {n}: exits must be listed in tap order")
        last = r
        _need(_is_int(e["head_hidden"]) and _is_int(e["outputs"]), f"exit {n}: head sizes")
        _need(e["head_act"] in ("gelu", "relu"), f"exit {n}: head_act gelu|relu")
        if e["kind"] == "slvit":
            for k in ("patch", "dim", "heads", "mlp_dim"):
                _need(_is_int(e[k]), f"exit {n}: {k} must be a positive integer")
            _need(h % e["patch"] == 0 and w % e["patch"] == 0,
                  f"exit {n}: tap {h}x{w} not divisible by patch {e['patch']}")
            _need(_is_num(e["ln_eps"]) and e["ln_eps"] > 0, f"exit {n}: ln_eps > 0")
            for k in ("last_residual", "final_ln", "mlp_out_gelu"):
                _need(isinstance(e[k], bool), f"exit {n}: {k} must be a boolean")
            _need(e["audio_token"] in ("none", "shared_projection"),
                  f"exit {n}: audio_token none|shared_projection")
            if e["audio_token"] == "shared_projection":
                _need(audio_dim(cfg) == c, f"exit {n}: audio token needs audio width "
                      f"{audio_dim(cfg)} == tap channels {c}")
            hk = e.get("head_kind", "flatten")
            _need(hk in ("flatten", "per_token"), f"exit {n}: head_kind flatten|per_token")
            _need(hk == "flatten" or e["outputs"] == 1,
                  f"exit {n}: a per_token head gives a count: outputs must be 1")
        else:
            _need(_is_int(e["filters"]) and _is_int(e["pool"]), f"exit {n}: filters/pool")
            _need(e["conv_padding"] in (0, 1), f"exit {n}: conv_padding 0|1")
            _need(isinstance(e["film"], bool), f"exit {n}: film must be a boolean")
            ho, wo = h + 2 * e["conv_padding"] - 2, w + 2 * e["conv_padding"] - 2
            _need(ho // e["pool"] >= 1 and wo // e["pool"] >= 1,
                  f"exit {n}: tap {h}x{w} too small")
    return cfg


# ---------------------------------------------------------------- tensor table

def exit_shapes(cfg, e):
    """Tensor shapes of one exit, names without the `exits.<name>.` prefix."""
    c, h, w = tap_shape(cfg, e["tap"])
    s = {}
    if e["kind"] == "slvit":
        p, d, hd, m = e["patch"], e["dim"], e["heads"], e["mlp_dim"]
        n = (h // p) * (w // p) + (e["audio_token"] != "none")
        s["proj.weight"] = (d, p * p * c)
        s["proj.bias"] = (d,)
        s["pos"] = (n, d)
        s["ln1.weight"] = s["ln1.bias"] = (d,)
        for k in "qkv":
            s[f"attn.{k}.weight"] = (hd * d, d)
            s[f"attn.{k}.bias"] = (hd * d,)
        s["attn.out.weight"] = (d, hd * d)
        s["attn.out.bias"] = (d,)
        s["ln2.weight"] = s["ln2.bias"] = (d,)
        s["mlp.0.weight"], s["mlp.0.bias"] = (m, d), (m,)
        s["mlp.1.weight"], s["mlp.1.bias"] = (d, m), (d,)
        if e["final_ln"]:
            s["ln_out.weight"] = s["ln_out.bias"] = (d,)
        # the per_token head reads one token at a time
        flat = d if e.get("head_kind", "flatten") == "per_token" else n * d
    else:
        f, pad, pool = e["filters"], e["conv_padding"], e["pool"]
        s["conv.weight"], s["conv.bias"] = (f, c, 3, 3), (f,)
        if e["film"]:
            s["film.weight"], s["film.bias"] = (2 * f, audio_dim(cfg)), (2 * f,)
        flat = f * ((h + 2 * pad - 2) // pool) * ((w + 2 * pad - 2) // pool)
    hh = e["head_hidden"]
    s["head.0.weight"], s["head.0.bias"] = (hh, flat), (hh,)
    s["head.1.weight"], s["head.1.bias"] = (hh, hh), (hh,)
    s["head.2.weight"], s["head.2.bias"] = (e["outputs"], hh), (e["outputs"],)
    return s


def tensor_shapes(cfg):
    """Every tensor of the model file: name -> shape (the table of model-format.md)."""
    s = {}
    cin = 3
    for i, c in enumerate(_layers(cfg["frontend"])):
        s[f"frontend.{i}.weight"], s[f"frontend.{i}.bias"] = (c, cin, 3, 3), (c,)
        cin = c
    cin = 1
    for i, c in enumerate(_layers(cfg["audio"])):
        s[f"audio.{i}.weight"], s[f"audio.{i}.bias"] = (c, cin, 3, 3), (c,)
        cin = c
    a = audio_dim(cfg)
    cin = _layers(cfg["frontend"])[-1]
    for i, c in enumerate(cfg["backend"]):
        s[f"film.{i}.weight"], s[f"film.{i}.bias"] = (2 * c, a), (2 * c,)
        s[f"backend.{i}.conv.weight"] = (c, cin, 3, 3)
        s[f"backend.{i}.conv.bias"] = (c,)
        keys = ["running_mean", "running_var"] + (["weight", "bias"] if cfg["bn_affine"] else [])
        for k in keys:
            s[f"backend.{i}.bn.{k}"] = (c,)
        cin = c
    s["output.weight"], s["output.bias"] = (1, cin, 1, 1), (1,)
    if cfg["count_head"] == "dense":
        h, w = map_size(cfg)
        s["dense.weight"] = (1, h * w)
        if cfg["dense_bias"]:
            s["dense.bias"] = (1,)
    for e in cfg["exits"]:
        for k, v in exit_shapes(cfg, e).items():
            s[f"exits.{e['name']}.{k}"] = v
    return s


def exit_param_counts(cfg):
    return {e["name"]: int(sum(np.prod(v) for v in exit_shapes(cfg, e).values()))
            for e in cfg["exits"]}


def check_tensors(tensors, shapes, what, sources=None, unknown=()):
    """Raises ConvertError naming every missing, mis-shaped or unexpected tensor
    (`unknown`: source keys that map to no tensor)."""
    sources = sources or {}

    def src(n):
        return f" [{sources[n]}]" if n in sources else ""

    missing = [f"{n} {tuple(shapes[n])}{src(n)}" for n in shapes if n not in tensors]
    bad = [f"{n}{src(n)}: got {tuple(tensors[n].shape)}, expected {tuple(shapes[n])}"
           for n in shapes if n in tensors and tuple(tensors[n].shape) != tuple(shapes[n])]
    extra = [f"{n}{src(n)}" for n in tensors if n not in shapes]
    msgs = []
    if missing:
        msgs.append("missing tensors: " + ", ".join(missing))
    if bad:
        msgs.append("mis-shaped tensors: " + "; ".join(bad))
    if extra:
        msgs.append("unexpected tensors: " + ", ".join(extra))
    if unknown:
        msgs.append("keys that are not part of CSRWaveNet.CSRNet with this configuration "
                    "(another variant, or BN affine with --bn-affine false?): "
                    + ", ".join(unknown))
    if msgs:
        raise ConvertError(f"{what}: " + "\n  ".join(msgs))


# ---------------------------------------------------------------- weights

def random_tensors(cfg, seed, names=None):
    """Random weights scaled so activations stay O(1) through the network (so a test
    comparing the engine with the reference exercises every layer)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in sorted(tensor_shapes(cfg).items()):
        if names is not None and name not in names:
            continue
        n = rng.standard_normal(shape)
        leaf = name.rsplit(".", 1)[-1]
        if ".bn." in name:
            if leaf == "running_var":
                v = rng.uniform(0.5, 2.0, shape)
            elif leaf == "weight":
                v = 1 + 0.1 * n
            else:
                v = 0.1 * n
        elif re.fullmatch(r"(exits\.\w+\.)?film(\.\d+)?\.bias", name):
            c = shape[0] // 2
            v = 0.1 * n
            v[:c] += 1.0  # gamma near 1
        elif re.fullmatch(r"(exits\.\w+\.)?film(\.\d+)?\.weight", name):
            v = n * 0.15 / np.sqrt(shape[1])
        elif name == "dense.weight":
            v = 1 + 0.1 * n  # the seed paper initialises it to ones
        elif re.search(r"ln\w*\.weight$", name):
            v = 1 + 0.1 * n
        elif leaf == "pos":
            v = 0.2 * n
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            gain = 2.0 if len(shape) == 4 else 1.0  # He for ReLU convs
            v = n * np.sqrt(gain / fan_in)
        else:  # biases
            v = 0.05 * n
        out[name] = v.astype(np.float32)
    return out


def load_torch(path, trust_pickle=False):
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure
        raise ConvertError(f"{path}: cannot load ({exc}); if the file is trusted, "
                           f"retry with --trust-pickle") from exc
    for key in ("net", "state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: not a state_dict (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if hasattr(v, "detach"):
            out[k] = v.detach().cpu()
        else:
            raise ConvertError(f"{path}: entry {k!r} is not a tensor")
    return out


REF_PREFIXES = ("CCN.module.", "CCN.", "module.")


def _seq_conv_indices(spec):
    """Indices of the convs in a reference-code Sequential built by make_layers
    (conv + ReLU per channel entry, one MaxPool per "M")."""
    idx, i = [], 0
    for v in spec:
        if v == "M":
            i += 1
        else:
            idx.append(i)
            i += 2
    return idx


def reference_keys(cfg):
    """Model-file name -> reference-code key (without prefix) for the backbone,
    including BN weight/bias whether or not bn_affine is set."""
    f = _seq_conv_indices(cfg["frontend"])
    a = _seq_conv_indices(cfg["audio"])
    keys = {}
    for leaf in ("weight", "bias"):
        for i, s in enumerate(f):
            keys[f"frontend.{i}.{leaf}"] = f"frontend.{s}.{leaf}"
        for i, s in enumerate(a):
            keys[f"audio.{i}.{leaf}"] = f"audio_vgg.features.{s}.{leaf}"
        for i in range(len(cfg["backend"])):
            keys[f"film.{i}.{leaf}"] = f"fully_connected.{i}.{leaf}"
            keys[f"backend.{i}.conv.{leaf}"] = f"backend.{3 * i}.{leaf}"
        keys[f"output.{leaf}"] = f"output_layer.{leaf}"
    for i in range(len(cfg["backend"])):
        for leaf in ("running_mean", "running_var", "weight", "bias"):
            keys[f"backend.{i}.bn.{leaf}"] = f"backend.{3 * i + 1}.{leaf}"
    return keys


def _strip_prefix(key):
    for p in REF_PREFIXES:
        if key.startswith(p):
            return p, key[len(p):]
    return "", key


def from_reference(sd, cfg, path="checkpoint"):
    """Maps a CSRWaveNet.CSRNet state_dict onto the model-file names (backbone only).
    Returns (tensors, sources, unknown): sources[name] names the checkpoint key, for
    every backbone tensor of the config (so that a missing one is reported by its
    key); unknown lists the checkpoint keys that map to nothing."""
    names = reference_keys(cfg)
    wanted = {n for n in tensor_shapes(cfg) if not n.startswith("exits.")}
    by_key = {k: n for n, k in names.items() if n in wanted}
    prefix = _strip_prefix(next(iter(sd), ""))[0]
    tensors, unknown = {}, []
    sources = {n: f"checkpoint key {prefix}{names[n]}" for n in wanted}
    for key, val in sd.items():
        k = _strip_prefix(key)[1]
        if k.startswith("audio_vgg.fc.") or k.endswith(".num_batches_tracked"):
            continue  # VGGish embedding layers are never run; BN counter unused
        if k not in by_key:
            unknown.append(key)
            continue
        tensors[by_key[k]] = val.float().numpy()
        sources[by_key[k]] = f"checkpoint key {key}"
    return tensors, sources, unknown


def detect_bn_affine(sd):
    """True when the checkpoint's back-end BatchNorms have weight/bias."""
    for key in sd:
        m = re.search(r"(?:^|\.)backend\.(\d+)\.weight$", key)
        if m and int(m.group(1)) % 3 == 1:
            return True
    return False


def from_exits_checkpoint(sd, cfg, patch_order="pyxc", path="exits checkpoint"):
    """Maps an ExitSet state_dict (`<exit>.<param>`, optional `exits.`/`module.`
    prefix) onto `exits.<exit>.<param>`; permutes SL-ViT patch columns from
    (c, py, px) order when patch_order == "cpyx"."""
    selected = {e["name"] for e in cfg["exits"]}
    sources = {n: f"exits key {n[len('exits.'):]}" for n in tensor_shapes(cfg)
               if n.startswith("exits.")}
    tensors = {}
    for key, val in sd.items():
        k = key
        for p in ("module.", "exits."):
            if k.startswith(p):
                k = k[len(p):]
        if k.split(".", 1)[0] in EXIT_NAMES and k.split(".", 1)[0] not in selected:
            continue  # an exit left out with --exit-list
        tensors["exits." + k] = val.float().numpy()
        sources["exits." + k] = f"exits key {key}"
    if patch_order == "cpyx":
        for e in cfg["exits"]:
            name = f"exits.{e['name']}.proj.weight"
            if e["kind"] == "slvit" and name in tensors:
                w = tensors[name]
                c = tap_shape(cfg, e["tap"])[0]
                pp = e["patch"] ** 2
                if w.ndim == 2 and w.shape[1] == c * pp:
                    tensors[name] = np.ascontiguousarray(
                        w.reshape(w.shape[0], c, pp).transpose(0, 2, 1).reshape(w.shape[0], -1))
    return tensors, sources


# ---------------------------------------------------------------- model files

def write_model(path, cfg, tensors, dtype="f32", source=""):
    check_tensors(tensors, tensor_shapes(cfg), "model")
    np_dtype = np.float16 if dtype == "f16" else np.float32
    arrs = {k: np.asarray(v, dtype=np.float32).astype(np_dtype) for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": json.dumps(cfg)}
    if source:
        meta["source"] = source
    eesafetensors.save(path, arrs, meta)


def load_model(path):
    """Reads and validates a model file: returns (config dict, float32 tensors)."""
    tensors, meta = eesafetensors.load(path)
    if meta.get("format") != FORMAT:
        raise ConvertError(f"{path}: metadata format is {meta.get('format')!r}, "
                           f"expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConvertError(f"{path}: format_version {meta.get('format_version')!r} "
                           f"unsupported (expected {FORMAT_VERSION!r})")
    try:
        cfg = json.loads(meta["config"])
    except (KeyError, ValueError) as exc:
        raise ConvertError(f"{path}: bad or missing config metadata ({exc})") from exc
    validate_config(cfg)
    check_tensors(tensors, tensor_shapes(cfg), path)
    return cfg, tensors


# ---------------------------------------------------------------- command line

def _size(s):
    m = re.fullmatch(r"(\d+)x(\d+)", s)
    if not m:
        raise argparse.ArgumentTypeError("expected WxH, e.g. 1024x576")
    return int(m.group(1)), int(m.group(2))


def _bool(s):
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError("expected true|false")


def _floats3(s):
    v = [float(x) for x in s.split(",")]
    if len(v) != 3:
        raise argparse.ArgumentTypeError("expected three comma-separated numbers")
    return v


def _spec(s):
    return [v if v == "M" else int(v) for v in s.split(",")]


def _exit_list(s):
    if s == "none":
        return []
    names = s.split(",")
    for n in names:
        if n not in EXIT_NAMES:
            raise argparse.ArgumentTypeError(f"unknown exit {n!r} (v1, av1, av2)")
    return names


def parser():
    ap = argparse.ArgumentParser(
        description="Write a gst-earlyexit AudioCSRNet model file (docs/model-format.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = ap.add_argument_group("weights")
    g.add_argument("--checkpoint", help="reference-code CSRWaveNet.CSRNet checkpoint")
    g.add_argument("--exits", dest="exits_ckpt",
                   help="exit checkpoint (state_dict of exits_ref.ExitSet)")
    g.add_argument("--exits-patch-order", choices=["pyxc", "cpyx"], default="pyxc",
                   help="patch-vector order of the SL-ViT proj.weight columns in --exits "
                        "(cpyx = torch unfold order; permuted to pyxc)")
    g.add_argument("--random", action="store_true", help="random weights for everything")
    g.add_argument("--random-exits", action="store_true",
                   help="random exit weights with a real --checkpoint")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--trust-pickle", action="store_true",
                   help="allow full unpickling of checkpoints (only for trusted files)")
    g = ap.add_argument_group("output")
    g.add_argument("--out", help="model file to write (.safetensors)")
    g.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    g.add_argument("--source", help="the file's `source` metadata (default: says which "
                   "weights were converted)")
    g.add_argument("--print-tensors", action="store_true",
                   help="print the tensor table and per-exit parameter counts")
    g = ap.add_argument_group("input and preprocessing")
    g.add_argument("--input-size", type=_size, default=(1024, 576), help="WxH")
    g.add_argument("--pixel-scale", type=float, default=1 / 255)
    g.add_argument("--mean", type=_floats3, default=DISCO_MEAN)
    g.add_argument("--std", type=_floats3, default=DISCO_STD)
    g.add_argument("--channel-order", choices=["rgb", "bgr"], default="rgb")
    g = ap.add_argument_group("backbone")
    g.add_argument("--width-div", type=int, default=1,
                   help="divide every backbone channel width by this (compact variants)")
    g.add_argument("--frontend", type=_spec, default=PAPER_FRONTEND,
                   help="front-end channels, M = max pool")
    g.add_argument("--audio-cfg", type=_spec, default=PAPER_AUDIO,
                   help="audio-branch channels, M = max pool")
    g.add_argument("--backend", type=_spec, default=PAPER_BACKEND)
    g.add_argument("--bn-eps", type=float, default=1e-5)
    g.add_argument("--bn-affine", choices=["auto", "true", "false"], default="auto",
                   help="auto: from the checkpoint; false with --random")
    g.add_argument("--count-head", choices=["sum", "dense"], default="sum")
    g.add_argument("--count-scale", type=float, default=None,
                   help="default 0.64 for sum (reference code), 1 for dense")
    g.add_argument("--dense-bias", type=_bool, default=False)
    g = ap.add_argument_group("exits")
    g.add_argument("--exit-list", type=_exit_list, default=list(EXIT_NAMES),
                   help="comma-separated subset of v1,av1,av2, or none")
    g.add_argument("--exit-kind", choices=["slvit", "cnn"], default="slvit")
    g.add_argument("--patch", type=int, default=8)
    g.add_argument("--dim", type=int, default=32)
    g.add_argument("--heads", type=int, default=12)
    g.add_argument("--mlp-dim", type=int, default=None, help="default 2*dim")
    g.add_argument("--ln-eps", type=float, default=1e-6)
    g.add_argument("--last-residual", type=_bool, default=True)
    g.add_argument("--final-ln", type=_bool, default=False)
    g.add_argument("--mlp-out-gelu", type=_bool, default=False)
    g.add_argument("--audio-token", choices=["shared_projection", "none"],
                   default="shared_projection", help="SL-ViT AV1 audio token")
    g.add_argument("--exit-head", choices=["flatten", "per_token"], default="flatten",
                   help="SL-ViT head: flatten (the paper's: all tokens into one MLP) or "
                   "per_token (the MLP on each patch token, summed; the exit gives a map)")
    g.add_argument("--cnn-filters", type=int, default=16)
    g.add_argument("--cnn-padding", type=int, choices=[0, 1], default=1)
    g.add_argument("--cnn-pool", type=int, default=4)
    g.add_argument("--cnn-film", type=_bool, default=True, help="FiLM in the CNN AV1 exit")
    g.add_argument("--head-hidden", type=int, default=256)
    g.add_argument("--head-act", choices=["gelu", "relu"], default="gelu")
    return ap


def print_table(cfg, out=sys.stdout):
    total = 0
    for name, shape in tensor_shapes(cfg).items():
        n = int(np.prod(shape))
        total += n
        print(f"{name:32s} {str(tuple(shape)):24s} {n:>12,d}", file=out)
    print(f"total parameters {total:,d}", file=out)
    for name, n in exit_param_counts(cfg).items():
        print(f"exit {name} parameters {n:,d}", file=out)


def main(argv=None):
    args = parser().parse_args(argv)
    o = vars(args)
    try:
        ref_sd = None
        if args.checkpoint:
            if args.random:
                raise ConvertError("--checkpoint and --random exclude each other")
            ref_sd = load_torch(args.checkpoint, args.trust_pickle)
        if args.bn_affine == "auto":
            o["bn_affine"] = detect_bn_affine(ref_sd) if ref_sd is not None else False
        else:
            o["bn_affine"] = args.bn_affine == "true"
        cfg = make_config(o)
        if args.print_tensors:
            print_table(cfg)
        if not args.out:
            if args.print_tensors:
                return 0
            raise ConvertError("--out is required")
        shapes = tensor_shapes(cfg)
        exit_names = {n for n in shapes if n.startswith("exits.")}
        if args.random:
            if args.exits_ckpt:
                raise ConvertError("--exits and --random exclude each other")
            tensors = random_tensors(cfg, args.seed)
            source = f"random weights, seed {args.seed}"
        elif ref_sd is not None:
            if cfg["count_head"] == "dense":
                raise ConvertError("the reference code has no dense count head "
                                   "(its weights would be missing); use --count-head sum")
            tensors, sources, unknown = from_reference(ref_sd, cfg, args.checkpoint)
            backbone = {n: s for n, s in shapes.items() if not n.startswith("exits.")}
            check_tensors(tensors, backbone, args.checkpoint, sources, unknown)
            source = f"reference checkpoint {os.path.basename(args.checkpoint)}"
            if exit_names:
                if args.exits_ckpt:
                    et, es = from_exits_checkpoint(load_torch(args.exits_ckpt,
                                                              args.trust_pickle),
                                                   cfg, args.exits_patch_order,
                                                   args.exits_ckpt)
                    check_tensors(et, {n: shapes[n] for n in exit_names},
                                  args.exits_ckpt, es)
                    tensors.update(et)
                    source += f", exits {os.path.basename(args.exits_ckpt)}"
                elif args.random_exits:
                    tensors.update(random_tensors(cfg, args.seed, exit_names))
                    source += f", random exits seed {args.seed}"
                else:
                    raise ConvertError("exits need weights: give --exits FILE, "
                                       "--random-exits, or --exit-list none")
        else:
            raise ConvertError("give --checkpoint or --random")
        write_model(args.out, cfg, tensors, args.dtype, args.source or source)
        print(f"wrote {args.out}: {len(tensors)} tensors, exits "
              f"{exit_param_counts(cfg) or 'none'}")
        return 0
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
