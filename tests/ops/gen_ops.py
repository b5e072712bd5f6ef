"""Test vectors for the backend ops: random inputs and PyTorch's outputs.

Usage: gen_ops.py OUT.safetensors

Writes one safetensors file. Metadata "cases" is a JSON list; each case names
its input tensors, a list of ops (kind and parameters as in EeOpDesc, inputs by
value name, optionally as strided views) and the values to check. Tensors are
stored as "<case>.<name>": inputs, parameters and expected outputs. References
are computed in float64 from the float32 inputs, so the C side is measured
against the exact result rather than against another float32 rounding.
"""
import importlib.util
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "eesafetensors", os.path.join(HERE, "..", "..", "models", "convert", "eesafetensors.py"))
eesafetensors = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eesafetensors)

torch.manual_seed(20240611)

cases = []
tensors = {}


class Case:
    """Collects one case: inputs, ops and the expected values to check."""

    def __init__(self, name):
        self.name = name
        self.inputs = []
        self.ops = []
        self.check = []
        self.backend = []
        self.values = {}

    def tensor(self, name, t):
        tensors[f"{self.name}.{name}"] = t.detach().to(torch.float32).numpy()

    def input(self, name, *shape, low=None, high=None):
        if low is None:
            t = torch.randn(*shape)
        else:
            t = torch.rand(*shape) * (high - low) + low
        self.tensor(name, t)
        self.inputs.append(name)
        self.values[name] = t.double()
        return self.values[name]

    def param(self, name, t):
        t = t.to(torch.float32)
        self.tensor(name, t)
        return t.double()

    def op(self, kind, ins, out, expected, check=True, backend=False, **params):
        spec = {"kind": kind, "in": ins, "out": out}
        spec.update(params)
        self.ops.append(spec)
        self.values[out] = expected
        self.tensor(out, expected)
        if check:
            self.check.append(out)
        if backend:
            self.backend.append(out)
        return expected

    def done(self):
        cases.append({"name": self.name, "inputs": self.inputs, "ops": self.ops,
                      "check": self.check, "backend": self.backend})


def act_of(x, act):
    if act == "relu":
        return F.relu(x)
    if act == "gelu":
        return F.gelu(x)
    return x


def conv(c, name, x_name, x, out_ch, k, stride=(1, 1), pad=(0, 0), dilation=(1, 1),
         bias=True, act="none", check=True, backend=False):
    """Adds a conv2d op on value x_name (tensor x) and returns its output."""
    kh, kw = k
    fan_in = x.shape[1] * kh * kw
    w = c.param(name + "_w", torch.randn(out_ch, x.shape[1], kh, kw) / math.sqrt(fan_in))
    b = c.param(name + "_b", torch.randn(out_ch) * 0.1) if bias else None
    y = act_of(F.conv2d(x, w, b, stride=stride, padding=pad, dilation=dilation), act)
    params = {"weight": name + "_w", "stride": list(stride), "pad": list(pad),
              "dilation": list(dilation), "act": act}
    if bias:
        params["bias"] = name + "_b"
    return c.op("conv2d", [x_name], name, y, check=check, backend=backend, **params)


def view(of, shape, stride, offset=0):
    return {"of": of, "shape": list(shape), "stride": list(stride), "offset": offset}


def strided(t, shape, stride, offset=0):
    return torch.as_strided(t.reshape(-1), shape, stride, offset)


# ---- conv2d ----
def conv_cases():
    specs = [
        # name, input shape, out channels, kernel, stride, pad, dilation, bias, act
        ("conv_3x3_bias_relu", (2, 3, 17, 19), 8, (3, 3), (1, 1), (1, 1), (1, 1), True, "relu"),
        ("conv_stride2", (1, 16, 20, 24), 32, (3, 3), (2, 2), (1, 1), (1, 1), True, "none"),
        ("conv_dilation2_pad2", (1, 32, 18, 22), 32, (3, 3), (1, 1), (2, 2), (2, 2), True, "relu"),
        ("conv_1x1_to_1", (2, 24, 9, 11), 1, (1, 1), (1, 1), (0, 0), (1, 1), True, "none"),
        ("conv_5x3_nobias_gelu", (1, 5, 12, 10), 7, (5, 3), (1, 2), (2, 1), (1, 1), False, "gelu"),
        ("conv_valid_nobias", (1, 64, 14, 14), 16, (3, 3), (1, 1), (0, 0), (1, 1), False, "relu"),
        ("conv_wide_512", (1, 512, 9, 16), 64, (3, 3), (1, 1), (2, 2), (2, 2), True, "relu"),
    ]
    for name, shape, oc, k, s, p, d, bias, act in specs:
        c = Case(name)
        x = c.input("x", *shape)
        conv(c, "y", "x", x, oc, k, s, p, d, bias, act)
        c.done()


# ---- a blocked layout flowing between ops ----
def chain_case():
    c = Case("chain_blocked")
    x = c.input("x", 1, 3, 32, 40)
    y1 = conv(c, "c1", "x", x, 16, (3, 3), pad=(1, 1), act="relu", check=False, backend=True)
    y2 = conv(c, "c2", "c1", y1, 32, (3, 3), pad=(1, 1), act="relu", backend=True)
    p = c.op("maxpool", ["c2"], "pool", F.max_pool2d(y2, 2, 2), backend=True,
             kernel=[2, 2], stride=[2, 2])
    # 20 channels: the blocked layout carries zero padding up to the block size
    y3 = conv(c, "c3", "pool", p, 20, (3, 3), pad=(2, 2), dilation=(2, 2), backend=True)
    mean = c.param("bn_mean", torch.randn(20) * 0.1)
    var = c.param("bn_var", torch.rand(20) + 0.5)
    gam = c.param("bn_w", torch.rand(20) + 0.5)
    bet = c.param("bn_b", torch.randn(20) * 0.1)
    bn = c.op("batchnorm", ["c3"], "bn",
              F.relu(F.batch_norm(y3, mean, var, gam, bet, False, 0.0, 1e-5)),
              weight="bn_w", bias="bn_b", mean="bn_mean", var="bn_var", eps=1e-5,
              act="relu", backend=True)
    g = c.input("gamma", 1, 20)
    b = c.input("beta", 1, 20)
    film = c.op("film", ["bn", "gamma", "beta"], "film",
                F.relu(bn * g[:, :, None, None] + b[:, :, None, None]), act="relu",
                backend=True)
    c.op("add", ["c3", "film"], "add", y3 + film)
    z = c.input("z", 1, 20, 16, 20)
    c.op("mul", ["film", "z"], "mul_mixed", film * z)
    c.op("gelu", ["c3"], "gelu", F.gelu(y3))
    c.op("relu", ["c3"], "relu", F.relu(y3))
    c.op("concat", ["pool", "film", "z"], "concat", torch.cat([p, film, z], 1))
    c.op("concat", ["c3", "film"], "concat_convs", torch.cat([y3, film], 1))
    t = c.op("patchify", ["c2"], "patchify", patchify_ref(y2, 4), patch=4)
    # an exit's patch projection, on the tokens of a feature map that is bf16 in
    # a bf16 backend
    pw = c.param("proj_w", torch.randn(512, 512) / math.sqrt(512))
    pb = c.param("proj_b", torch.randn(512) * 0.1)
    c.op("linear", ["patchify"], "proj", F.linear(t, pw, pb), weight="proj_w", bias="proj_b")
    c.op("upsample_nearest", ["c3"], "upsample", F.interpolate(y3, scale_factor=2, mode="nearest"),
         factor=2)
    c.op("sum", ["c3"], "sum", y3.sum(dim=(1, 2, 3)).reshape(1, 1) * 0.5, alpha=0.5)
    c.op("global_avgpool", ["c3"], "gap", y3.mean(dim=(2, 3), keepdim=True))
    c.op("avgpool", ["c3"], "avgpool_ceil",
         F.avg_pool2d(y3, 3, 2, 1, ceil_mode=True, count_include_pad=True),
         kernel=[3, 3], stride=[2, 2], pad=[1, 1], ceil_mode=True, count_include_pad=True)
    c.op("avgpool", ["c3"], "avgpool_floor",
         F.avg_pool2d(y3, 2, 2), kernel=[2, 2], stride=[2, 2])
    c.op("layernorm", ["c3"], "layernorm", F.layer_norm(y3, (20,), eps=1e-5), eps=1e-5)
    c.op("reorder", ["c3"], "reorder", y3)
    c.done()


# ---- pooling ----
def patchify_ref(x, p):
    n, ch, h, w = x.shape
    t = x.reshape(n, ch, h // p, p, w // p, p)        # n c gy py gx px
    t = t.permute(0, 2, 4, 3, 5, 1)                     # n gy gx py px c
    return t.reshape(n, (h // p) * (w // p), p * p * ch)


def pool_cases():
    specs = [
        # name, kind, shape, kernel, stride, pad, ceil, count_include_pad
        ("maxpool_2x2", "max", (2, 8, 13, 15), 2, 2, 0, False, True),
        ("maxpool_3x3_pad1_ceil", "max", (1, 4, 14, 17), 3, 2, 1, True, True),
        ("maxpool_4x4", "max", (1, 16, 12, 20), 4, 4, 0, False, True),
        ("avgpool_3x3_pad1", "avg", (1, 6, 12, 12), 3, 2, 1, False, True),
        ("avgpool_ceil_include_pad", "avg", (1, 3, 10, 13), 3, 2, 1, True, True),
        ("avgpool_ceil_exclude_pad", "avg", (1, 3, 10, 13), 3, 2, 1, True, False),
        ("avgpool_pad_exclude", "avg", (2, 5, 11, 9), 3, 1, 1, False, False),
    ]
    for name, kind, shape, k, s, p, ceil, cip in specs:
        c = Case(name)
        x = c.input("x", *shape)
        if kind == "max":
            y = F.max_pool2d(x, k, s, p, ceil_mode=ceil)
            c.op("maxpool", ["x"], "y", y, kernel=[k, k], stride=[s, s], pad=[p, p],
                 ceil_mode=ceil)
        else:
            y = F.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=cip)
            c.op("avgpool", ["x"], "y", y, kernel=[k, k], stride=[s, s], pad=[p, p],
                 ceil_mode=ceil, count_include_pad=cip)
        c.done()
    c = Case("global_avgpool")
    x = c.input("x", 2, 32, 6, 4)
    c.op("global_avgpool", ["x"], "y", x.mean(dim=(2, 3), keepdim=True))
    c.done()


def norm_cases():
    c = Case("batchnorm_affine_relu")
    x = c.input("x", 2, 12, 7, 9)
    m = c.param("mean", torch.randn(12))
    v = c.param("var", torch.rand(12) + 0.1)
    g = c.param("w", torch.randn(12))
    b = c.param("b", torch.randn(12))
    c.op("batchnorm", ["x"], "y", F.relu(F.batch_norm(x, m, v, g, b, False, 0.0, 1e-5)),
         weight="w", bias="b", mean="mean", var="var", eps=1e-5, act="relu")
    c.done()
    c = Case("batchnorm_plain_gelu")
    x = c.input("x", 1, 64, 5, 6)
    m = c.param("mean", torch.randn(64))
    v = c.param("var", torch.rand(64) + 0.1)
    c.op("batchnorm", ["x"], "y", F.gelu(F.batch_norm(x, m, v, None, None, False, 0.0, 1e-3)),
         mean="mean", var="var", eps=1e-3, act="gelu")
    c.done()
    c = Case("batchnorm_2d")
    x = c.input("x", 4, 10)
    m = c.param("mean", torch.randn(10))
    v = c.param("var", torch.rand(10) + 0.1)
    b = c.param("b", torch.randn(10))
    c.op("batchnorm", ["x"], "y", F.batch_norm(x, m, v, None, b, False, 0.0, 1e-5),
         bias="b", mean="mean", var="var", eps=1e-5)
    c.done()
    c = Case("layernorm_affine")
    x = c.input("x", 2, 9, 32)
    g = c.param("w", torch.randn(32))
    b = c.param("b", torch.randn(32))
    c.op("layernorm", ["x"], "y", F.layer_norm(x, (32,), g, b, 1e-6), weight="w", bias="b",
         eps=1e-6)
    c.done()
    c = Case("layernorm_plain")
    x = c.input("x", 5, 48, low=-2.0, high=4.0)
    c.op("layernorm", ["x"], "y", F.layer_norm(x, (48,), eps=1e-5), eps=1e-5)
    c.done()
    c = Case("softmax_3d")
    x = c.input("x", 3, 7, 13)
    c.op("softmax", ["x"], "y", F.softmax(x, -1))
    c.done()
    c = Case("softmax_large")
    x = c.input("x", 4, 144, low=-40.0, high=40.0)
    c.op("softmax", ["x"], "y", F.softmax(x, -1))
    c.done()


def linear_cases():
    specs = [
        # name, input shape, out features, bias, act
        ("linear_2d", (5, 40), 24, True, "none"),
        ("linear_3d_gelu", (2, 7, 32), 64, True, "gelu"),
        ("linear_nobias_relu", (3, 16), 8, False, "relu"),
        ("linear_vector", (48,), 10, True, "none"),
        ("linear_head", (1, 4608), 256, True, "gelu"),
    ]
    for name, shape, m, bias, act in specs:
        c = Case(name)
        x = c.input("x", *shape)
        k = shape[-1]
        w = c.param("w", torch.randn(m, k) / math.sqrt(k))
        b = c.param("b", torch.randn(m) * 0.1) if bias else None
        params = {"weight": "w", "act": act}
        if bias:
            params["bias"] = "b"
        c.op("linear", ["x"], "y", act_of(F.linear(x, w, b), act), **params)
        c.done()


def matmul_cases():
    # Attention on a packed (tokens, 3*h*d) projection: Q, K^T and V are
    # strided views, as the SL-ViT branch takes them.
    t, h, d = 10, 3, 8
    c = Case("matmul_qkt_views")
    qkv = c.input("qkv", t, 3 * h * d)
    q_shape, q_stride = (h, t, d), (d, 3 * h * d, 1)
    kt_shape, kt_stride = (h, d, t), (d, 1, 3 * h * d)
    q = strided(qkv, q_shape, q_stride, 0)
    kt = strided(qkv, kt_shape, kt_stride, h * d)
    alpha = 1.0 / math.sqrt(d)
    s = c.op("matmul", [view("qkv", q_shape, q_stride, 0), view("qkv", kt_shape, kt_stride, h * d)],
             "scores", torch.matmul(q, kt) * alpha, alpha=alpha)
    v = strided(qkv, (h, t, d), (d, 3 * h * d, 1), 2 * h * d)
    p = c.op("softmax", ["scores"], "probs", F.softmax(s, -1))
    c.op("matmul", ["probs", view("qkv", (h, t, d), (d, 3 * h * d, 1), 2 * h * d)], "ctx",
         torch.matmul(p, v))
    c.done()
    c = Case("matmul_kt_transposed")
    q = c.input("q", 3, 10, 8)
    k = c.input("k", 3, 12, 8)
    c.op("matmul", ["q", view("k", (3, 8, 12), (96, 1, 8))], "y",
         torch.matmul(q, k.transpose(1, 2)) * 0.25, alpha=0.25)
    c.done()
    c = Case("matmul_2d")
    a = c.input("a", 7, 5)
    b = c.input("b", 5, 9)
    c.op("matmul", ["a", "b"], "y", a @ b)
    c.done()


def elementwise_cases():
    c = Case("gelu")
    x = c.input("x", 2, 3, 5, 7, low=-6.0, high=6.0)
    c.op("gelu", ["x"], "y", F.gelu(x))
    c.done()
    c = Case("relu")
    x = c.input("x", 4, 33)
    c.op("relu", ["x"], "y", F.relu(x))
    c.done()
    c = Case("add")
    x = c.input("x", 2, 5, 6, 7)
    y = c.input("y", 2, 5, 6, 7)
    c.op("add", ["x", "y"], "z", x + y)
    c.done()
    c = Case("mul")
    x = c.input("x", 3, 17)
    y = c.input("y", 3, 17)
    c.op("mul", ["x", "y"], "z", x * y)
    c.done()
    c = Case("film_relu")
    x = c.input("x", 2, 6, 5, 7)
    g = c.input("gamma", 2, 6)
    b = c.input("beta", 2, 6)
    c.op("film", ["x", "gamma", "beta"], "y",
         F.relu(x * g[:, :, None, None] + b[:, :, None, None]), act="relu")
    c.done()
    c = Case("film_views")
    # gamma and beta as the two halves of one Linear(512 -> 2C) output
    x = c.input("x", 2, 6, 4, 3)
    gb = c.input("gb", 2, 12)
    c.op("film", ["x", view("gb", (2, 6), (12, 1), 0), view("gb", (2, 6), (12, 1), 6)], "y",
         x * gb[:, :6, None, None] + gb[:, 6:, None, None])
    c.done()
    c = Case("concat")
    a = c.input("a", 1, 3, 4, 5)
    b = c.input("b", 1, 5, 4, 5)
    d = c.input("d", 1, 2, 4, 5)
    c.op("concat", ["a", "b", "d"], "y", torch.cat([a, b, d], 1))
    c.done()


def layout_cases():
    c = Case("patchify_p4")
    x = c.input("x", 2, 3, 8, 12)
    c.op("patchify", ["x"], "y", patchify_ref(x, 4), patch=4)
    c.done()
    c = Case("patchify_p8")
    x = c.input("x", 1, 16, 8, 16)
    c.op("patchify", ["x"], "y", patchify_ref(x, 8), patch=8)
    c.done()
    c = Case("upsample_x8")
    x = c.input("x", 1, 1, 9, 16)
    c.op("upsample_nearest", ["x"], "y", F.interpolate(x, scale_factor=8, mode="nearest"),
         factor=8)
    c.done()
    c = Case("upsample_x2")
    x = c.input("x", 2, 3, 4, 5)
    c.op("upsample_nearest", ["x"], "y", F.interpolate(x, scale_factor=2, mode="nearest"),
         factor=2)
    c.done()
    c = Case("sum_density")
    x = c.input("x", 2, 1, 9, 16, low=0.0, high=1.0)
    c.op("sum", ["x"], "y", x.sum(dim=(1, 2, 3)).reshape(2, 1) * 0.64, alpha=0.64)
    c.done()
    c = Case("sum_2d")
    x = c.input("x", 3, 50)
    c.op("sum", ["x"], "y", x.sum(dim=1, keepdim=True))
    c.done()
    c = Case("reorder_transposed_view")
    x = c.input("x", 4, 6)
    c.op("reorder", [view("x", (6, 4), (1, 6))], "y", x.t())
    c.done()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_ops.py OUT.safetensors")
    conv_cases()
    chain_case()
    pool_cases()
    norm_cases()
    linear_cases()
    matmul_cases()
    elementwise_cases()
    layout_cases()
    eesafetensors.save(sys.argv[1], tensors, {"cases": cases})


if __name__ == "__main__":
    main()
