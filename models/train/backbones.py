"""Frozen backbones of earlyexit-train, run in PyTorch from a model file's
tensors: what each exit's tap holds (models/convert/taps.py for the
classification backbones, the AudioCSRNet reference for the crowd one) and the
backbone's own output (the labels of copycat samples, the report's `final`)."""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import classifier as classifier_conv  # noqa: E402
import taps as tap_defs  # noqa: E402
from audiocsrnet_ref import AudioCSRNetRef  # noqa: E402


def _backbone_tensors(tensors):
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()
            if not k.startswith("exits.")}


class ClassifierBackbone:
    """torchvision's ResNet152, DenseNet201 or InceptionV3 with the file's weights."""

    def __init__(self, cfg, tensors):
        self.cfg = cfg
        self.model = classifier_conv.torchvision_model(cfg)
        missing, unexpected = self.model.load_state_dict(_backbone_tensors(tensors),
                                                         strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"the model file's backbone does not fit torchvision's "
                             f"{cfg['arch']}: missing {missing}, unexpected {unexpected}")
        self.model.eval()

    @torch.no_grad()
    def run(self, x, audio, taps):
        """x (B, 3, H, W): ({tap: (B, C, H, W)}, None, final logits (B, classes))."""
        store, handles = {}, []
        for t in taps:
            handles += tap_defs.tap_hooks(self.cfg, self.model, t, store)
        try:
            final = self.model(x)
        finally:
            for h in handles:
                h.remove()
        return {t: store[t] for t in taps}, None, final


class CrowdBackbone:
    """AudioCSRNet as docs/models.md 2 computes it (the tests' reference), in float32."""

    def __init__(self, cfg, tensors):
        self.cfg = cfg
        no_exits = dict(cfg, exits=[])
        self.ref = AudioCSRNetRef(no_exits, {k: v for k, v in tensors.items()
                                             if not k.startswith("exits.")},
                                  dtype=torch.float32)

    @torch.no_grad()
    def run(self, x, audio, taps):
        """x (B, 3, H, W), audio (B, 96, 64) log-mel: ({tap: (B, C, H, W)},
        audio vectors (B, A), counts (B,))."""
        out_taps, vecs, counts = {t: [] for t in taps}, [], []
        for i in range(x.shape[0]):
            r = self.ref.forward(x[i:i + 1], audio[i].reshape(1, 1, 96, 64))
            for t in taps:
                out_taps[t].append(r["taps"][t])
            vecs.append(r["audio_vector"][None])
            counts.append(r["exits"]["final"])
        return ({t: torch.cat(v) for t, v in out_taps.items()}, torch.cat(vecs),
                torch.cat(counts))
