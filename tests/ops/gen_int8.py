"""Test vectors for the CPU backend's int8 convolutions and calibration.

Usage: gen_int8.py OUT.safetensors

Case "conv": chains of int8 convolutions and pooling with the expected
outputs of the same quantised arithmetic, computed here with PyTorch on
integer values (exact in float64) and numpy float32 for the scales, as
nn/ee-backend-cpu-dnnl.c describes it:
  s_x = L / in_max (L = 255 for u8, in_min >= 0; 127 for s8),
  x_q = clip (rint (x s_x)), s_w[o] = 127 / max |w[o]|, w_q = rint (w s_w[o]),
  y = (conv (x_q, w_q) + b[o] s_x s_w[o]) s_y / (s_x s_w[o]), ReLU,
  u8 output: y_q = clip (rint (y), 0, 255), value y_q / s_y (s_y = 255 /
  out_max), else value y.
Case "calib": values and the thresholds of nn/ee-backend-cpu-calib.c's
histogram by numpy: the percentile and the entropy (KL) method.
Metadata "ops" describes the graph (JSON), "calib" the thresholds.
"""
import importlib.util
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "eesafetensors", os.path.join(HERE, "..", "..", "models", "convert", "eesafetensors.py"))
eesafetensors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eesafetensors)

rng = np.random.default_rng(20261206)
f32 = np.float32
tensors = {}
ops = []


def quantise_conv(x_q, s_x, w, b, stride, pad, dil, relu, out_max):
    """One int8 convolution on an already quantised input. Returns (value,
    quantised output or None, s_y)."""
    o = w.shape[0]
    m = np.abs(w.reshape(o, -1)).max(axis=1).astype(f32)
    s_w = np.ones(o, f32)
    np.divide(f32(127), m, out=s_w, where=m > 0)
    w_q = np.rint(w * s_w[:, None, None, None]).astype(np.float64)
    acc = F.conv2d(torch.from_numpy(x_q.astype(np.float64)), torch.from_numpy(w_q),
                   stride=stride, padding=pad, dilation=dil).numpy()
    u8 = relu and out_max > 0
    s_y = f32(255) / f32(out_max) if u8 else f32(1)
    scale = (s_y / (f32(s_x) * s_w)).astype(f32)
    bias = (b * f32(s_x) * s_w).astype(f32)
    y = ((acc.astype(f32) + bias[None, :, None, None]) * scale[None, :, None, None]).astype(f32)
    if relu:
        y = np.maximum(y, 0)
    if u8:
        y_q = np.clip(np.rint(y), 0, 255)
        return y_q / s_y, y_q, s_y
    return y, None, s_y


def quantise_input(x, in_min, in_max):
    levels = 255 if in_min >= 0 else 127
    s_x = f32(levels) / f32(in_max)
    lo = 0 if in_min >= 0 else -128
    return np.clip(np.rint(x.astype(f32) * s_x), lo, levels), s_x


def conv_params(name, o, c, k):
    w = (rng.standard_normal((o, c, k, k)) * 0.3).astype(f32)
    w[0] = 0  # an all-zero output channel (scale 1)
    b = (rng.standard_normal(o) * 0.5).astype(f32)
    tensors[name + ".weight"] = w
    tensors[name + ".bias"] = b
    return w, b


# chain 1: signed input, s8, float output, stride 2
x1 = (rng.standard_normal((1, 5, 13, 11)) * 1.5).astype(f32)
tensors["x1"] = x1
w, b = conv_params("a", 7, 5, 3)
in_max = float(np.abs(x1).max() * 0.8)  # some values clip
xq, s_x = quantise_input(x1, -1.0, in_max)
a, _, _ = quantise_conv(xq, s_x, w, b, 2, 1, 1, False, 0)
tensors["expect.a"] = a.astype(f32)
ops.append({"name": "a", "input": "x1", "in": [-1.0, in_max, 0.0], "stride": 2, "pad": 1,
            "dil": 1, "relu": False, "out": 7, "k": 3})

# chain 2: non-negative input, u8 -> ReLU conv to u8 (dilated) -> max pool
# (u8) -> ReLU conv to u8 -> avg pool (u8) -> conv to float
x2 = (rng.random((1, 6, 16, 18)) * 3).astype(f32)
tensors["x2"] = x2
w, b = conv_params("b", 16, 6, 3)
in_max = 2.5
xq, s_x = quantise_input(x2, 0.0, in_max)
bv, bq, s_b = quantise_conv(xq, s_x, w, b, 1, 2, 2, True, 4.0)
tensors["expect.b"] = bv.astype(f32)
ops.append({"name": "b", "input": "x2", "in": [0.0, in_max, 4.0], "stride": 1, "pad": 2,
            "dil": 2, "relu": True, "out": 16, "k": 3})
pq = F.max_pool2d(torch.from_numpy(bq), 2).numpy()
tensors["expect.pool"] = (pq / s_b).astype(f32)
ops.append({"name": "pool", "input": "b", "kind": "maxpool", "k": 2})
w, b = conv_params("c", 20, 16, 3)
cv, cq, s_c = quantise_conv(pq, s_b, w, b, 1, 1, 1, True, 6.0)
tensors["expect.c"] = cv.astype(f32)
ops.append({"name": "c", "input": "pool", "in": [0.0, 1.0, 6.0], "stride": 1, "pad": 1,
            "dil": 1, "relu": True, "out": 20, "k": 3})
w, b = conv_params("d", 3, 20, 1)
dv, _, _ = quantise_conv(cq, s_c, w, b, 1, 0, 1, False, 0)
tensors["expect.d"] = dv.astype(f32)
ops.append({"name": "d", "input": "c", "in": [0.0, 1.0, 0.0], "stride": 1, "pad": 0,
            "dil": 1, "relu": False, "out": 3, "k": 1})


# calibration: the histogram of nn/ee-backend-cpu-calib.c and both methods
BINS = 2048


def histogram(x):
    a = np.abs(x.astype(np.float64))
    r = 2.0 ** -20
    while r <= a.max():
        r *= 2
    k = np.floor(a * (BINS / r)).astype(np.int64)
    return np.bincount(k, minlength=BINS).astype(np.float64), r


def percentile(count, r, p):
    c = np.cumsum(count)
    k = int(np.argmax(c >= p * count.sum()))
    return (k + 1) * r / BINS


def entropy(count, r, levels):
    best, best_i = math.inf, BINS
    for i in range(levels, BINS + 1):
        p = count[:i].copy()
        p[i - 1] += count[i:].sum()
        q = np.zeros(i)
        step = i / levels
        for j in range(levels):
            s = int(math.floor(j * step))
            e = i if j == levels - 1 else int(math.floor((j + 1) * step))
            seg = count[s:e]
            nz = np.count_nonzero(seg)
            if nz:
                q[s:e] = np.where(seg != 0, seg.sum() / nz, 0)
        pn, qn = p / p.sum(), q / q.sum()
        m = pn > 0
        if np.any(qn[m] == 0):
            continue
        kl = float(np.sum(pn[m] * np.log(pn[m] / qn[m])))
        if kl < best:
            best, best_i = kl, i
    return best_i * r / BINS


calib = []
for name, x in [("relu", np.maximum(rng.standard_normal(30000) * 2, 0)),
                ("signed", rng.standard_t(3, 20000) * 0.7),
                ("heavy", np.abs(rng.standard_cauchy(25000)) * 0.1)]:
    x = x.astype(f32)
    tensors["calib." + name] = x
    count, r = histogram(x)
    levels = 255 if x.min() >= 0 else 127
    calib.append({"name": name, "levels": levels,
                  "percentile": percentile(count, r, 0.9999),
                  "percentile99": percentile(count, r, 0.99),
                  "entropy": entropy(count, r, levels)})

eesafetensors.save(sys.argv[1], tensors, {"ops": json.dumps(ops), "calib": json.dumps(calib)})
