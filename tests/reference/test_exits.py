#!/usr/bin/python3
"""Checks the exit reference modules (models/convert/exits_ref.py) against a second,
loop-by-loop numpy transcription of docs/models.md 3.1/3.2, for every switch.

  /usr/bin/python3 tests/reference/test_exits.py      (exit status 0 = all passed)
"""
import itertools
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import close  # noqa: E402

import exits_ref  # noqa: E402


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _ln(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _head(t, x, act):
    f = _gelu if act == "gelu" else (lambda v: np.maximum(v, 0))
    x = f(t["head.0.weight"] @ x + t["head.0.bias"])
    x = f(t["head.1.weight"] @ x + t["head.1.bias"])
    return t["head.2.weight"] @ x + t["head.2.bias"]


def slvit_np(t, x, a, p, heads, eps, last_residual, final_ln, mlp_out_gelu, act,
             audio_token, head_kind="flatten"):
    """The exit's values; with head_kind "per_token" (count, (H/p, W/p) map)."""
    c, h, w = x.shape
    toks = []
    for gy in range(h // p):
        for gx in range(w // p):
            v = np.zeros(p * p * c)
            for py in range(p):
                for px in range(p):
                    for ch in range(c):
                        v[(py * p + px) * c + ch] = x[ch, gy * p + py, gx * p + px]
            toks.append(v)
    if audio_token:
        v = np.zeros(p * p * c)
        for k in range(p * p):
            v[k * c:(k + 1) * c] = a
        toks.append(v)
    z = np.stack(toks) @ t["proj.weight"].T + t["proj.bias"] + t["pos"]
    n, d = z.shape
    y = _ln(z, t["ln1.weight"], t["ln1.bias"], eps)
    heads_out = []
    for j in range(heads):
        rows = slice(j * d, (j + 1) * d)
        q = y @ t["attn.q.weight"][rows].T + t["attn.q.bias"][rows]
        k = y @ t["attn.k.weight"][rows].T + t["attn.k.bias"][rows]
        v = y @ t["attn.v.weight"][rows].T + t["attn.v.bias"][rows]
        s = q @ k.T / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        heads_out.append(s @ v)
    att = np.concatenate(heads_out, -1) @ t["attn.out.weight"].T + t["attn.out.bias"]
    x2 = z + att
    m = _gelu(_ln(x2, t["ln2.weight"], t["ln2.bias"], eps) @ t["mlp.0.weight"].T
              + t["mlp.0.bias"])
    m = m @ t["mlp.1.weight"].T + t["mlp.1.bias"]
    if mlp_out_gelu:
        m = _gelu(m)
    out = x2 + m if last_residual else m
    if final_ln:
        out = _ln(out, t["ln_out.weight"], t["ln_out.bias"], eps)
    if head_kind == "per_token":
        # the head on each image token, one patch count each; the audio token
        # (last) only takes part in the attention
        m = np.zeros((h // p, w // p))
        for gy in range(h // p):
            for gx in range(w // p):
                m[gy, gx] = _head(t, out[gy * (w // p) + gx], act)[0]
        return np.array([m.sum()]), m
    flat = np.array([out[i, k] for i in range(n) for k in range(d)])  # token-major
    return _head(t, flat, act)


def cnn_np(t, x, a, pad, pool, film, act):
    c, h, w = x.shape
    wt, b = t["conv.weight"], t["conv.bias"]
    f = wt.shape[0]
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho, wo = h + 2 * pad - 2, w + 2 * pad - 2
    y = np.zeros((f, ho, wo))
    for o, i, j in itertools.product(range(f), range(ho), range(wo)):
        y[o, i, j] = (wt[o] * xp[:, i:i + 3, j:j + 3]).sum() + b[o]
    if film:
        gb = t["film.weight"] @ a + t["film.bias"]
        y = y * gb[:f, None, None] + gb[f:, None, None]
    y = np.maximum(y, 0)
    hp, wp = ho // pool, wo // pool
    m = np.zeros((f, hp, wp))
    for o, i, j in itertools.product(range(f), range(hp), range(wp)):
        m[o, i, j] = y[o, i * pool:(i + 1) * pool, j * pool:(j + 1) * pool].max()
    flat = np.array([m[o, i, j] for o in range(f) for i in range(hp) for j in range(wp)])
    return _head(t, flat, act)


def _randomise(m, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.4)
    return {k: v.numpy() for k, v in m.state_dict().items()}


def test_slvit_every_switch(tmp):
    shape = (6, 8, 12)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape)
    a = rng.standard_normal(6)
    cases = 0
    for last_residual, final_ln, mlp_out_gelu, act, tok in itertools.product(
            (True, False), (False, True), (False, True), ("gelu", "relu"),
            ("none", "shared_projection")):
        kw = dict(patch=4, dim=5, heads=3, mlp_dim=7, ln_eps=1e-3,
                  last_residual=last_residual, final_ln=final_ln, mlp_out_gelu=mlp_out_gelu,
                  head_hidden=9, head_act=act, outputs=2, audio_token=tok)
        m = exits_ref.SLViTExit(shape, **kw).double().eval()
        t = _randomise(m, cases)
        with torch.no_grad():
            got = m(torch.from_numpy(x)[None], torch.from_numpy(a)[None])[0]
        want = slvit_np(t, x, a, 4, 3, 1e-3, last_residual, final_ln, mlp_out_gelu, act,
                        tok != "none")
        close(got, want, rtol=1e-10, what=f"slvit {kw}")
        cases += 1
    assert cases == 32


def test_slvit_per_token_every_switch(tmp):
    """The per_token head against the transcription: its map, and its count is
    the map's sum; the head's input is one token (d), not the flattened n*d."""
    shape = (6, 8, 12)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    a = rng.standard_normal(6)
    cases = 0
    for (last_residual, final_ln, mlp_out_gelu, act, tok), patch in itertools.product(
            itertools.product((True, False), (False, True), (False, True), ("gelu", "relu"),
                              ("none", "shared_projection")), (2, 4)):
        kw = dict(patch=patch, dim=5, heads=3, mlp_dim=7, ln_eps=1e-3,
                  last_residual=last_residual, final_ln=final_ln, mlp_out_gelu=mlp_out_gelu,
                  head_hidden=9, head_act=act, outputs=1, audio_token=tok,
                  head_kind="per_token")
        m = exits_ref.SLViTExit(shape, **kw).double().eval()
        assert m.head.get_submodule("0").in_features == 5
        t = _randomise(m, 100 + cases)
        with torch.no_grad():
            count = m(torch.from_numpy(x)[None], torch.from_numpy(a)[None])[0]
            count2, got_map = m.forward_map(torch.from_numpy(x)[None], torch.from_numpy(a)[None])
        want, want_map = slvit_np(t, x, a, patch, 3, 1e-3, last_residual, final_ln,
                                  mlp_out_gelu, act, tok != "none", head_kind="per_token")
        assert got_map.shape == (1, 8 // patch, 12 // patch)
        close(got_map[0], want_map, rtol=1e-10, what=f"per_token map {kw}")
        close(count, want, rtol=1e-10, what=f"per_token count {kw}")
        close(count2[0], got_map.sum().reshape(1), rtol=1e-12, what="count = map sum")
        cases += 1
    assert cases == 64
    # a per_token head gives one count; the paper's head has no map
    for bad in (dict(outputs=2, head_kind="per_token"), dict(head_kind="tokens")):
        try:
            exits_ref.SLViTExit(shape, patch=2, dim=5, heads=3, **bad)
        except ValueError:
            pass
        else:
            raise AssertionError(f"SLViTExit accepted {bad}")
    flat = exits_ref.SLViTExit(shape, patch=2, dim=5, heads=3)
    try:
        flat.forward_map(torch.zeros(1, *shape))
    except ValueError:
        pass
    else:
        raise AssertionError("a flatten exit gave a map")


def test_cnn_every_switch(tmp):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(5)
    n = 0
    for shape, pad, pool, film, act in itertools.product(
            ((4, 10, 14), (3, 8, 16)), (0, 1), (2, 3, 4), (False, True), ("gelu", "relu")):
        x = rng.standard_normal(shape)
        m = exits_ref.CNNExit(shape, filters=3, conv_padding=pad, pool=pool, film=film,
                              audio_dim=5, head_hidden=6, head_act=act, outputs=1)
        m = m.double().eval()
        t = _randomise(m, n)
        with torch.no_grad():
            got = m(torch.from_numpy(x)[None], torch.from_numpy(a)[None])[0]
        close(got, cnn_np(t, x, a, pad, pool, film, act), rtol=1e-10,
              what=f"cnn {shape} pad {pad} pool {pool} film {film} {act}")
        n += 1


if __name__ == "__main__":
    sys.exit(testlib.run([test_slvit_every_switch, test_slvit_per_token_every_switch,
                          test_cnn_every_switch]))
