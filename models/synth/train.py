#!/usr/bin/env python3
"""Trains the default model: a compact AudioCSRNet (widths / 4, 256x144) with
V1, AV1 and AV2 exits, on synthetic scenes (models/synth/scenes.py), on the CPU.

    python3 models/synth/train.py --work out/train            # everything
    python3 models/synth/train.py --work out/train --smoke    # a 2-minute check
    # the exits only, on the backbone of a model file, both SL-ViT head kinds:
    python3 models/synth/train.py --work out/train \
        --backbone models/default/crowd-synth-slvit.safetensors \
        --variants slvit-flatten,slvit-per-token --out-dir out/train/models

The AudioCSRNet paper's procedure:
1. data: TRAIN scenes (seeds 0..TRAIN-1) and VAL scenes (seeds 1,000,000+),
   cached in WORK/data-*.npz (images, VGGish log-mel of the audio, density
   maps pooled to the network's 1/8 map, counts, light);
2. the backbone (front end, audio branch, six FiLM blocks, output conv) on the
   density maps (squared error per cell plus a small count term), AdamW with a
   one-cycle schedule, horizontal flips. The front end and the audio branch
   train with BatchNorm after each conv, folded into the convs at export (the
   model format has none there); the back end keeps its BatchNorm, as in the
   reference code;
   (--backbone FILE skips this step: the backbone of that model file, with
   the reference code's key names, and its taps, cached in WORK/taps-*.pt);
3. with the backbone frozen, the three exits of each variant (--variants:
   SL-ViT with the paper's flatten head or our per-token head, CNN), each on
   its own loss (classifier-wise), on the frozen taps; every variant from the
   same seed (initial draws, batch order), so variants compare on equal terms;
4. each variant becomes a model file through models/convert/audiocsrnet.py
   (--checkpoint with the reference code's key names, --exits), in f16.

Seeded end to end (numpy PCG64 scenes, torch.manual_seed); the full run takes
about 35 minutes on a 2-core machine. Not run in CI: the model files it
writes are committed (models/default/).
"""
import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
# the VGGish log-mel reference that tests/features checks the C extractor
# against (max abs error 1e-6), so training sees the features the engine makes
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
import audiocsrnet as conv  # noqa: E402
import exits_ref  # noqa: E402
import features_ref  # noqa: E402
import scenes  # noqa: E402

WIDTH_DIV = 4
COUNT_SCALE = 1.0  # the map D is people per 8x8 cell
EXIT_SCALE = 25.0  # exits learn count / 25; folded into head.2 at export
MEAN = torch.tensor(conv.DISCO_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(conv.DISCO_STD).view(1, 3, 1, 1)


# The exit variants: name -> (exit kind, SL-ViT head kind). The model file of a
# variant is crowd-synth-<name>.safetensors; "slvit" and "cnn" are the two files
# of models/default/, the others the comparison of the two SL-ViT head kinds
# (the paper's flatten head against our per-token head, which gives a map; the
# per-token exits were less accurate, docs/default-model.md, so "slvit" keeps
# the paper's head).
VARIANTS = {"slvit": ("slvit", "flatten"), "cnn": ("cnn", "flatten"),
            "slvit-flatten": ("slvit", "flatten"), "slvit-per-token": ("slvit", "per_token")}


def converter_args(kind, head="flatten"):
    """The converter options of the default model (exit kind slvit or cnn; the
    SL-ViT head kind flatten or per_token)."""
    return ["--width-div", str(WIDTH_DIV), "--input-size", f"{scenes.WIDTH}x{scenes.HEIGHT}",
            "--count-scale", str(COUNT_SCALE), "--exit-kind", kind, "--exit-head", head,
            "--patch", "2", "--dim", "32", "--heads", "4", "--head-hidden", "64",
            "--cnn-filters", "16", "--cnn-pool", "4"]


def model_config(kind, head="flatten"):
    o = vars(conv.parser().parse_args(converter_args(kind, head)))
    o["bn_affine"] = False
    return conv.make_config(o)


# ----------------------------------------------------------------- data

def _sample(seed):
    s = scenes.make_scene(seed)
    logmel = features_ref.vggish(s["audio"])[0, 0].astype(np.float32)
    return (s["image"], logmel, scenes.pool_density(s["density"]).astype(np.float32),
            s["count"], s["conditions"]["light"] == "low")


def make_data(seeds, workers):
    with Pool(workers) as pool:
        rows = pool.map(_sample, seeds, chunksize=32)
    return {"images": np.stack([r[0] for r in rows]), "logmel": np.stack([r[1] for r in rows]),
            "density": np.stack([r[2] for r in rows]),
            "count": np.array([r[3] for r in rows], np.float32),
            "low": np.array([r[4] for r in rows], bool)}


def load_data(work, name, seeds, workers):
    path = os.path.join(work, f"data-{name}-{len(seeds)}-{seeds[0]}.npz")
    if os.path.exists(path):
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    t = time.time()
    d = make_data(seeds, workers)
    np.savez(path, **d)
    print(f"  {name}: {len(seeds)} scenes in {time.time() - t:.0f} s", flush=True)
    return d


def to_input(images):
    """uint8 (B, H, W, 3) RGB -> normalised (B, 3, H, W), as the element does."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    return (x - MEAN) / STD


# ----------------------------------------------------------------- backbone

class ConvBN(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))

    def folded(self):
        """conv weight and bias with the (eval-mode) BatchNorm folded in."""
        bn = self.bn
        s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        w = self.conv.weight * s[:, None, None, None]
        b = (self.conv.bias - bn.running_mean) * s + bn.bias
        return w.detach().clone(), b.detach().clone()


def _vgg(spec, cin):
    layers = []
    for v in spec:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(ConvBN(cin, v))
            cin = v
    return nn.Sequential(*layers)


class Backbone(nn.Module):
    """AudioCSRNet as docs/models.md 2 computes it, plus BatchNorm in the front end
    and the audio branch for training (folded away by `reference_state_dict`)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.frontend = _vgg(cfg["frontend"], 3)
        self.audio = _vgg(cfg["audio"], 1)
        cf, ca = conv.tap_shape(cfg, "frontend")[0], conv.audio_dim(cfg)
        self.convs, self.bns, self.films = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c = cf
        for w in cfg["backend"]:
            self.convs.append(nn.Conv2d(c, w, 3, padding=2, dilation=2))
            self.bns.append(nn.BatchNorm2d(w, eps=cfg["bn_eps"], affine=False))
            film = nn.Linear(ca, 2 * w)
            nn.init.normal_(film.weight, 0, 0.01)
            with torch.no_grad():
                film.bias[:w] = 1.0
                film.bias[w:] = 0.0
            self.films.append(film)
            c = w
        self.output = nn.Conv2d(c, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.output.weight, 0, 0.01)

    def forward(self, x, logmel, taps=False):
        a = self.audio(logmel[:, None]).mean(dim=(2, 3))
        x = self.frontend(x)
        out = {"frontend": x, "audio": a}
        for i, (cv, bn, film) in enumerate(zip(self.convs, self.bns, self.films)):
            gb = film(a)
            w = cv.out_channels
            x = F.relu(gb[:, :w, None, None] * bn(cv(x)) + gb[:, w:, None, None])
            if i == 0:
                out["backend.0"] = x
        out["density"] = self.output(x)[:, 0]
        return out if taps else out["density"]

    def reference_state_dict(self):
        """Key names of the reference code's CSRWaveNet.CSRNet (what
        models/convert/audiocsrnet.py --checkpoint reads), BN folded."""
        sd = {}
        for prefix, seq in (("frontend", self.frontend), ("audio_vgg.features", self.audio)):
            idx = 0
            for m in seq:
                if isinstance(m, ConvBN):
                    sd[f"{prefix}.{idx}.weight"], sd[f"{prefix}.{idx}.bias"] = m.folded()
                    idx += 2
                else:
                    idx += 1
        for i, (cv, bn, film) in enumerate(zip(self.convs, self.bns, self.films)):
            sd[f"backend.{3 * i}.weight"] = cv.weight.detach().clone()
            sd[f"backend.{3 * i}.bias"] = cv.bias.detach().clone()
            sd[f"backend.{3 * i + 1}.running_mean"] = bn.running_mean.clone()
            sd[f"backend.{3 * i + 1}.running_var"] = bn.running_var.clone()
            sd[f"fully_connected.{i}.weight"] = film.weight.detach().clone()
            sd[f"fully_connected.{i}.bias"] = film.bias.detach().clone()
        sd["output_layer.weight"] = self.output.weight.detach().clone()
        sd["output_layer.bias"] = self.output.bias.detach().clone()
        return sd


def _batches(n, bs, gen):
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + bs] for i in range(0, n - bs + 1, bs)]


def _light_mae(pred, data):
    err = np.abs(pred - data["count"])
    low = data["low"]
    return f"MAE {err.mean():.2f} (normal {err[~low].mean():.2f}, low {err[low].mean():.2f})"


@torch.no_grad()
def predict_backbone(net, data, bs=64):
    net.eval()
    out = []
    for i in range(0, len(data["count"]), bs):
        d = net(to_input(data["images"][i:i + bs]), torch.from_numpy(data["logmel"][i:i + bs]))
        out.append(d.sum(dim=(1, 2)).numpy() * COUNT_SCALE)
    return np.concatenate(out)


def train_backbone(net, train, val, epochs, bs, lr, gen):
    steps = epochs * (len(train["count"]) // bs)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.15)
    dens = torch.from_numpy(train["density"])
    counts = torch.from_numpy(train["count"])
    for ep in range(epochs):
        net.train()
        t0, total = time.time(), 0.0
        for idx in _batches(len(counts), bs, gen):
            x = to_input(train["images"][idx.numpy()])
            a = torch.from_numpy(train["logmel"][idx.numpy()])
            target = dens[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5
            x[flip] = x[flip].flip(-1)
            target = torch.where(flip[:, None, None], target.flip(-1), target)
            d = net(x, a)
            loss = ((d - target) ** 2).sum(dim=(1, 2)).mean() \
                + 0.01 * (d.sum(dim=(1, 2)) * COUNT_SCALE - counts[idx]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        pred = predict_backbone(net, val)
        print(f"  backbone epoch {ep + 1}/{epochs}: loss {total / len(counts):.3f}, "
              f"val {_light_mae(pred, val)}, {time.time() - t0:.0f} s", flush=True)


# ----------------------------------------------------------------- a trained backbone

def backbone_from_model(path):
    """The backbone of a model file as a reference-code state_dict (what
    models/convert/audiocsrnet.py --checkpoint reads) and as the float32 reference
    model (tests/reference/audiocsrnet_ref.py) that computes its taps."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
    import audiocsrnet_ref  # noqa: E402

    cfg, tensors = conv.load_model(path)
    if cfg["bn_affine"] or cfg["count_scale"] != COUNT_SCALE:
        raise SystemExit(f"{path}: not a backbone of this script (bn_affine false, "
                         f"count_scale {COUNT_SCALE})")
    keys = conv.reference_keys(cfg)
    sd = {keys[n]: torch.from_numpy(np.ascontiguousarray(v)) for n, v in tensors.items()
          if not n.startswith("exits.")}
    return sd, audiocsrnet_ref.AudioCSRNetRef(cfg, tensors, dtype=torch.float32)


@torch.no_grad()
def compute_taps_ref(ref, data, bs=32):
    """compute_taps through the reference model of a model file's backbone."""
    c = ref.cfg
    fr, b0, au, dens = [], [], [], []
    for i in range(0, len(data["count"]), bs):
        a = ref._vgg(torch.from_numpy(data["logmel"][i:i + bs])[:, None], c["audio"],
                     "audio").mean(dim=(2, 3))
        x = ref._vgg(to_input(data["images"][i:i + bs]), c["frontend"], "frontend")
        fr.append(x.half())
        x = ref._backend_block(x, 0, a)
        b0.append(x.half())
        au.append(a)
        for j in range(1, len(c["backend"])):
            x = ref._backend_block(x, j, a)
        d = F.conv2d(x, ref.t["output.weight"], ref.t["output.bias"])[:, 0]
        dens.append(d.sum(dim=(1, 2)) * c["count_scale"])
    return {"frontend": torch.cat(fr), "backend.0": torch.cat(b0), "audio": torch.cat(au),
            "final": torch.cat(dens).numpy()}


def cached_taps(work, name, ref, data, key):
    """compute_taps_ref cached in the work folder (the taps of 6000 scenes take
    minutes; every variant trains on the same ones)."""
    path = os.path.join(work, f"taps-{name}-{len(data['count'])}-{key}.pt")
    if os.path.exists(path):
        return torch.load(path)
    t = time.time()
    taps = compute_taps_ref(ref, data)
    torch.save(taps, path + ".tmp")
    os.replace(path + ".tmp", path)  # whole, for runs of other variants at once
    print(f"  {name} taps in {time.time() - t:.0f} s", flush=True)
    return taps


# ----------------------------------------------------------------- exits

@torch.no_grad()
def compute_taps(net, data, bs=64):
    """Frozen backbone: the two taps (float16, to save memory) and the audio vector."""
    net.eval()
    fr, b0, au = [], [], []
    for i in range(0, len(data["count"]), bs):
        o = net(to_input(data["images"][i:i + bs]), torch.from_numpy(data["logmel"][i:i + bs]),
                taps=True)
        fr.append(o["frontend"].half())
        b0.append(o["backend.0"].half())
        au.append(o["audio"])
    return {"frontend": torch.cat(fr), "backend.0": torch.cat(b0), "audio": torch.cat(au)}


def _exit_forward(m, e, taps, idx):
    x = taps[e["tap"]][idx].float()
    return m(x, taps["audio"][idx])[:, 0] * EXIT_SCALE


@torch.no_grad()
def predict_exits(exits, cfg, taps, bs=256):
    out = {}
    for e in cfg["exits"]:
        m = exits[e["name"]]
        m.eval()
        n = len(taps["audio"])
        out[e["name"]] = np.concatenate([
            _exit_forward(m, e, taps, torch.arange(i, min(n, i + bs))).numpy()
            for i in range(0, n, bs)])
    return out


def train_exits(cfg, train_taps, val_taps, train, val, epochs, bs, lr, gen):
    exits = exits_ref.ExitSet(cfg)
    counts = torch.from_numpy(train["count"])
    params = list(exits.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    steps = epochs * (len(counts) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps,
                                                pct_start=0.1)
    for ep in range(epochs):
        exits.train()
        t0 = time.time()
        for idx in _batches(len(counts), bs, gen):
            loss = 0.0
            for e in cfg["exits"]:  # independent losses: one classifier per exit
                pred = _exit_forward(exits[e["name"]], e, train_taps, idx)
                loss = loss + F.smooth_l1_loss(pred / EXIT_SCALE, counts[idx] / EXIT_SCALE)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        if ep == epochs - 1 or (ep + 1) % 5 == 0:
            p = predict_exits(exits, cfg, val_taps)
            print(f"  exits epoch {ep + 1}/{epochs} ({time.time() - t0:.0f} s): "
                  + "; ".join(f"{n} {_light_mae(v, val)}" for n, v in p.items()), flush=True)
        else:
            print(f"  exits epoch {ep + 1}/{epochs} ({time.time() - t0:.0f} s)", flush=True)
    return exits


def exit_state_dict(exits):
    """ExitSet keys (`<exit>.<param>`, what --exits reads), the count scale
    folded into each head's last layer."""
    sd = {k: v.detach().clone() for k, v in exits.state_dict().items()}
    for k in sd:
        if k.endswith(".head.2.weight") or k.endswith(".head.2.bias"):
            sd[k] = sd[k] * EXIT_SCALE
    return sd


# ----------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", required=True, help="folder for data caches and checkpoints")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--train", type=int, default=6000)
    ap.add_argument("--val", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--exit-epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--audio-dropout", type=float, default=0.15,
                    help="share of training scenes whose audio is replaced by silence")
    ap.add_argument("--seed", type=int, default=3035)
    ap.add_argument("--backbone", help="take the backbone from this model file (step 2 "
                    "skipped; e.g. models/default/crowd-synth-slvit.safetensors) and "
                    "train only the exits, on its taps")
    ap.add_argument("--variants", default="slvit,cnn",
                    help="comma-separated exit variants to train: "
                    + ", ".join(f"{k} ({v[0]}, {v[1]} head)" if v[0] == "slvit" else
                                f"{k} ({v[0]})" for k, v in VARIANTS.items())
                    + "; each writes OUT_DIR/crowd-synth-<variant>.safetensors")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script")
    args = ap.parse_args(argv)
    if args.smoke:
        args.train, args.val, args.epochs, args.exit_epochs = 128, 32, 1, 1
        args.out_dir = os.path.join(args.work, "smoke-models")
    variants = args.variants.split(",")
    for v in variants:
        if v not in VARIANTS:
            ap.error(f"unknown variant {v!r} (choose from {', '.join(VARIANTS)})")
    os.makedirs(args.work, exist_ok=True)
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    t_start = time.time()

    print("1. data", flush=True)
    train = load_data(args.work, "train", list(range(args.train)), args.threads)
    val = load_data(args.work, "val", list(range(scenes.VAL_SEED0, scenes.VAL_SEED0 + args.val)),
                    args.threads)
    print(f"  train {len(train['count'])} (mean count {train['count'].mean():.1f}), "
          f"val {len(val['count'])}", flush=True)
    # microphone off: a fixed share of the training scenes gets a silent window
    # (16000 zero samples), for the backbone and the exits alike, so that the
    # audio-conditioned parts fall back on the picture instead of failing
    muted = np.random.default_rng(args.seed).random(len(train["count"])) < args.audio_dropout
    train["logmel"][muted] = features_ref.vggish(np.zeros(scenes.RATE, np.float32))[0, 0]
    print(f"  {muted.sum()} training scenes with the audio removed", flush=True)

    if args.backbone:
        print(f"2. backbone: taken from {args.backbone}", flush=True)
        sd, ref = backbone_from_model(args.backbone)
        h = hashlib.sha1()
        for k in sorted(sd):
            h.update(k.encode() + sd[k].numpy().tobytes())
        ckpt = os.path.join(args.work, f"backbone-{h.hexdigest()[:12]}.pth")
        torch.save(sd, ckpt + f".{os.getpid()}")
        os.replace(ckpt + f".{os.getpid()}", ckpt)
        # the taps depend on the backbone, the scenes and the muted draw
        key = f"{h.hexdigest()[:12]}-{args.seed}-{args.audio_dropout}"
        print("3. exits on the frozen backbone", flush=True)
        train_taps = cached_taps(args.work, "train", ref, train, key)
        val_taps = cached_taps(args.work, "val", ref, val, key)
        backbone_val = val_taps["final"]
    else:
        print("2. backbone", flush=True)
        cfg = model_config("slvit")
        net = Backbone(cfg)
        train_backbone(net, train, val, args.epochs, args.batch, args.lr, gen)
        ckpt = os.path.join(args.work, "backbone.pth")
        torch.save(net.reference_state_dict(), ckpt)
        backbone_val = predict_backbone(net, val)
        print("3. exits on the frozen backbone", flush=True)
        train_taps, val_taps = compute_taps(net, train), compute_taps(net, val)
    summary = {"train_scenes": args.train, "val_scenes": args.val,
               "epochs": 0 if args.backbone else args.epochs, "backbone": args.backbone,
               "audio_dropout": args.audio_dropout,
               "exit_epochs": args.exit_epochs, "seed": args.seed,
               "val_final_mae": float(np.abs(backbone_val - val["count"]).mean())}
    for variant in variants:
        kind, head = VARIANTS[variant]
        print(f"  {variant} exits ({kind}" + (f", {head} head)" if kind == "slvit" else ")"),
              flush=True)
        kcfg = model_config(kind, head)
        # every variant starts from the same seed: the same initialisation draws
        # and batch order whichever variants run, and in whatever order
        torch.manual_seed(args.seed)
        t0 = time.time()
        exits = train_exits(kcfg, train_taps, val_taps, train, val, args.exit_epochs,
                            32, 1e-3, torch.Generator().manual_seed(args.seed))
        summary[f"{variant}_exit_minutes"] = (time.time() - t0) / 60
        ep = os.path.join(args.work, f"exits-{variant}.pth")
        torch.save(exit_state_dict(exits), ep)
        summary[f"val_{variant}_mae"] = {
            n: float(np.abs(v - val["count"]).mean())
            for n, v in predict_exits(exits, kcfg, val_taps).items()}

        out = os.path.join(args.out_dir, f"crowd-synth-{variant}.safetensors")
        # the file's source text says what the model was trained on
        source = (f"trained by models/synth/train.py (seed {args.seed}) on "
                  f"{args.train} synthetic scenes of models/synth/scenes.py "
                  f"(256x144, 0-{scenes.MAX_PEOPLE} people, 40% low light, "
                  f"occlusions; crowd babble audio, {args.audio_dropout:.0%} muted); "
                  f"widths / {WIDTH_DIV}"
                  + ("; SL-ViT exits with a per-token head (a map of counts)"
                     if kind == "slvit" and head == "per_token" else ""))
        rc = conv.main(["--checkpoint", ckpt, "--exits", ep, "--dtype", "f16", "--out", out,
                        "--source", source] + converter_args(kind, head))
        if rc:
            return rc
    summary["minutes"] = (time.time() - t_start) / 60
    # runs of other variants in the same work folder keep their own summary
    name = ("summary.json" if variants == ["slvit", "cnn"]
            else f"summary-{'-'.join(variants)}.json")
    with open(os.path.join(args.work, name), "w") as f:
        json.dump(summary, f, indent=1)
    print(f"done in {summary['minutes']:.1f} min: {json.dumps(summary)}", flush=True)
    return 0



if __name__ == "__main__":
    sys.exit(main())
