#!/usr/bin/python3
"""Converter tests: checkpoints of the public reference code (key names as
docs/model-format.md 4.1 lists them, built here by a module tree with those
names), exit checkpoints, error reporting, and the model-file round trip.

  /usr/bin/python3 tests/reference/test_convert.py      (exit status 0 = all passed)
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import testlib  # noqa: E402
from testlib import close, convert  # noqa: E402

import audiocsrnet as conv  # noqa: E402
import audiocsrnet_ref as ref  # noqa: E402
import eesafetensors  # noqa: E402
import exits_ref  # noqa: E402

DIV = 8
SIZE = (128, 64)  # W x H: 16 x 8 maps, 2 x 1 patches of 8
FRONT = [v if v == "M" else v // DIV for v in conv.PAPER_FRONTEND]
AUDIO = [v if v == "M" else v // DIV for v in conv.PAPER_AUDIO]
BACK = [v // DIV for v in conv.PAPER_BACKEND]
COMMON = ["--width-div", DIV, "--input-size", f"{SIZE[0]}x{SIZE[1]}"]


# ---------------------------------------------------------------- fake reference code

def make_layers(cfg, cin, dilation=False, batch_norm=False, affine=True):
    """Sequential as the reference code's make_layers builds it."""
    d = 2 if dilation else 1
    layers = []
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers.append(nn.Conv2d(cin, v, 3, padding=d, dilation=d))
            if batch_norm:
                layers.append(nn.BatchNorm2d(v, affine=affine))
            layers.append(nn.ReLU(inplace=True))
            cin = v
    return nn.Sequential(*layers)


class FakeVGGish(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = make_layers(AUDIO, 1)
        # The real fc is 12288->4096->4096->128; only its key names matter here.
        self.fc = nn.Sequential(nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(),
                                nn.Linear(6, 4))


class FakeCSRNet(nn.Module):
    """CSRWaveNet.CSRNet's module tree and forward, as audiocsrnet.md describes it."""

    def __init__(self, affine=False):
        super().__init__()
        self.frontend = make_layers(FRONT, 3)
        self.backend = make_layers(BACK, FRONT[-1], dilation=True, batch_norm=True,
                                   affine=affine)
        self.output_layer = nn.Conv2d(BACK[-1], 1, 1)
        self.audio_vgg = FakeVGGish()
        self.fully_connected = nn.ModuleList([nn.Linear(AUDIO[-2], 2 * c) for c in BACK])
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    fan = m.weight[0].numel()
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2 / fan) ** 0.5)
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
                elif isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.uniform_(0.5, 2.0, generator=g)
                    m.num_batches_tracked.fill_(1234)
                    if affine:
                        m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                        m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            for fc in self.fully_connected:
                c = fc.out_features // 2
                fc.weight.copy_(0.15 / fc.in_features ** 0.5 * torch.randn(fc.weight.shape, generator=g))
                fc.bias.copy_(0.1 * torch.randn(fc.bias.shape, generator=g))
                fc.bias[:c] += 1
        self.eval()

    def forward(self, img, audio):
        x = self.frontend(img)
        a = self.audio_vgg.features(audio)
        a = a.view(a.shape[0], a.shape[1], -1).mean(-1)
        film = [fc(a) for fc in self.fully_connected]
        j = 0
        for layer in self.backend:
            x = layer(x)
            if isinstance(layer, nn.BatchNorm2d):
                c = x.shape[1]
                x = film[j][:, :c, None, None] * x + film[j][:, c:, None, None]
                j += 1
        x = F.interpolate(self.output_layer(x), scale_factor=8)  # nearest, no /64
        return x.sum() / 100


class Holder(nn.Module):
    def __init__(self, **kw):
        super().__init__()
        for k, v in kw.items():
            setattr(self, k, v)


def fake_state_dict(prefix, affine=False):
    net = FakeCSRNet(affine).double()
    if prefix == "CCN.module.":
        tree = Holder(CCN=Holder(module=net))
    elif prefix == "CCN.":
        tree = Holder(CCN=net)
    elif prefix == "module.":
        tree = Holder(module=net)
    else:
        tree = net
    sd = tree.state_dict()
    assert all(k.startswith(prefix) for k in sd)
    return net, {k: v.float() for k, v in sd.items()}


def inputs(seed=3):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (SIZE[1], SIZE[0], 3)).astype(np.uint8)
    logmel = rng.uniform(-4.6, 2.0, (96, 64))
    return image, logmel


def fake_count(net, r, image, logmel):
    x = r.preprocess(image)
    with torch.no_grad():
        return net.double()(x, r.audio_tensor(logmel)).item()


# ---------------------------------------------------------------- tests

def test_reference_checkpoint_prefixes(tmp):
    """Every prefix and the `net` wrapper convert to the same tensors, which land
    under the right names, and the converted model counts like the reference code."""
    image, logmel = inputs()
    for i, (prefix, wrap) in enumerate([("CCN.module.", False), ("CCN.", True),
                                        ("module.", False), ("", True)]):
        net, sd = fake_state_dict(prefix)
        assert f"{prefix}audio_vgg.fc.0.weight" in sd
        ck = os.path.join(tmp, f"ref{i}.pth")
        torch.save({"net": sd, "epoch": 3, "exp_name": "x"} if wrap else sd, ck)
        out = os.path.join(tmp, f"ref{i}.safetensors")
        rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--out", out] + COMMON)
        assert rc == 0, err
        cfg, t = conv.load_model(out)
        assert cfg["bn_affine"] is False and cfg["count_head"] == "sum"
        assert cfg["count_scale"] == 0.64 and cfg["exits"] == []
        p = prefix
        pairs = {"frontend.0.weight": "frontend.0.weight", "frontend.9.bias": "frontend.21.bias",
                 "frontend.4.weight": "frontend.10.weight",
                 "audio.0.weight": "audio_vgg.features.0.weight",
                 "audio.5.bias": "audio_vgg.features.13.bias",
                 "audio.3.weight": "audio_vgg.features.8.weight",
                 "film.2.weight": "fully_connected.2.weight",
                 "backend.0.conv.weight": "backend.0.weight",
                 "backend.5.conv.bias": "backend.15.bias",
                 "backend.3.bn.running_var": "backend.10.running_var",
                 "backend.1.bn.running_mean": "backend.4.running_mean",
                 "output.weight": "output_layer.weight"}
        for name, key in pairs.items():
            assert np.array_equal(t[name], sd[p + key].numpy()), (name, key)
        assert len(t) == 2 * 10 + 2 * 6 + 2 * 6 + 4 * 6 + 2
        r = ref.AudioCSRNetRef(cfg, t)
        got = r.run(image, logmel)["exits"]["final"].item()
        want = fake_count(net, r, image, logmel)
        close(got, want, rtol=1e-6, what=f"count, prefix {prefix!r}")
        assert abs(want) > 1e-3


def test_bn_affine_detected(tmp):
    net, sd = fake_state_dict("CCN.", affine=True)
    ck = os.path.join(tmp, "affine.pth")
    torch.save(sd, ck)
    out = os.path.join(tmp, "affine.safetensors")
    rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--bn-eps", "1e-5",
                          "--out", out] + COMMON)
    assert rc == 0, err
    cfg, t = conv.load_model(out)
    assert cfg["bn_affine"] is True and "backend.2.bn.weight" in t
    image, logmel = inputs(4)
    r = ref.AudioCSRNetRef(cfg, t)
    close(r.run(image, logmel)["exits"]["final"].item(), fake_count(net, r, image, logmel),
          rtol=1e-6, what="count with affine BN")
    # Forcing bn_affine off must not silently drop the BN weights.
    rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--bn-affine", "false",
                          "--out", out] + COMMON)
    assert rc == 1 and "CCN.backend.1.weight" in err, err


def test_missing_and_misshaped_keys(tmp):
    _, sd = fake_state_dict("CCN.module.")
    out = os.path.join(tmp, "bad.safetensors")
    bad = dict(sd)
    del bad["CCN.module.backend.3.weight"]
    del bad["CCN.module.audio_vgg.features.6.bias"]
    bad["CCN.module.fully_connected.2.weight"] = torch.zeros(5, 7)
    ck = os.path.join(tmp, "bad.pth")
    torch.save(bad, ck)
    rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--out", out] + COMMON)
    assert rc == 1, "converter accepted a broken checkpoint"
    for s in ("missing tensors", "backend.1.conv.weight", "CCN.module.backend.3.weight",
              "audio.2.bias", "CCN.module.audio_vgg.features.6.bias",
              "mis-shaped", "film.2.weight", "CCN.module.fully_connected.2.weight",
              "(5, 7)", "(128, 64)"):
        assert s in err, f"{s!r} not in error:\n{err}"
    assert not os.path.exists(out)
    extra = dict(sd)
    extra["CCN.module.context.scales.0.weight"] = torch.zeros(3)
    torch.save(extra, ck)
    rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--out", out] + COMMON)
    assert rc == 1 and "CCN.module.context.scales.0.weight" in err, err
    # Compact-width weights converted as the paper configuration: every layer named.
    torch.save(sd, ck)
    rc, _, err = convert(["--checkpoint", ck, "--exit-list", "none", "--out", out,
                          "--input-size", "128x64"])
    assert rc == 1 and "frontend.0.weight" in err and "(64, 3, 3, 3)" in err, err


def _exit_cfg(kind, **kw):
    o = vars(conv.parser().parse_args(
        [str(a) for a in COMMON] + ["--exit-kind", kind]))
    o.update(kw)
    o["bn_affine"] = False
    return conv.make_config(o)


def test_exits_checkpoint(tmp):
    """Exits trained with exits_ref.ExitSet convert and run exactly like the modules."""
    _, sd = fake_state_dict("CCN.module.")
    ck = os.path.join(tmp, "ref.pth")
    torch.save(sd, ck)
    image, logmel = inputs(6)
    for kind in ("slvit", "cnn"):
        cfg = _exit_cfg(kind)
        torch.manual_seed(11)
        es = exits_ref.ExitSet(cfg).double().eval()
        with torch.no_grad():
            for n, p in es.named_parameters():
                p.add_(0.1 * torch.randn(p.shape, dtype=p.dtype))
        ek = os.path.join(tmp, f"exits-{kind}.pth")
        torch.save({k: v.float() for k, v in es.state_dict().items()}, ek)
        out = os.path.join(tmp, f"exits-{kind}.safetensors")
        rc, _, err = convert(["--checkpoint", ck, "--exits", ek, "--exit-kind", kind,
                              "--out", out] + COMMON)
        assert rc == 0, err
        mcfg, t = conv.load_model(out)
        assert [e["name"] for e in mcfg["exits"]] == ["v1", "av1", "av2"]
        for k, v in es.state_dict().items():
            assert np.array_equal(t["exits." + k], v.float().numpy()), k
        r = ref.AudioCSRNetRef(mcfg, t)
        res = r.run(image, logmel)
        a = res["audio_vector"][None]
        with torch.no_grad():
            for name, tap in (("v1", "frontend"), ("av1", "frontend"), ("av2", "backend.0")):
                m = es[name].float().double()
                want = m(res["taps"][tap], a)[0]
                close(res["exits"][name], want, rtol=1e-6, what=f"{kind} {name}")
        # Selecting a subset of exits from a full exit checkpoint.
        rc, _, err = convert(["--checkpoint", ck, "--exits", ek, "--exit-kind", kind,
                              "--exit-list", "av2", "--out", out] + COMMON)
        assert rc == 0, err
        assert [e["name"] for e in conv.load_model(out)[0]["exits"]] == ["av2"]
    # A missing exit tensor is named with its exit-checkpoint key.
    bad = {k: v for k, v in torch.load(ek).items() if k != "av1.film.weight"}
    torch.save(bad, ek)
    rc, _, err = convert(["--checkpoint", ck, "--exits", ek, "--exit-kind", "cnn",
                          "--out", out] + COMMON)
    assert rc == 1 and "exits.av1.film.weight" in err and "av1.film.weight" in err, err
    rc, _, err = convert(["--checkpoint", ck, "--out", out] + COMMON)
    assert rc == 1 and "--random-exits" in err, err
    rc, _, err = convert(["--checkpoint", ck, "--random-exits", "--seed", 3,
                          "--out", out] + COMMON)
    assert rc == 0, err


def test_patch_order_cpyx(tmp):
    """proj.weight in torch-unfold (c, py, px) column order is permuted to (py, px, c),
    and the canonical patchify then equals F.unfold with the original weights."""
    cfg = _exit_cfg("slvit", exit_list=["v1"])
    torch.manual_seed(2)
    es = exits_ref.ExitSet(cfg).double()
    c, h, w = exits_ref.tap_shape(cfg, "frontend")
    p = cfg["exits"][0]["patch"]
    wc = es["v1"].proj.weight.detach()  # canonical
    d = wc.shape[0]
    w_cpyx = wc.reshape(d, p * p, c).transpose(1, 2).reshape(d, -1)
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    unf = F.unfold(x, p, stride=p).transpose(1, 2)  # (1, N, C*P*P), (c, py, px) order
    close(exits_ref.patchify(x, p) @ wc.T, unf @ w_cpyx.T, what="patchify vs unfold")
    sd = {k: v.float() for k, v in es.state_dict().items()}
    sd["v1.proj.weight"] = w_cpyx.float()
    ek = os.path.join(tmp, "cpyx.pth")
    torch.save(sd, ek)
    _, rsd = fake_state_dict("")
    ck = os.path.join(tmp, "r.pth")
    torch.save(rsd, ck)
    out = os.path.join(tmp, "cpyx.safetensors")
    rc, _, err = convert(["--checkpoint", ck, "--exits", ek, "--exits-patch-order", "cpyx",
                          "--exit-list", "v1", "--out", out] + COMMON)
    assert rc == 0, err
    t = conv.load_model(out)[1]
    assert np.array_equal(t["exits.v1.proj.weight"], wc.float().numpy())


def test_random_every_switch(tmp):
    """--random writes a loadable model for non-default switches; F16 storage works."""
    out = os.path.join(tmp, "sw.safetensors")
    rc, _, err = convert(["--random", "--seed", 9, "--bn-affine", "true", "--bn-eps", "1e-3",
                          "--count-head", "dense", "--dense-bias", "true",
                          "--final-ln", "true", "--last-residual", "false",
                          "--mlp-out-gelu", "true", "--head-act", "relu",
                          "--audio-token", "none", "--ln-eps", "1e-3",
                          "--channel-order", "bgr", "--mean", "0,0,0", "--std", "1,1,1",
                          "--heads", 3, "--dim", 16, "--head-hidden", 32,
                          "--out", out] + COMMON)
    assert rc == 0, err
    cfg, t = conv.load_model(out)
    assert cfg["bn_eps"] == 1e-3 and cfg["count_scale"] == 1.0 and cfg["dense_bias"]
    e = cfg["exits"][1]
    assert e["name"] == "av1" and e["audio_token"] == "none" and e["final_ln"]
    assert t["dense.weight"].shape == (1, 8 * 16) and t["exits.av1.pos"].shape == (2, 16)
    assert "exits.v1.ln_out.weight" in t and "backend.0.bn.weight" in t
    r = ref.AudioCSRNetRef(cfg, t)
    image, logmel = inputs(7)
    res = r.run(image, logmel)
    want = (res["density"].reshape(-1) @ torch.from_numpy(t["dense.weight"][0]).double()
            + float(t["dense.bias"][0]))
    close(res["exits"]["final"], want.reshape(1), what="dense count")
    # bgr: the reference swaps channels before normalising.
    x = r.preprocess(image)
    close(x[0, 0], torch.from_numpy(image[:, :, 2] / 255.0), what="bgr channel 0")
    out16 = os.path.join(tmp, "sw16.safetensors")
    rc, _, err = convert(["--random", "--seed", 9, "--exit-kind", "cnn", "--dtype", "f16",
                          "--out", out16] + COMMON)
    assert rc == 0, err
    rc, _, err = convert(["--random", "--seed", 9, "--exit-kind", "cnn",
                          "--out", out] + COMMON)
    t16, t32 = conv.load_model(out16)[1], conv.load_model(out)[1]
    for k in t32:
        assert np.array_equal(t16[k], t32[k].astype(np.float16).astype(np.float32)), k


def test_config_errors(tmp):
    out = os.path.join(tmp, "e.safetensors")
    for argv, msg in [
            (["--input-size", "100x64"], "multiple of 8"),
            (["--input-size", "136x64"], "not divisible by patch"),
            (["--width-div", 3], "not divisible by --width-div"),
            (["--audio-token", "shared_projection", "--audio-cfg", "64,M,128,M,256,M,256,M"],
             "audio token needs audio width")]:
        argv = ["--random", "--out", out, "--width-div", 8, "--input-size", "128x64"] + argv
        rc, _, err = convert(argv)
        assert rc == 1 and msg in err, (argv, err)


def test_load_model_rejects(tmp):
    out = os.path.join(tmp, "ok.safetensors")
    rc, _, err = convert(["--random", "--out", out] + COMMON)
    assert rc == 0, err
    t, meta = eesafetensors.load(out)
    bad = os.path.join(tmp, "bad.safetensors")
    cases = []
    m = dict(meta, format="other")
    cases.append((t, m, "format"))
    m = dict(meta, format_version="2")
    cases.append((t, m, "format_version"))
    import json
    c = json.loads(meta["config"])
    c["surprise"] = 1
    cases.append((t, dict(meta, config=json.dumps(c)), "unknown keys"))
    c = json.loads(meta["config"])
    del c["exits"][0]["ln_eps"]
    cases.append((t, dict(meta, config=json.dumps(c)), "missing keys"))
    t2 = dict(t)
    t2["exits.av1.pos"] = t["exits.v1.pos"]
    cases.append((t2, meta, "exits.av1.pos"))
    t3 = {k: v for k, v in t.items() if k != "output.bias"}
    cases.append((t3, meta, "output.bias"))
    for tensors, m, msg in cases:
        eesafetensors.save(bad, tensors, m)
        try:
            conv.load_model(bad)
        except conv.ConvertError as exc:
            assert msg in str(exc), (msg, str(exc))
        else:
            raise AssertionError(f"load_model accepted a bad file ({msg})")


def test_command_line(tmp):
    """The scripts as the lead runs them (a separate process each)."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.join(here, "..", "..")
    out = os.path.join(tmp, "cli.safetensors")
    py = sys.executable
    subprocess.run([py, os.path.join(root, "models/convert/audiocsrnet.py"), "--random",
                    "--seed", "1", "--width-div", "8", "--input-size", "128x64",
                    "--out", out], check=True, stdout=subprocess.DEVNULL)
    js = os.path.join(tmp, "o.json")
    subprocess.run([py, os.path.join(here, "run_ref.py"), out, "--out", js,
                    "--save-inputs", os.path.join(tmp, "in")], check=True,
                   stdout=subprocess.DEVNULL)
    import json
    with open(js) as f:
        res = json.load(f)
    assert res["order"] == ["v1", "av1", "av2", "final"]
    r2 = subprocess.run([py, os.path.join(here, "run_ref.py"), out, "--image",
                         os.path.join(tmp, "in.image.npy"), "--audio",
                         os.path.join(tmp, "in.audio.npy")], check=True,
                        capture_output=True, text=True)
    assert json.loads(r2.stdout)["exits"] == res["exits"]
    r3 = subprocess.run([py, os.path.join(here, "run_ref.py"), out, "--image",
                         os.path.join(tmp, "in.audio.npy")], capture_output=True, text=True)
    assert r3.returncode != 0 and "image shape" in r3.stderr, r3.stderr


if __name__ == "__main__":
    sys.exit(testlib.run([test_reference_checkpoint_prefixes, test_bn_affine_detected,
                          test_missing_and_misshaped_keys, test_exits_checkpoint,
                          test_patch_order_cpyx, test_random_every_switch,
                          test_config_errors, test_load_model_rejects, test_command_line]))
