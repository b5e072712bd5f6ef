"""Writes a pre-norm attention block case for tests/graph/test-graph.c.

Expected output, from PyTorch: y = x + MHA(LN(x)) where each of the h heads has
key/value width d (docs/models.md 3.1), then z = relu(linear(y)) as a second stage.
Usage: gen_attention_case.py OUT.safetensors
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "models", "convert"))
import eesafetensors  # noqa: E402

torch.manual_seed(7)
n, d, h, e = 13, 16, 3, 10
t = {
    "x": torch.randn(n, d),
    "ln.weight": torch.randn(d) * 0.2 + 1, "ln.bias": torch.randn(d) * 0.1,
    "q.weight": torch.randn(h * d, d) / d ** 0.5, "q.bias": torch.randn(h * d) * 0.1,
    "k.weight": torch.randn(h * d, d) / d ** 0.5, "k.bias": torch.randn(h * d) * 0.1,
    "v.weight": torch.randn(h * d, d) / d ** 0.5, "v.bias": torch.randn(h * d) * 0.1,
    "o.weight": torch.randn(d, h * d) / (h * d) ** 0.5, "o.bias": torch.randn(d) * 0.1,
    "fc.weight": torch.randn(e, d) / d ** 0.5, "fc.bias": torch.randn(e) * 0.1,
}
F = torch.nn.functional
xn = F.layer_norm(t["x"], (d,), t["ln.weight"], t["ln.bias"], eps=1e-6)
q = F.linear(xn, t["q.weight"], t["q.bias"]).view(n, h, d).transpose(0, 1)
k = F.linear(xn, t["k.weight"], t["k.bias"]).view(n, h, d).transpose(0, 1)
v = F.linear(xn, t["v.weight"], t["v.bias"]).view(n, h, d).transpose(0, 1)
att = torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, dim=-1) @ v   # (h, n, d)
y = t["x"] + F.linear(att.transpose(0, 1).reshape(n, h * d), t["o.weight"], t["o.bias"])
t["expected.y"] = y
t["expected.z"] = F.relu(F.linear(y, t["fc.weight"], t["fc.bias"]))
eesafetensors.save(sys.argv[1], {k: v.numpy() for k, v in t.items()},
                   {"n": str(n), "d": str(d), "heads": str(h), "e": str(e)})
