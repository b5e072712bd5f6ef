#!/usr/bin/python3
"""Reference for the classification model files: torchvision's own ResNet152,
DenseNet201 or InceptionV3 with the file's weights loaded (eval mode), the taps read
with forward hooks, and the exits run by models/convert/exits_ref.py.

    cfg, tensors, labels = classifier.load_model("m.safetensors")
    ref = ClassifierRef(cfg, tensors)            # float64 by default
    out = ref.forward(x)                         # x (1, 3, H, W) preprocessed
    out["exits"] -> {"b1": logits, "b2": logits, "final": logits}

Command line (prints JSON {"order": [...], "exits": {name: [logits]}, "dtype"}):

  /usr/bin/python3 tests/reference/classifier_ref.py MODEL --image IMG.npy \\
      [--preprocessed] [--out OUT.json] [--dump DIR] [--float32]

IMG.npy: (H, W, 3) RGB pixel values at the model's input size; with --preprocessed
the network input itself, (3, H, W) or (1, 3, H, W). --dump DIR writes every tap an
exit reads as float32 .npy. Exit status non-zero on error.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "convert"))
import classifier as conv  # noqa: E402
import exits_ref  # noqa: E402
from taps import module_at, tap_hooks  # noqa: E402,F401  (what each tap is)

load_model = conv.load_model


class ClassifierRef:
    def __init__(self, cfg, tensors, dtype=torch.float64):
        self.cfg, self.dtype = cfg, dtype
        self.model = conv.torchvision_model(cfg).to(dtype)
        sd = {k: torch.from_numpy(np.ascontiguousarray(v)).to(dtype)
              for k, v in tensors.items() if not k.startswith("exits.")}
        missing, unexpected = self.model.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise ValueError(f"weights do not fit torchvision's model: missing {missing}, "
                             f"unexpected {unexpected}")
        self.exits = {}
        for e in cfg["exits"]:
            m = exits_ref.build_exit(cfg, e).to(dtype)
            prefix = f"exits.{e['name']}."
            m.load_state_dict({k[len(prefix):]: torch.from_numpy(np.ascontiguousarray(v))
                               .to(dtype) for k, v in tensors.items()
                               if k.startswith(prefix)}, strict=True)
            self.exits[e["name"]] = m.eval()

    def preprocess(self, image):
        """(H, W, 3) RGB pixel values -> (1, 3, H, W) network input."""
        p = self.cfg["preprocess"]
        img = np.asarray(image, dtype=np.float64)
        want = (self.cfg["input_height"], self.cfg["input_width"], 3)
        if img.shape != want:
            raise ValueError(f"image shape {img.shape}, model wants {want} (H, W, RGB)")
        if p["channel_order"] == "bgr":
            img = img[:, :, ::-1]
        x = (img * p["scale"] - np.array(p["mean"])) / np.array(p["std"])
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None].to(self.dtype)

    @torch.no_grad()
    def forward(self, x, taps=()):
        """x (1, 3, H, W) preprocessed. Returns {"exits": logits per exit in anytime
        order, "taps": the tensors the exits read (and `taps`)}."""
        store, handles = {}, []
        wanted = {e["tap"] for e in self.cfg["exits"]} | set(taps)
        for t in wanted:
            handles += tap_hooks(self.cfg, self.model, t, store)
        try:
            final = self.model(x.to(self.dtype))
        finally:
            for h in handles:
                h.remove()
        values = {e["name"]: self.exits[e["name"]](store[e["tap"]])[0]
                  for e in self.cfg["exits"]}
        values["final"] = final[0]
        return {"exits": values, "taps": store}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--image", required=True)
    ap.add_argument("--preprocessed", action="store_true",
                    help="--image is the normalised (3,H,W) network input")
    ap.add_argument("--out", help="write the JSON here as well")
    ap.add_argument("--dump", help="directory for tap tensors (.npy)")
    ap.add_argument("--float32", action="store_true", help="compute in float32 "
                    "(default float64)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    try:
        cfg, tensors, _ = load_model(args.model)
        ref = ClassifierRef(cfg, tensors, torch.float32 if args.float32 else torch.float64)
        image = np.load(args.image)
        if args.preprocessed:
            x = torch.from_numpy(np.asarray(image, dtype=np.float64)).reshape(
                1, 3, cfg["input_height"], cfg["input_width"])
        else:
            x = ref.preprocess(image)
        r = ref.forward(x)
    except (conv.ConvertError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    out = {"order": list(r["exits"]),
           "exits": {k: v.tolist() for k, v in r["exits"].items()},
           "dtype": "float32" if args.float32 else "float64"}
    text = json.dumps(out)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
        for k, v in r["taps"].items():
            np.save(os.path.join(args.dump, k + ".npy"), v.numpy().astype(np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
