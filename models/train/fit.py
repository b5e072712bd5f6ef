"""Classifier-wise exit training on cached taps (the paper's section 4.3 schedule
by default): each exit alone, on its own loss, with the backbone frozen.

He initialisation; Adam; the learning rate times `lr_factor` when the
validation loss has not improved for `lr_patience` epochs; training stops after
`early_stop` epochs without improvement and keeps the best epoch's weights.
"""
import copy
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def he_init(module):
    """He (Kaiming normal, fan-in) weights and zero biases for every conv and
    linear layer of an exit; LayerNorms and positions keep their defaults."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def fold_output_scale(state_dict, scale):
    """An exit set's state_dict with its outputs multiplied by `scale`, folded
    into each head's last layer (exits that learn count / scale give counts)."""
    sd = {k: v.detach().clone() for k, v in state_dict.items()}
    for k in sd:
        if k.endswith(".head.2.weight") or k.endswith(".head.2.bias"):
            sd[k] = sd[k] * scale
    return sd


class Progress:
    """A progress bar on a terminal (stderr), nothing otherwise."""

    def __init__(self, label, total):
        self.label, self.total, self.tty = label, total, sys.stderr.isatty()

    def update(self, done):
        if self.tty:
            n = int(30 * done / max(1, self.total))
            sys.stderr.write(f"\r  {self.label} [{'#' * n}{'.' * (30 - n)}] "
                             f"{done}/{self.total}")
            sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\r" + " " * (len(self.label) + 50) + "\r")


class TapSet:
    """Cached network-side data of a split: the taps the exits read (float16),
    the audio vectors, the backbone's own output and the targets."""

    def __init__(self, taps, audio, final, y):
        self.taps, self.audio, self.final, self.y = taps, audio, final, y

    def __len__(self):
        return len(self.y)

    def save(self, path):
        torch.save({"taps": self.taps, "audio": self.audio, "final": self.final,
                    "y": self.y}, path)

    @classmethod
    def load(cls, path):
        d = torch.load(path, weights_only=True)
        return cls(d["taps"], d["audio"], d["final"], d["y"])

    def subset(self, idx):
        return TapSet({k: v[idx] for k, v in self.taps.items()},
                      None if self.audio is None else self.audio[idx],
                      self.final[idx], self.y[idx])

    @staticmethod
    def cat(a, b):
        return TapSet({k: torch.cat([a.taps[k], b.taps[k]]) for k in a.taps},
                      None if a.audio is None else torch.cat([a.audio, b.audio]),
                      torch.cat([a.final, b.final]), torch.cat([a.y, b.y]))


def compute_taps(backbone, samples, load, taps, label, batch=16):
    """Runs the frozen backbone once over `samples` (load(sample) -> (x, audio or
    None, target)) and keeps the taps. Progress per batch on a terminal."""
    out = {t: [] for t in taps}
    auds, finals, ys = [], [], []
    bar = Progress(f"taps {label}", len(samples))
    for i in range(0, len(samples), batch):
        rows = [load(s) for s in samples[i:i + batch]]
        x = torch.from_numpy(np.stack([r[0] for r in rows]))
        a = None if rows[0][1] is None else torch.from_numpy(np.stack([r[1] for r in rows]))
        t, vec, final = backbone.run(x, a, taps)
        for k in taps:
            out[k].append(t[k].half())
        if vec is not None:
            auds.append(vec.float())
        finals.append(final.float())
        ys += [r[2] for r in rows]
        bar.update(min(len(samples), i + batch))
    bar.close()
    y = torch.tensor(ys, dtype=torch.int64 if isinstance(ys[0], int) else torch.float32)
    return TapSet({k: torch.cat(v) for k, v in out.items()},
                  torch.cat(auds) if auds else None, torch.cat(finals), y)


def exit_forward(module, e, data, idx):
    x = data.taps[e["tap"]][idx].float()
    return module(x, None if data.audio is None else data.audio[idx])


def predict(module, e, data, batch=256):
    module.eval()
    with torch.no_grad():
        return torch.cat([exit_forward(module, e, data, torch.arange(i, min(len(data), i + batch)))
                          for i in range(0, len(data), batch)])


def loss_and_metric(out, y, task, scale):
    """(loss, metric): cross entropy and accuracy, or L1 on count / scale and MAE."""
    if task == "classify":
        return F.cross_entropy(out, y), float((out.argmax(1) == y).float().mean())
    pred = out[:, 0]
    return F.l1_loss(pred, y / scale), float((pred * scale - y).abs().mean())


def train_exit(module, e, train, val, task, o, seed, log, scale=1.0, copycat=None):
    """Trains one exit on `train` (TapSet), selecting on `val`. With `copycat`
    (a TapSet labelled by the backbone), each epoch adds copycat_ratio x
    len(train) of its samples, drawn anew. Returns a summary dict."""
    torch.manual_seed(seed)
    he_init(module)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=o.lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=o.lr_factor,
                                                       patience=o.lr_patience)
    best, best_state, best_epoch, bad = math.inf, None, 0, 0
    for ep in range(1, o.epochs + 1):
        t0 = time.time()
        data = train
        if copycat is not None and o.copycat_ratio > 0:
            n = int(round(o.copycat_ratio * len(train)))
            pick = torch.randint(len(copycat), (n,), generator=gen)
            data = TapSet.cat(train, copycat.subset(pick))
        module.train()
        perm = torch.randperm(len(data), generator=gen)
        steps = list(range(0, len(data), o.batch))
        bar = Progress(f"{e['name']} epoch {ep}", len(steps))
        total = 0.0
        for k, i in enumerate(steps):
            idx = perm[i:i + o.batch]
            loss, _ = loss_and_metric(exit_forward(module, e, data, idx), data.y[idx], task,
                                      scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            bar.update(k + 1)
        bar.close()
        vloss, metric = loss_and_metric(predict(module, e, val), val.y, task, scale)
        vloss = float(vloss)
        sched.step(vloss)
        what = "accuracy" if task == "classify" else "MAE"
        shown = f"{100 * metric:.2f} %" if task == "classify" else f"{metric:.3f}"
        log(f"  {e['name']} ({e['kind']} at {e['tap']}) epoch {ep}/{o.epochs}: train loss "
            f"{total / len(data):.4f}, val loss {vloss:.4f}, val {what} {shown}, "
            f"lr {opt.param_groups[0]['lr']:.2e}, {time.time() - t0:.1f} s")
        if vloss < best:
            best, best_state, best_epoch, bad = vloss, copy.deepcopy(module.state_dict()), ep, 0
        else:
            bad += 1
            if bad >= o.early_stop:
                log(f"  {e['name']}: no improvement for {bad} epochs, stopped; "
                    f"keeping epoch {best_epoch}")
                break
    module.load_state_dict(best_state)
    _, metric = loss_and_metric(predict(module, e, val), val.y, task, scale)
    return {"best_epoch": best_epoch, "val_loss": best, "metric": metric}
