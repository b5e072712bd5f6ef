#!/usr/bin/python3
"""Write a classification model file (docs/model-format.md, format_version 2) for
gst-earlyexit: ResNet152, DenseNet201 or InceptionV3 with SL-ViT / CNN early exits.

Sources of weights:
  --checkpoint CKPT.pth   a torchvision state_dict of the architecture (raw, or under a
                          `model`, `state_dict` or `net` key; `module.` prefixes are
                          removed), with torchvision's single linear classifier or the
                          paper's two-layer head Sequential(Linear, ReLU, Dropout, Linear)
                          in place of `fc` / `classifier`
  --exits EXITS.pth       exits trained with models/convert/exits_ref.py (state_dict keys
                          `<exit>.<param>`, e.g. `b1.proj.weight`)
  --random --seed N       random weights (tests); BN statistics are calibrated on a random
                          batch so that activations keep their scale through the depth
  --random-exits          random exits on top of a real backbone checkpoint

Examples:
  /usr/bin/python3 models/convert/classifier.py --arch resnet152 --checkpoint r152.pth \\
      --exits exits.pth --labels cifar10.txt --out r152-cifar10.safetensors
  /usr/bin/python3 models/convert/classifier.py --arch densenet201 --random --seed 1 \\
      --classes 10 --classifier two_layer --exit-kind cnn --out d201.safetensors
  /usr/bin/python3 models/convert/classifier.py --arch inceptionv3 --print-tensors

The module is also imported by tests/reference/classifier_ref.py (configs, the tensor
table `tensor_shapes`, `torchvision_model`, `load_model`).
"""
import argparse
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import audiocsrnet  # noqa: E402  (shared checks and errors)
import eesafetensors  # noqa: E402
import exits_ref  # noqa: E402

FORMAT = audiocsrnet.FORMAT
FORMAT_VERSION = "2"
ConvertError = audiocsrnet.ConvertError
_need, _is_int, _is_num = audiocsrnet._need, audiocsrnet._is_int, audiocsrnet._is_num
check_tensors = audiocsrnet.check_tensors

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# The paper's branch placements (docs/models.md 3.3) and torchvision's defaults.
ARCHS = {
    "resnet152": {"head": "fc", "features": 2048, "bn_eps": 1e-5, "patch": 4,
                  "min_size": 1, "taps": {"b1": "layer2.0.conv2", "b2": "layer2"},
                  "keys": ["stride_on_1x1"]},
    "densenet201": {"head": "classifier", "features": 1920, "bn_eps": 1e-5, "patch": 4,
                    "min_size": 29,
                    "taps": {"b1": "features.transition1",
                             "b2": "features.transition2.conv"},
                    "keys": []},
    "inceptionv3": {"head": "fc", "features": 2048, "bn_eps": 1e-3, "patch": 5,
                    "min_size": 75, "taps": {"b1": "Mixed_5c", "b2": "Mixed_5d"},
                    "keys": ["transform_input"]},
}
EXIT_NAMES = ("b1", "b2")
TOP_KEYS = ["arch", "input_width", "input_height", "preprocess", "audio_features",
            "bn_eps", "classes", "classifier", "classifier_hidden", "exits"]
FEATURE_KEYS = ["kind", "log", "log_offset", "mel_scale", "mean", "std"]


# ---------------------------------------------------------------- configuration

def exit_config(name, kind, tap, cfg, o):
    """Exit `name` of `kind` at `tap` with options `o` (the argparse fields)."""
    e = {"name": name, "kind": kind, "tap": tap}
    if kind == "slvit":
        patch = o["patch"]
        if patch is None:
            # the paper's patch, when it tiles this tap (P=4 on 28x28, 5 on 25x25)
            patch = ARCHS[cfg["arch"]]["patch"]
            try:
                _, h, w = exits_ref.tap_shape(cfg, tap)
            except ValueError as exc:
                raise ConvertError(f"exit {name}: {exc}") from exc
            if h % patch or w % patch:
                raise ConvertError(f"exit {name}: the paper's patch {patch} does not "
                                   f"divide the {h}x{w} tap {tap}; give --patch")
        e.update({"patch": patch, "dim": o["dim"], "heads": o["heads"],
                  "mlp_dim": o["mlp_dim"] or 2 * o["dim"], "ln_eps": o["ln_eps"],
                  "last_residual": o["last_residual"], "final_ln": o["final_ln"],
                  "mlp_out_gelu": o["mlp_out_gelu"], "audio_token": "none"})
    else:
        e.update({"filters": o["cnn_filters"], "conv_padding": o["cnn_padding"],
                  "pool": o["cnn_pool"], "film": False})
    e.update({"head_hidden": o["head_hidden"], "head_act": o["head_act"],
              "outputs": cfg["classes"]})
    return e


def make_config(o):
    arch = o["arch"]
    a = ARCHS[arch]
    cfg = {
        "arch": arch,
        "input_width": o["input_size"][0],
        "input_height": o["input_size"][1],
        "preprocess": {"scale": o["pixel_scale"], "mean": o["mean"], "std": o["std"],
                       "channel_order": o["channel_order"]},
        "audio_features": None,
        "bn_eps": a["bn_eps"] if o["bn_eps"] is None else o["bn_eps"],
        "classes": o["classes"],
        "classifier": o["classifier"],
        "classifier_hidden": o["classifier_hidden"] if o["classifier"] == "two_layer" else 0,
    }
    if arch == "resnet152":
        cfg["stride_on_1x1"] = o["stride_on_1x1"]
    if arch == "inceptionv3":
        cfg["transform_input"] = o["transform_input"]
    if o["audio_features"] != "none":
        cfg["audio_features"] = {
            "kind": o["audio_features"], "log": o["feature_log"],
            "log_offset": o["feature_log_offset"], "mel_scale": o["feature_mel_scale"],
            "mean": o["feature_mean"], "std": o["feature_std"]}
    cfg["exits"] = []
    for name, kind, tap in o["exit_specs"]:
        cfg["exits"].append(exit_config(name, kind, tap, cfg, o))
    validate_config(cfg)
    return cfg


def validate_config(cfg):
    """The checks docs/model-format.md asks every loader to make."""
    _need(isinstance(cfg, dict) and cfg.get("arch") in ARCHS,
          f"arch {cfg.get('arch')!r} is not one of {sorted(ARCHS)}")
    a = ARCHS[cfg["arch"]]
    audiocsrnet._check_keys(cfg, TOP_KEYS + a["keys"], "config")
    p = cfg["preprocess"]
    audiocsrnet._check_keys(p, ["scale", "mean", "std", "channel_order"], "preprocess")
    _need(_is_num(p["scale"]) and p["scale"] > 0, "preprocess.scale must be > 0")
    for k in ("mean", "std"):
        _need(isinstance(p[k], list) and len(p[k]) == 3 and all(map(_is_num, p[k])),
              f"preprocess.{k} must be 3 numbers")
    _need(all(s > 0 for s in p["std"]), "preprocess.std must be > 0")
    _need(p["channel_order"] in ("rgb", "bgr"), "preprocess.channel_order: rgb|bgr")
    f = cfg["audio_features"]
    if f is not None:
        audiocsrnet._check_keys(f, FEATURE_KEYS, "audio_features")
        _need(f["kind"] in ("sc", "gtzan"), "audio_features.kind: sc|gtzan")
        _need(isinstance(f["log"], bool), "audio_features.log must be a boolean")
        _need(_is_num(f["log_offset"]) and f["log_offset"] > 0,
              "audio_features.log_offset must be > 0")
        _need(f["mel_scale"] in ("slaney", "htk"), "audio_features.mel_scale: slaney|htk")
        for k in ("mean", "std"):
            _need(isinstance(f[k], list) and len(f[k]) == 3 and all(map(_is_num, f[k])),
                  f"audio_features.{k} must be 3 numbers")
        _need(all(s > 0 for s in f["std"]), "audio_features.std must be > 0")
    for k in ("input_width", "input_height"):
        _need(_is_int(cfg[k], a["min_size"]) and cfg[k] <= 1 << 15,
              f"{k} must be an integer >= {a['min_size']} for {cfg['arch']}")
    _need(_is_num(cfg["bn_eps"]) and cfg["bn_eps"] > 0, "bn_eps must be > 0")
    _need(_is_int(cfg["classes"]), "classes must be a positive integer")
    _need(cfg["classifier"] in ("linear", "two_layer"), "classifier: linear|two_layer")
    _need(_is_int(cfg["classifier_hidden"], 0) and
          (cfg["classifier_hidden"] == 0) == (cfg["classifier"] == "linear"),
          "classifier_hidden must be 0 for linear and > 0 for two_layer")
    for k in a["keys"]:
        _need(isinstance(cfg[k], bool), f"{k} must be a boolean")
    _need(isinstance(cfg["exits"], list), "exits must be a list")
    _need(len(cfg["exits"]) <= 8, "at most 8 exits")
    names, last = set(), -1
    for e in cfg["exits"]:
        _need(isinstance(e, dict) and e.get("kind") in ("slvit", "cnn"),
              "exit kind must be slvit|cnn")
        audiocsrnet._check_keys(e, audiocsrnet.SLVIT_KEYS if e["kind"] == "slvit"
                                else audiocsrnet.CNN_KEYS, f"exit {e.get('name')!r}")
        n = e["name"]
        _need(isinstance(n, str) and re.fullmatch(r"[a-z][a-z0-9_]*", n) and n != "final"
              and len(n) < 32, f"bad exit name {n!r}")
        _need(n not in names, f"duplicate exit name {n!r}")
        names.add(n)
        try:
            c, h, w = exits_ref.tap_shape(cfg, e["tap"])
            r = exits_ref.tap_rank(cfg, e["tap"])
        except ValueError as exc:
            raise ConvertError(f"config: exit {n}: {exc}") from exc
        _need(r >= last, f"exit {n}: exits must be listed in tap order")
        last = r
        _need(_is_int(e["head_hidden"]), f"exit {n}: head_hidden")
        _need(e["outputs"] == cfg["classes"],
              f"exit {n}: outputs must equal classes ({cfg['classes']})")
        _need(e["head_act"] in ("gelu", "relu"), f"exit {n}: head_act gelu|relu")
        if e["kind"] == "slvit":
            for k in ("patch", "dim", "heads", "mlp_dim"):
                _need(_is_int(e[k]), f"exit {n}: {k} must be a positive integer")
            _need(h % e["patch"] == 0 and w % e["patch"] == 0,
                  f"exit {n}: tap {e['tap']} ({h}x{w}) not divisible by patch "
                  f"{e['patch']}")
            _need(_is_num(e["ln_eps"]) and e["ln_eps"] > 0, f"exit {n}: ln_eps > 0")
            for k in ("last_residual", "final_ln", "mlp_out_gelu"):
                _need(isinstance(e[k], bool), f"exit {n}: {k} must be a boolean")
            _need(e["audio_token"] == "none",
                  f"exit {n}: {cfg['arch']} has no audio vector (audio_token none)")
        else:
            _need(_is_int(e["filters"]) and _is_int(e["pool"]), f"exit {n}: filters/pool")
            _need(e["conv_padding"] in (0, 1), f"exit {n}: conv_padding 0|1")
            _need(e["film"] is False, f"exit {n}: {cfg['arch']} has no audio vector "
                  "(film false)")
            ho, wo = h + 2 * e["conv_padding"] - 2, w + 2 * e["conv_padding"] - 2
            _need(ho // e["pool"] >= 1 and wo // e["pool"] >= 1,
                  f"exit {n}: tap {e['tap']} ({h}x{w}) too small")
    return cfg


# ---------------------------------------------------------------- tensor table

def _bn(s, name, c):
    for k in ("weight", "bias", "running_mean", "running_var"):
        s[f"{name}.{k}"] = (c,)


def _resnet152_shapes(s):
    s["conv1.weight"] = (64, 3, 7, 7)
    _bn(s, "bn1", 64)
    cin = 64
    for k, (n, w) in enumerate(zip((3, 8, 36, 3), (64, 128, 256, 512)), 1):
        for i in range(n):
            p = f"layer{k}.{i}"
            s[f"{p}.conv1.weight"] = (w, cin, 1, 1)
            _bn(s, f"{p}.bn1", w)
            s[f"{p}.conv2.weight"] = (w, w, 3, 3)
            _bn(s, f"{p}.bn2", w)
            s[f"{p}.conv3.weight"] = (4 * w, w, 1, 1)
            _bn(s, f"{p}.bn3", 4 * w)
            if i == 0:
                s[f"{p}.downsample.0.weight"] = (4 * w, cin, 1, 1)
                _bn(s, f"{p}.downsample.1", 4 * w)
            cin = 4 * w


def _densenet201_shapes(s):
    s["features.conv0.weight"] = (64, 3, 7, 7)
    _bn(s, "features.norm0", 64)
    c = 64
    blocks = (6, 12, 48, 32)
    for k, n in enumerate(blocks, 1):
        for j in range(1, n + 1):
            p = f"features.denseblock{k}.denselayer{j}"
            _bn(s, f"{p}.norm1", c)
            s[f"{p}.conv1.weight"] = (128, c, 1, 1)
            _bn(s, f"{p}.norm2", 128)
            s[f"{p}.conv2.weight"] = (32, 128, 3, 3)
            c += 32
        if k < len(blocks):
            _bn(s, f"features.transition{k}.norm", c)
            s[f"features.transition{k}.conv.weight"] = (c // 2, c, 1, 1)
            c //= 2
    _bn(s, "features.norm5", c)


def _basic(s, name, cin, cout, kh, kw=None):
    s[f"{name}.conv.weight"] = (cout, cin, kh, kw or kh)
    _bn(s, f"{name}.bn", cout)


def _inceptionv3_shapes(s):
    for name, cin, cout, k in (("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3),
                               ("Conv2d_2b_3x3", 32, 64, 3), ("Conv2d_3b_1x1", 64, 80, 1),
                               ("Conv2d_4a_3x3", 80, 192, 3)):
        _basic(s, name, cin, cout, k)
    for blk, cin, pf in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        _basic(s, f"{blk}.branch1x1", cin, 64, 1)
        _basic(s, f"{blk}.branch5x5_1", cin, 48, 1)
        _basic(s, f"{blk}.branch5x5_2", 48, 64, 5)
        _basic(s, f"{blk}.branch3x3dbl_1", cin, 64, 1)
        _basic(s, f"{blk}.branch3x3dbl_2", 64, 96, 3)
        _basic(s, f"{blk}.branch3x3dbl_3", 96, 96, 3)
        _basic(s, f"{blk}.branch_pool", cin, pf, 1)
    _basic(s, "Mixed_6a.branch3x3", 288, 384, 3)
    _basic(s, "Mixed_6a.branch3x3dbl_1", 288, 64, 1)
    _basic(s, "Mixed_6a.branch3x3dbl_2", 64, 96, 3)
    _basic(s, "Mixed_6a.branch3x3dbl_3", 96, 96, 3)
    for blk, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        _basic(s, f"{blk}.branch1x1", 768, 192, 1)
        _basic(s, f"{blk}.branch7x7_1", 768, c7, 1)
        _basic(s, f"{blk}.branch7x7_2", c7, c7, 1, 7)
        _basic(s, f"{blk}.branch7x7_3", c7, 192, 7, 1)
        _basic(s, f"{blk}.branch7x7dbl_1", 768, c7, 1)
        _basic(s, f"{blk}.branch7x7dbl_2", c7, c7, 7, 1)
        _basic(s, f"{blk}.branch7x7dbl_3", c7, c7, 1, 7)
        _basic(s, f"{blk}.branch7x7dbl_4", c7, c7, 7, 1)
        _basic(s, f"{blk}.branch7x7dbl_5", c7, 192, 1, 7)
        _basic(s, f"{blk}.branch_pool", 768, 192, 1)
    _basic(s, "Mixed_7a.branch3x3_1", 768, 192, 1)
    _basic(s, "Mixed_7a.branch3x3_2", 192, 320, 3)
    _basic(s, "Mixed_7a.branch7x7x3_1", 768, 192, 1)
    _basic(s, "Mixed_7a.branch7x7x3_2", 192, 192, 1, 7)
    _basic(s, "Mixed_7a.branch7x7x3_3", 192, 192, 7, 1)
    _basic(s, "Mixed_7a.branch7x7x3_4", 192, 192, 3)
    for blk, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        _basic(s, f"{blk}.branch1x1", cin, 320, 1)
        _basic(s, f"{blk}.branch3x3_1", cin, 384, 1)
        _basic(s, f"{blk}.branch3x3_2a", 384, 384, 1, 3)
        _basic(s, f"{blk}.branch3x3_2b", 384, 384, 3, 1)
        _basic(s, f"{blk}.branch3x3dbl_1", cin, 448, 1)
        _basic(s, f"{blk}.branch3x3dbl_2", 448, 384, 3)
        _basic(s, f"{blk}.branch3x3dbl_3a", 384, 384, 1, 3)
        _basic(s, f"{blk}.branch3x3dbl_3b", 384, 384, 3, 1)
        _basic(s, f"{blk}.branch_pool", cin, 192, 1)


BACKBONE_SHAPES = {"resnet152": _resnet152_shapes, "densenet201": _densenet201_shapes,
                   "inceptionv3": _inceptionv3_shapes}


def head_shapes(cfg):
    a = ARCHS[cfg["arch"]]
    h, f, n = a["head"], a["features"], cfg["classes"]
    if cfg["classifier"] == "linear":
        return {f"{h}.weight": (n, f), f"{h}.bias": (n,)}
    k = cfg["classifier_hidden"]
    return {f"{h}.0.weight": (k, f), f"{h}.0.bias": (k,),
            f"{h}.3.weight": (n, k), f"{h}.3.bias": (n,)}


def exit_shapes(cfg, e):
    """Tensor shapes of one exit (names without `exits.<name>.`): those of the
    reference module, which defines the exit checkpoint format."""
    return {k: tuple(v.shape) for k, v in exits_ref.build_exit(cfg, e).state_dict().items()}


def tensor_shapes(cfg):
    """Every tensor of the model file: name -> shape (the table of model-format.md)."""
    s = {}
    BACKBONE_SHAPES[cfg["arch"]](s)
    s.update(head_shapes(cfg))
    for e in cfg["exits"]:
        for k, v in exit_shapes(cfg, e).items():
            s[f"exits.{e['name']}.{k}"] = v
    return s


def exit_param_counts(cfg):
    return {e["name"]: int(sum(np.prod(v) for v in exit_shapes(cfg, e).values()))
            for e in cfg["exits"]}


# ---------------------------------------------------------------- torchvision

def torchvision_model(cfg):
    """torchvision's model for a config (eval mode, float32), with the paper's head
    when the config asks for it; its state_dict keys are the model-file names (plus
    BN's num_batches_tracked)."""
    import torch.nn as nn
    import torchvision.models as tvm
    arch, n = cfg["arch"], cfg["classes"]
    if arch == "resnet152":
        m = tvm.resnet152(weights=None, num_classes=n)
        if cfg["stride_on_1x1"]:
            for layer in (m.layer2, m.layer3, m.layer4):
                layer[0].conv1.stride, layer[0].conv2.stride = (2, 2), (1, 1)
    elif arch == "densenet201":
        m = tvm.densenet201(weights=None, num_classes=n)
    else:
        m = tvm.inception_v3(weights=None, num_classes=n, aux_logits=False,
                             transform_input=cfg["transform_input"], init_weights=False)
    if cfg["classifier"] == "two_layer":
        f, k = ARCHS[arch]["features"], cfg["classifier_hidden"]
        setattr(m, ARCHS[arch]["head"], nn.Sequential(
            nn.Linear(f, k), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(k, n)))
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.eps = cfg["bn_eps"]
    return m.eval()


def _random_backbone(cfg, seed):
    """torchvision weights drawn at random, then every BN's running statistics set to
    those of a random batch (each BN normalises what it sees), so that the logits
    and every tap stay O(1) through 150 layers. A ResNet's residual branches end in
    a BN with a small scale, as in trained ResNets: with scales near 1 the random
    net is chaotic, float32 rounding grows by ~10 % a block, and no float32
    implementation, torchvision's included, matches float64 to 1e-4."""
    import torch
    import torch.nn as nn
    g = torch.Generator().manual_seed(seed)
    m = torchvision_model(cfg)
    with torch.no_grad():
        for name, mod in m.named_modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                fan_in = mod.weight[0].numel()
                gain = 2.0 if isinstance(mod, nn.Conv2d) else 1.0
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=g)
                                 * (gain / fan_in) ** 0.5)
                if mod.bias is not None:
                    mod.bias.copy_(0.05 * torch.randn(mod.bias.shape, generator=g))
            elif isinstance(mod, nn.BatchNorm2d):
                lo, hi = (0.1, 0.3) if name.endswith(".bn3") else (0.5, 1.5)
                mod.weight.copy_(lo + (hi - lo) * torch.rand(mod.weight.shape, generator=g))
                mod.bias.copy_(0.2 * torch.randn(mod.bias.shape, generator=g))
                mod.momentum = 1.0
        m.train()
        # two images: a 1x1 map of one image gives BN no variance to measure
        m(torch.randn(2, 3, cfg["input_height"], cfg["input_width"], generator=g))
    m.eval()
    return {k: v.numpy().astype(np.float32) for k, v in m.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def random_exit_tensors(cfg, seed, names=None):
    """Random exit weights scaled as audiocsrnet.random_tensors scales them."""
    rng = np.random.default_rng(seed + 1000)
    out = {}
    for name, shape in sorted(tensor_shapes(cfg).items()):
        if not name.startswith("exits.") or (names is not None and name not in names):
            continue
        n = rng.standard_normal(shape)
        leaf = name.rsplit(".", 1)[-1]
        if re.search(r"ln\w*\.weight$", name):
            v = 1 + 0.1 * n
        elif leaf == "pos":
            v = 0.2 * n
        elif leaf == "weight":
            fan_in = int(np.prod(shape[1:]))
            v = n * np.sqrt((2.0 if len(shape) == 4 else 1.0) / fan_in)
        else:
            v = 0.05 * n
        out[name] = v.astype(np.float32)
    return out


def random_tensors(cfg, seed):
    t = _random_backbone(cfg, seed)
    t.update(random_exit_tensors(cfg, seed))
    return t


# ---------------------------------------------------------------- checkpoints

def load_state_dict(path, trust_pickle=False):
    import torch
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as exc:  # noqa: BLE001 - report any unpickling failure
        raise ConvertError(f"{path}: cannot load ({exc}); if the file is trusted, "
                           f"retry with --trust-pickle") from exc
    for key in ("model", "state_dict", "net"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ConvertError(f"{path}: not a state_dict (got {type(obj).__name__})")
    out = {}
    for k, v in obj.items():
        if not hasattr(v, "detach"):
            raise ConvertError(f"{path}: entry {k!r} is not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v.detach().cpu()
    return out


# torchvision's DenseNet checkpoints before 0.3 named `norm.1` what is now `norm1`
_OLD_DENSENET = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                           r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def detect_head(sd, arch):
    """(classifier, hidden, classes) of a checkpoint's head, and a map from its keys
    to the model-file names: `fc.weight`, or a Sequential whose two Linear layers
    become `fc.0` and `fc.3`."""
    h = ARCHS[arch]["head"]
    if f"{h}.weight" in sd:
        w = sd[f"{h}.weight"]
        return "linear", 0, int(w.shape[0]), {}
    idx = sorted({int(m.group(1)) for k in sd
                  for m in [re.fullmatch(re.escape(h) + r"\.(\d+)\.weight", k)] if m})
    if len(idx) != 2:
        raise ConvertError(f"the checkpoint's head is neither {h}.weight nor a Sequential "
                           f"with two Linear layers ({h}.N.weight found for N in {idx})")
    rename = {}
    for i, new in zip(idx, (0, 3)):
        for leaf in ("weight", "bias"):
            rename[f"{h}.{i}.{leaf}"] = f"{h}.{new}.{leaf}"
    hidden, classes = sd[f"{h}.{idx[0]}.weight"].shape[0], sd[f"{h}.{idx[1]}.weight"].shape[0]
    return "two_layer", int(hidden), int(classes), rename


def from_torchvision(sd, cfg, rename):
    """Maps a torchvision state_dict onto model-file names (backbone and head).
    Returns (tensors, sources): sources[name] names the checkpoint key."""
    tensors, sources = {}, {}
    for key, val in sd.items():
        k = key
        if key.endswith(".num_batches_tracked") or key.startswith("AuxLogits."):
            continue  # BN's counter is unused; the aux classifier only trains
        if cfg["arch"] == "densenet201":
            m = _OLD_DENSENET.match(k)
            if m:
                k = m.group(1) + m.group(2)
        k = rename.get(k, k)
        tensors[k] = val.float().numpy()
        sources[k] = f"checkpoint key {key}"
    return tensors, sources


def from_exits_checkpoint(sd, cfg, patch_order="pyxc"):
    """Maps an ExitSet state_dict (`<exit>.<param>`, optional `exits.` prefix) onto
    `exits.<exit>.<param>`, for the exits of the config; permutes SL-ViT patch
    columns from (c, py, px) order when patch_order == "cpyx"."""
    selected = {e["name"] for e in cfg["exits"]}
    tensors, sources = {}, {}
    for key, val in sd.items():
        k = key[len("exits."):] if key.startswith("exits.") else key
        if k.split(".", 1)[0] not in selected:
            continue  # an exit this model file leaves out
        tensors["exits." + k] = val.float().numpy()
        sources["exits." + k] = f"exits key {key}"
    if patch_order == "cpyx":
        for e in cfg["exits"]:
            name = f"exits.{e['name']}.proj.weight"
            if e["kind"] == "slvit" and name in tensors:
                w = tensors[name]
                c = exits_ref.tap_shape(cfg, e["tap"])[0]
                pp = e["patch"] ** 2
                if w.ndim == 2 and w.shape[1] == c * pp:
                    tensors[name] = np.ascontiguousarray(
                        w.reshape(w.shape[0], c, pp).transpose(0, 2, 1).reshape(w.shape[0], -1))
    return tensors, sources


# ---------------------------------------------------------------- model files

def write_model(path, cfg, tensors, dtype="f32", source="", labels=None):
    check_tensors(tensors, tensor_shapes(cfg), "model")
    if labels is not None and len(labels) != cfg["classes"]:
        raise ConvertError(f"{len(labels)} labels for {cfg['classes']} classes")
    np_dtype = np.float16 if dtype == "f16" else np.float32
    arrs = {k: np.asarray(v, dtype=np.float32).astype(np_dtype) for k, v in tensors.items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": json.dumps(cfg)}
    if labels is not None:
        meta["labels"] = json.dumps(labels)
    if source:
        meta["source"] = source
    eesafetensors.save(path, arrs, meta)


def load_model(path):
    """Reads and validates a model file: returns (config, float32 tensors, labels or
    None)."""
    tensors, meta = eesafetensors.load(path)
    if meta.get("format") != FORMAT:
        raise ConvertError(f"{path}: metadata format is {meta.get('format')!r}, "
                           f"expected {FORMAT!r}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConvertError(f"{path}: format_version {meta.get('format_version')!r} "
                           f"unsupported (expected {FORMAT_VERSION!r})")
    try:
        cfg = json.loads(meta["config"])
        labels = json.loads(meta["labels"]) if "labels" in meta else None
    except (KeyError, ValueError) as exc:
        raise ConvertError(f"{path}: bad or missing metadata ({exc})") from exc
    validate_config(cfg)
    check_tensors(tensors, tensor_shapes(cfg), path)
    if labels is not None:
        _need(isinstance(labels, list) and len(labels) == cfg["classes"]
              and all(isinstance(s, str) for s in labels),
              "labels must be one string per class")
    return cfg, tensors, labels


def read_labels(path):
    with open(path, encoding="utf-8") as f:
        labels = [line.rstrip("\r\n") for line in f]
    while labels and not labels[-1]:
        labels.pop()  # a trailing newline is not a class
    if not labels or any(not s for s in labels):
        raise ConvertError(f"{path}: one non-empty label per line expected")
    return labels


# ---------------------------------------------------------------- command line

_size, _bool, _floats3 = audiocsrnet._size, audiocsrnet._bool, audiocsrnet._floats3


def _exit_spec(s):
    m = re.fullmatch(r"([a-z][a-z0-9_]*):(slvit|cnn):(\S+)", s)
    if not m:
        raise argparse.ArgumentTypeError("expected NAME:slvit|cnn:TAP, e.g. b1:slvit:layer2")
    return m.group(1), m.group(2), m.group(3)


def _exit_list(s):
    if s == "none":
        return []
    names = s.split(",")
    for n in names:
        if n not in EXIT_NAMES:
            raise argparse.ArgumentTypeError(f"unknown exit {n!r} (b1, b2)")
    return names


def parser():
    ap = argparse.ArgumentParser(
        description="Write a gst-earlyexit classification model file "
                    "(docs/model-format.md).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    g = ap.add_argument_group("weights")
    g.add_argument("--checkpoint", help="torchvision state_dict of the architecture")
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
    g.add_argument("--labels", help="text file, one class name per line, stored in "
                                    "the metadata")
    g = ap.add_argument_group("output")
    g.add_argument("--out", help="model file to write (.safetensors)")
    g.add_argument("--dtype", choices=["f32", "f16"], default="f32")
    g.add_argument("--print-tensors", action="store_true",
                   help="print the tensor table and per-exit parameter counts")
    g.add_argument("--print-config", action="store_true",
                   help="print the config (for exits_ref.ExitSet when training exits)")
    g = ap.add_argument_group("input and preprocessing")
    g.add_argument("--input-size", type=_size, default=(224, 224), help="WxH")
    g.add_argument("--pixel-scale", type=float, default=1 / 255)
    g.add_argument("--mean", type=_floats3, default=IMAGENET_MEAN)
    g.add_argument("--std", type=_floats3, default=IMAGENET_STD)
    g.add_argument("--channel-order", choices=["rgb", "bgr"], default="rgb")
    g.add_argument("--audio-features", choices=["none", "sc", "gtzan"], default="none",
                   help="compute the input from audio (docs/models.md 1.2, 1.3)")
    g.add_argument("--feature-log", type=_bool, default=True)
    g.add_argument("--feature-log-offset", type=float, default=1e-6)
    g.add_argument("--feature-mel-scale", choices=["slaney", "htk"], default="slaney")
    g.add_argument("--feature-mean", type=_floats3, default=[0.0, 0.0, 0.0])
    g.add_argument("--feature-std", type=_floats3, default=[1.0, 1.0, 1.0])
    g = ap.add_argument_group("backbone")
    g.add_argument("--classes", type=int, default=None,
                   help="default: the checkpoint's, else 1000")
    g.add_argument("--classifier", choices=["linear", "two_layer"], default=None,
                   help="default: the checkpoint's, else linear")
    g.add_argument("--classifier-hidden", type=int, default=None,
                   help="hidden width of two_layer (default: the checkpoint's, else 1024)")
    g.add_argument("--bn-eps", type=float, default=None,
                   help="default torchvision's: 1e-5, InceptionV3 1e-3")
    g.add_argument("--stride-on-1x1", type=_bool, default=False,
                   help="resnet152: Keras/Caffe v1 stride placement")
    g.add_argument("--transform-input", type=_bool, default=None,
                   help="inceptionv3: torchvision's input transform (true for its "
                        "ImageNet weights); required with --checkpoint")
    g = ap.add_argument_group("exits")
    g.add_argument("--exit-list", type=_exit_list, default=list(EXIT_NAMES),
                   help="b1,b2 (the paper's taps), a subset, or none")
    g.add_argument("--exit-kind", choices=["slvit", "cnn"], default="slvit",
                   help="kind of the --exit-list exits")
    g.add_argument("--exit", dest="exit", type=_exit_spec, action="append",
                   help="NAME:KIND:TAP, repeatable, in tap order; replaces --exit-list")
    g.add_argument("--patch", type=int, default=None,
                   help="SL-ViT patch (default: the paper's 4, InceptionV3 5)")
    g.add_argument("--dim", type=int, default=32)
    g.add_argument("--heads", type=int, default=12)
    g.add_argument("--mlp-dim", type=int, default=None, help="default 2*dim")
    g.add_argument("--ln-eps", type=float, default=1e-6)
    g.add_argument("--last-residual", type=_bool, default=True)
    g.add_argument("--final-ln", type=_bool, default=False)
    g.add_argument("--mlp-out-gelu", type=_bool, default=False)
    g.add_argument("--cnn-filters", type=int, default=16)
    g.add_argument("--cnn-padding", type=int, choices=[0, 1], default=0)
    g.add_argument("--cnn-pool", type=int, default=2)
    g.add_argument("--head-hidden", type=int, default=256)
    g.add_argument("--head-act", choices=["gelu", "relu"], default="gelu")
    return ap


def print_table(cfg, out=sys.stdout):
    total = 0
    for name, shape in tensor_shapes(cfg).items():
        n = int(np.prod(shape))
        total += n
        print(f"{name:56s} {str(tuple(shape)):22s} {n:>12,d}", file=out)
    print(f"total parameters {total:,d}", file=out)
    for name, n in exit_param_counts(cfg).items():
        print(f"exit {name} parameters {n:,d}", file=out)


def main(argv=None):
    args = parser().parse_args(argv)
    o = vars(args)
    try:
        sd, rename = None, {}
        if args.checkpoint:
            if args.random:
                raise ConvertError("--checkpoint and --random exclude each other")
            sd = load_state_dict(args.checkpoint, args.trust_pickle)
            kind, hidden, classes, rename = detect_head(sd, args.arch)
            for opt, got in (("classifier", kind), ("classes", classes)):
                if o[opt] is not None and o[opt] != got:
                    raise ConvertError(f"--{opt} {o[opt]}, but the checkpoint's head has "
                                       f"{got}")
                o[opt] = got
            if kind == "two_layer":
                if o["classifier_hidden"] not in (None, hidden):
                    raise ConvertError(f"--classifier-hidden {o['classifier_hidden']}, but "
                                       f"the checkpoint's head has {hidden}")
                o["classifier_hidden"] = hidden
            if args.arch == "inceptionv3" and args.transform_input is None:
                raise ConvertError("say --transform-input true (torchvision's ImageNet "
                                   "weights) or false (weights trained without it)")
        o["classes"] = o["classes"] or 1000
        o["classifier"] = o["classifier"] or "linear"
        o["classifier_hidden"] = o["classifier_hidden"] or 1024
        o["transform_input"] = bool(o["transform_input"])
        if args.exit:
            o["exit_specs"] = args.exit
        else:
            o["exit_specs"] = [(n, args.exit_kind, ARCHS[args.arch]["taps"][n])
                               for n in EXIT_NAMES if n in args.exit_list]
        cfg = make_config(o)
        labels = read_labels(args.labels) if args.labels else None
        if args.print_config:
            print(json.dumps(cfg, indent=1))
        if args.print_tensors:
            print_table(cfg)
        if not args.out:
            if args.print_tensors or args.print_config:
                return 0
            raise ConvertError("--out is required")
        shapes = tensor_shapes(cfg)
        exit_names = {n for n in shapes if n.startswith("exits.")}
        if args.random:
            if args.exits_ckpt:
                raise ConvertError("--exits and --random exclude each other")
            tensors = random_tensors(cfg, args.seed)
            source = f"random weights, seed {args.seed}"
        elif sd is not None:
            tensors, sources = from_torchvision(sd, cfg, rename)
            backbone = {n: s for n, s in shapes.items() if n not in exit_names}
            check_tensors(tensors, backbone, args.checkpoint, sources)
            source = f"torchvision checkpoint {os.path.basename(args.checkpoint)}"
            if exit_names:
                if args.exits_ckpt:
                    et, es = from_exits_checkpoint(
                        load_state_dict(args.exits_ckpt, args.trust_pickle), cfg,
                        args.exits_patch_order)
                    check_tensors(et, {n: shapes[n] for n in exit_names},
                                  args.exits_ckpt, es)
                    tensors.update(et)
                    source += f", exits {os.path.basename(args.exits_ckpt)}"
                elif args.random_exits:
                    tensors.update(random_exit_tensors(cfg, args.seed, exit_names))
                    source += f", random exits seed {args.seed}"
                else:
                    raise ConvertError("exits need weights: give --exits FILE, "
                                       "--random-exits, or --exit-list none")
        else:
            raise ConvertError("give --checkpoint or --random")
        write_model(args.out, cfg, tensors, args.dtype, source, labels)
        print(f"wrote {args.out}: {len(tensors)} tensors, exits "
              f"{exit_param_counts(cfg) or 'none'}")
        return 0
    except ConvertError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
