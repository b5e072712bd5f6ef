"""PyTorch modules of the two early-exit branch kinds (docs/models.md 3.1, 3.2).

These modules define the *exit checkpoint format*: the keys of `ExitSet.state_dict()`
are `<exit name>.<parameter>` (e.g. `v1.proj.weight`), and each parameter name is the
model-file tensor name without its `exits.<exit name>.` prefix (docs/model-format.md,
section "Exits"). Train or fine-tune exits with these modules, `torch.save` the
state_dict, and `models/convert/audiocsrnet.py --exits FILE` (or classifier.py for the
classification backbones) puts them into a model file.

Conventions (the canonical ones of the model format):
- SL-ViT patch vectors are in (py, px, c) order: element (py*P + px)*C + c.
- Tokens are row-major over the patch grid; the audio token (if any) is appended last.
- Flatten before the head: SL-ViT token-major (n*d + k); CNN (c, y, x) as torch does.
- SL-ViT head_kind "per_token" (our own exit kind, not the paper's): no flatten; the
  head runs on each image token (d -> hidden -> hidden -> 1), giving the count of that
  token's patch; the map (gh, gw) is those values over the patch grid, row-major, and
  the exit's count is their sum. The audio token (if any) feeds the attention only.
- Attention: h heads, each of key/value size d (not d/h); head j owns rows
  [j*d, (j+1)*d) of the q/k/v weights and columns [j*d, (j+1)*d) of attn.out.weight.

Only torch is needed; nothing here depends on the rest of the project.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _act(name):
    if name == "gelu":
        return F.gelu  # exact (erf) GELU
    if name == "relu":
        return F.relu
    raise ValueError(f"unknown head activation {name!r}")


class Head(nn.Module):
    """Linear(in -> hidden), act, Linear(hidden -> hidden), act, Linear(hidden -> out).
    Parameter names 0.*, 1.*, 2.* (the model file's head.0.weight ...)."""

    def __init__(self, in_features, hidden, outputs, act):
        super().__init__()
        self.add_module("0", nn.Linear(in_features, hidden))
        self.add_module("1", nn.Linear(hidden, hidden))
        self.add_module("2", nn.Linear(hidden, outputs))
        self.act = _act(act)

    def forward(self, x):
        l0, l1, l2 = (getattr(self, k) for k in "012")
        return l2(self.act(l1(self.act(l0(x)))))


class Attention(nn.Module):
    """Multi-head self-attention with key/value size d per head (Keras
    MultiHeadAttention(num_heads=h, key_dim=d)). Params 4hd^2 + 3hd + d."""

    def __init__(self, dim, heads):
        super().__init__()
        self.dim, self.heads = dim, heads
        self.q = nn.Linear(dim, heads * dim)
        self.k = nn.Linear(dim, heads * dim)
        self.v = nn.Linear(dim, heads * dim)
        self.out = nn.Linear(heads * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        h = self.heads

        def split(t):  # (b, n, h*d) -> (b, h, n, d)
            return t.view(b, n, h, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d)
        att = torch.softmax(scores, dim=-1)
        y = torch.matmul(att, v).transpose(1, 2).reshape(b, n, h * d)
        return self.out(y)


def patchify(x, p):
    """(B, C, H, W) -> (B, (H/p)*(W/p), p*p*C), patch vector order (py, px, c)."""
    b, c, h, w = x.shape
    if h % p or w % p:
        raise ValueError(f"feature map {h}x{w} not divisible by patch size {p}")
    x = x.reshape(b, c, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # b, gy, gx, py, px, c
    return x.reshape(b, (h // p) * (w // p), p * p * c)


HEAD_KINDS = ("flatten", "per_token")


class SLViTExit(nn.Module):
    """Single-layer ViT exit (docs/models.md 3.1).

    in_shape = (C, H, W) of the tap; audio_token "shared_projection" appends the
    audio vector (length C) tiled to a P x P x C patch and projected by `proj`.
    head_kind "flatten" is the paper's head (all tokens flattened into one MLP);
    "per_token" runs the head on each image token and sums (outputs must be 1):
    `forward_map` then gives the (H/P, W/P) map of per-patch counts too."""

    def __init__(self, in_shape, patch=8, dim=32, heads=12, mlp_dim=None, ln_eps=1e-6,
                 last_residual=True, final_ln=False, mlp_out_gelu=False,
                 head_hidden=256, head_act="gelu", outputs=1, audio_token="none",
                 head_kind="flatten"):
        super().__init__()
        c, h, w = in_shape
        if h % patch or w % patch:
            raise ValueError(f"tap {h}x{w} not divisible by patch size {patch}")
        if audio_token not in ("none", "shared_projection"):
            raise ValueError(f"unknown audio_token {audio_token!r}")
        if head_kind not in HEAD_KINDS:
            raise ValueError(f"unknown head_kind {head_kind!r} (flatten|per_token)")
        if head_kind == "per_token" and outputs != 1:
            raise ValueError(f"a per_token head gives a count: outputs must be 1, not {outputs}")
        mlp_dim = mlp_dim or 2 * dim
        self.patch, self.dim = patch, dim
        self.grid = (h // patch, w // patch)
        self.head_kind = head_kind
        self.audio_token = audio_token
        self.last_residual, self.mlp_out_gelu = last_residual, mlp_out_gelu
        n = (h // patch) * (w // patch) + (1 if audio_token != "none" else 0)
        self.tokens = n
        self.proj = nn.Linear(patch * patch * c, dim)
        self.pos = nn.Parameter(torch.zeros(n, dim))
        self.ln1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = nn.ModuleList([nn.Linear(dim, mlp_dim), nn.Linear(mlp_dim, dim)])
        self.ln_out = nn.LayerNorm(dim, eps=ln_eps) if final_ln else None
        self.head = Head(dim if head_kind == "per_token" else n * dim, head_hidden,
                         outputs, head_act)
        if head_kind == "per_token":
            # the count is a sum of gh*gw token outputs (alike at the start): the
            # last layer starts at 1/(gh*gw) of its default draw, so that the
            # initial count is of the order of the flatten head's single output
            with torch.no_grad():
                last = self.head.get_submodule("2")
                last.weight.mul_(1.0 / (self.grid[0] * self.grid[1]))
                last.bias.mul_(1.0 / (self.grid[0] * self.grid[1]))

    def tokens_out(self, x, audio=None):
        """The encoder's output tokens (B, n, d), the audio token last."""
        t = self.proj(patchify(x, self.patch))
        if self.audio_token == "shared_projection":
            if audio is None:
                raise ValueError("this exit needs the audio vector")
            b, a = audio.shape
            tiled = audio.unsqueeze(1).expand(b, self.patch * self.patch, a)
            t = torch.cat([t, self.proj(tiled.reshape(b, -1)).unsqueeze(1)], dim=1)
        t = t + self.pos
        x2 = t + self.attn(self.ln1(t))
        y = self.mlp[1](F.gelu(self.mlp[0](self.ln2(x2))))
        if self.mlp_out_gelu:
            y = F.gelu(y)
        out = x2 + y if self.last_residual else y
        if self.ln_out is not None:
            out = self.ln_out(out)
        return out

    def forward_map(self, x, audio=None):
        """(count (B, 1), map (B, H/P, W/P)) of a per_token exit."""
        if self.head_kind != "per_token":
            raise ValueError("only a per_token exit gives a map")
        gh, gw = self.grid
        m = self.head(self.tokens_out(x, audio)[:, :gh * gw])  # (B, n, 1)
        m = m.reshape(-1, gh, gw)
        return m.sum(dim=(1, 2)).unsqueeze(1), m

    def forward(self, x, audio=None):
        if self.head_kind == "per_token":
            return self.forward_map(x, audio)[0]
        return self.head(self.tokens_out(x, audio).flatten(1))


class CNNExit(nn.Module):
    """CNN baseline exit (docs/models.md 3.2): conv 3x3 (filters, bias) [-> FiLM] -> ReLU
    -> max pool (pool x pool, stride pool, floor) -> flatten (c, y, x) -> head.
    film=True: gamma, beta = film(audio) split as rows [0,F) and [F,2F)."""

    def __init__(self, in_shape, filters=16, conv_padding=1, pool=4, film=False,
                 audio_dim=512, head_hidden=256, head_act="gelu", outputs=1):
        super().__init__()
        c, h, w = in_shape
        self.filters, self.conv_padding, self.pool = filters, conv_padding, pool
        self.conv = nn.Conv2d(c, filters, 3, padding=conv_padding)
        self.film = nn.Linear(audio_dim, 2 * filters) if film else None
        ho, wo = h + 2 * conv_padding - 2, w + 2 * conv_padding - 2
        flat = filters * (ho // pool) * (wo // pool)
        if flat <= 0:
            raise ValueError(f"CNN exit: tap {h}x{w} too small for pool {pool}")
        self.head = Head(flat, head_hidden, outputs, head_act)

    def forward(self, x, audio=None):
        y = self.conv(x)
        if self.film is not None:
            if audio is None:
                raise ValueError("this exit needs the audio vector")
            gb = self.film(audio)
            f = self.filters
            y = y * gb[:, :f, None, None] + gb[:, f:, None, None]
        y = F.max_pool2d(F.relu(y), self.pool, self.pool)
        return self.head(y.flatten(1))


def _conv_out(size, k, s=1, p=0):
    return (size + 2 * p - k) // s + 1


def _resnet152_taps(cfg):
    h, w = cfg["input_height"], cfg["input_width"]
    h, w = _conv_out(h, 7, 2, 3), _conv_out(w, 7, 2, 3)
    h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    taps = [("stem", None, (64, h, w))]
    for s, (n, width) in enumerate(zip((3, 8, 36, 3), (64, 128, 256, 512))):
        for i in range(n):
            p = f"layer{s + 1}.{i}"
            stride = 2 if s > 0 and i == 0 else 1
            # the stride sits on conv1 (Keras/Caffe v1) or on conv2 (torchvision)
            h2, w2 = _conv_out(h, 3, stride, 1), _conv_out(w, 3, stride, 1)
            c1 = (h2, w2) if cfg["stride_on_1x1"] else (h, w)
            taps.append((f"{p}.conv1", None, (width, *c1)))
            taps.append((f"{p}.conv2", None, (width, h2, w2)))
            h, w = h2, w2
            taps.append((p, f"layer{s + 1}" if i == n - 1 else None, (4 * width, h, w)))
    return taps


def _densenet201_taps(cfg):
    h, w = cfg["input_height"], cfg["input_width"]
    h, w = _conv_out(h, 7, 2, 3), _conv_out(w, 7, 2, 3)
    h, w = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    c = 64
    taps = [("features.pool0", None, (c, h, w))]
    blocks = (6, 12, 48, 32)
    for k, n in enumerate(blocks, 1):
        for j in range(1, n + 1):
            c += 32
            taps.append((f"features.denseblock{k}.denselayer{j}",
                         f"features.denseblock{k}" if j == n else None, (c, h, w)))
        if k < len(blocks):
            c //= 2
            taps.append((f"features.transition{k}.conv", None, (c, h, w)))
            h, w = h // 2, w // 2
            taps.append((f"features.transition{k}", None, (c, h, w)))
    taps.append(("features.norm5", None, (c, h, w)))
    return taps


def _inceptionv3_taps(cfg):
    h, w = cfg["input_height"], cfg["input_width"]
    taps = []
    for name, c, k, s, p in (("Conv2d_1a_3x3", 32, 3, 2, 0), ("Conv2d_2a_3x3", 32, 3, 1, 0),
                             ("Conv2d_2b_3x3", 64, 3, 1, 1), ("maxpool1", 64, 3, 2, 0),
                             ("Conv2d_3b_1x1", 80, 1, 1, 0), ("Conv2d_4a_3x3", 192, 3, 1, 0),
                             ("maxpool2", 192, 3, 2, 0)):
        h, w = _conv_out(h, k, s, p), _conv_out(w, k, s, p)
        taps.append((name, None, (c, h, w)))
    for name, c, reduce in (("Mixed_5b", 256, False), ("Mixed_5c", 288, False),
                            ("Mixed_5d", 288, False), ("Mixed_6a", 768, True),
                            ("Mixed_6b", 768, False), ("Mixed_6c", 768, False),
                            ("Mixed_6d", 768, False), ("Mixed_6e", 768, False),
                            ("Mixed_7a", 1280, True), ("Mixed_7b", 2048, False),
                            ("Mixed_7c", 2048, False)):
        if reduce:
            h, w = _conv_out(h, 3, 2), _conv_out(w, 3, 2)
        taps.append((name, None, (c, h, w)))
    return taps


CLASSIFIER_TAPS = {"resnet152": _resnet152_taps, "densenet201": _densenet201_taps,
                   "inceptionv3": _inceptionv3_taps}


def classifier_taps(cfg):
    """Every tap of a classification backbone in forward order, as a list of
    (name, alias or None, (C, H, W))."""
    return CLASSIFIER_TAPS[cfg["arch"]](cfg)


def tap_rank(cfg, tap):
    """Position of a tap in forward order (exits are listed by it)."""
    if cfg.get("arch", "audiocsrnet") == "audiocsrnet":
        return -1 if tap == "frontend" else int(tap.split(".")[1])
    for i, (name, alias, _) in enumerate(classifier_taps(cfg)):
        if tap in (name, alias):
            return i
    raise ValueError(f"{tap!r} is not a tap of {cfg['arch']}")


def tap_shape(cfg, tap):
    """(C, H, W) of a tap for a config dict (model-format.md)."""
    if cfg.get("arch", "audiocsrnet") != "audiocsrnet":
        taps = classifier_taps(cfg)
        for name, alias, shape in taps:
            if tap in (name, alias):
                return shape
        raise ValueError(f"{tap!r} is not a tap of {cfg['arch']} (taps: "
                         + ", ".join(n for n, _, _ in taps) + ")")
    stride = 2 ** sum(1 for v in cfg["frontend"] if v == "M")
    h, w = cfg["input_height"] // stride, cfg["input_width"] // stride
    if tap == "frontend":
        return ([v for v in cfg["frontend"] if v != "M"][-1], h, w)
    if tap.startswith("backend."):
        i = int(tap.split(".", 1)[1])
        if 0 <= i < len(cfg["backend"]):
            return (cfg["backend"][i], h, w)
    raise ValueError(f"unknown tap {tap!r}")


def audio_dim(cfg):
    """Width of the audio vector; None for a backbone without one."""
    if "audio" not in cfg:
        return None
    return [v for v in cfg["audio"] if v != "M"][-1]


def build_exit(cfg, e):
    """An exit module for exit config `e` of model config `cfg`."""
    shape = tap_shape(cfg, e["tap"])
    uses_audio = e.get("audio_token") == "shared_projection" or e.get("film") is True
    if uses_audio and audio_dim(cfg) is None:
        raise ValueError(f"exit {e['name']}: needs an audio vector, which "
                         f"{cfg['arch']} does not have")
    if e["kind"] == "slvit":
        if e["audio_token"] == "shared_projection" and audio_dim(cfg) != shape[0]:
            raise ValueError(f"exit {e['name']}: audio token needs audio width "
                             f"{audio_dim(cfg)} == tap channels {shape[0]}")
        return SLViTExit(shape, patch=e["patch"], dim=e["dim"], heads=e["heads"],
                         mlp_dim=e["mlp_dim"], ln_eps=e["ln_eps"],
                         last_residual=e["last_residual"], final_ln=e["final_ln"],
                         mlp_out_gelu=e["mlp_out_gelu"], head_hidden=e["head_hidden"],
                         head_act=e["head_act"], outputs=e["outputs"],
                         audio_token=e["audio_token"],
                         head_kind=e.get("head_kind", "flatten"))
    if e["kind"] == "cnn":
        return CNNExit(shape, filters=e["filters"], conv_padding=e["conv_padding"],
                       pool=e["pool"], film=e["film"], audio_dim=audio_dim(cfg) or 0,
                       head_hidden=e["head_hidden"], head_act=e["head_act"],
                       outputs=e["outputs"])
    raise ValueError(f"unknown exit kind {e['kind']!r}")


class ExitSet(nn.ModuleDict):
    """All exits of a model config; state_dict keys `<name>.<param>` form the exit
    checkpoint format."""

    def __init__(self, cfg):
        super().__init__({e["name"]: build_exit(cfg, e) for e in cfg["exits"]})


def count_params(module):
    return sum(p.numel() for p in module.parameters())
