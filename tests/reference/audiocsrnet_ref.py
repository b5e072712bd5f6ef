"""PyTorch reference of AudioCSRNet with early exits, written from docs/models.md
sections 2 and 3 and docs/model-format.md. Used only to produce expected outputs for
the C engine's tests; it runs a model file written by models/convert/audiocsrnet.py.

    cfg, tensors = load_model("m.safetensors")
    ref = AudioCSRNetRef(cfg, tensors)          # float64 by default
    out = ref.run(image_hwc_rgb_pixels, logmel_96x64)
    out["exits"]  -> {"v1": count, "av1": ..., "av2": ..., "final": count}
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "convert"))
import audiocsrnet as conv  # noqa: E402
import exits_ref  # noqa: E402

load_model = conv.load_model


class AudioCSRNetRef:
    def __init__(self, cfg, tensors, dtype=torch.float64):
        self.cfg = cfg
        self.dtype = dtype
        self.t = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
                  for k, v in tensors.items()}
        self.exits = {}
        for e in cfg["exits"]:
            m = exits_ref.build_exit(cfg, e).to(dtype)
            prefix = f"exits.{e['name']}."
            sd = {k[len(prefix):]: v for k, v in self.t.items() if k.startswith(prefix)}
            m.load_state_dict(sd, strict=True)
            m.eval()
            self.exits[e["name"]] = m

    # -- inputs

    def preprocess(self, image):
        """(H, W, 3) RGB pixel values (0..255 for scale 1/255) -> (1, 3, H, W)."""
        p = self.cfg["preprocess"]
        img = np.asarray(image, dtype=np.float64)
        want = (self.cfg["input_height"], self.cfg["input_width"], 3)
        if img.shape != want:
            raise ValueError(f"image shape {img.shape}, model wants {want} (H, W, RGB)")
        if p["channel_order"] == "bgr":
            img = img[:, :, ::-1]
        x = (img * p["scale"] - np.array(p["mean"])) / np.array(p["std"])
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.dtype)

    def audio_tensor(self, logmel):
        a = np.asarray(logmel, dtype=np.float64).reshape(-1)
        if a.size != conv.AUDIO_FRAMES * conv.AUDIO_BANDS:
            raise ValueError(f"log-mel has {a.size} values, want 96 x 64")
        return torch.from_numpy(a.reshape(1, 1, conv.AUDIO_FRAMES, conv.AUDIO_BANDS)).to(self.dtype)

    # -- layers

    def _vgg(self, x, spec, prefix):
        i = 0
        for v in spec:
            if v == "M":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(F.conv2d(x, self.t[f"{prefix}.{i}.weight"],
                                    self.t[f"{prefix}.{i}.bias"], padding=1))
                i += 1
        return x

    def _backend_block(self, x, i, a):
        t, c = self.t, self.cfg
        dil = c["backend_dilation"]
        x = F.conv2d(x, t[f"backend.{i}.conv.weight"], t[f"backend.{i}.conv.bias"],
                     padding=dil, dilation=dil)
        x = (x - t[f"backend.{i}.bn.running_mean"][:, None, None]) / torch.sqrt(
            t[f"backend.{i}.bn.running_var"][:, None, None] + c["bn_eps"])
        if c["bn_affine"]:
            x = x * t[f"backend.{i}.bn.weight"][:, None, None] + t[f"backend.{i}.bn.bias"][:, None, None]
        gb = a @ t[f"film.{i}.weight"].T + t[f"film.{i}.bias"]  # (1, 2C)
        ch = c["backend"][i]
        gamma, beta = gb[:, :ch, None, None], gb[:, ch:, None, None]
        return F.relu(gamma * x + beta)

    # -- whole model

    @torch.no_grad()
    def forward(self, x, audio):
        """x (1,3,H,W) preprocessed, audio (1,1,96,64). Returns dict with the exit
        values (in anytime order), the audio vector, taps and the density map."""
        c = self.cfg
        feats = {}
        a = self._vgg(audio, c["audio"], "audio").mean(dim=(2, 3))  # (1, A)
        x = self._vgg(x, c["frontend"], "frontend")
        feats["frontend"] = x
        values = {}

        def run_exits(tap):
            for e in c["exits"]:
                if e["tap"] == tap:
                    values[e["name"]] = self.exits[e["name"]](x, a)[0]

        run_exits("frontend")
        for i in range(len(c["backend"])):
            x = self._backend_block(x, i, a)
            feats[f"backend.{i}"] = x
            run_exits(f"backend.{i}")
        d = F.conv2d(x, self.t["output.weight"], self.t["output.bias"])[0, 0]  # (H/8, W/8)
        if c["count_head"] == "sum":
            raw = d.sum()
        else:
            raw = (self.t["dense.weight"][0] * d.reshape(-1)).sum()
            if c["dense_bias"]:
                raw = raw + self.t["dense.bias"][0]
        values["final"] = (c["count_scale"] * raw).reshape(1)
        return {"exits": values, "audio_vector": a[0], "taps": feats, "density": d}

    def run(self, image, logmel, preprocessed=False):
        x = torch.as_tensor(np.asarray(image)).to(self.dtype) if preprocessed else self.preprocess(image)
        if preprocessed:
            x = x.reshape(1, 3, self.cfg["input_height"], self.cfg["input_width"])
        return self.forward(x, self.audio_tensor(logmel))


def exit_value(v):
    """A count (outputs == 1) as a float, otherwise the list of logits."""
    v = v.reshape(-1).tolist()
    return v[0] if len(v) == 1 else v
