#!/usr/bin/python3
"""Takes the backbone out of a gst-earlyexit model file as a checkpoint the
converters read: the AudioCSRNet reference code's CSRWaveNet.CSRNet keys
(audiocsrnet.py --checkpoint) or a torchvision state_dict (classifier.py
--checkpoint). So exits of another kind or shape can be trained on the backbone
of a model file you have, e.g. the bundled default model:

    /usr/bin/python3 models/train/backbone_checkpoint.py \\
        models/default/crowd-synth-slvit.safetensors --out backbone.pth
"""
import argparse
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "convert"))
import audiocsrnet  # noqa: E402
import classifier  # noqa: E402
import eesafetensors  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    try:
        _, meta = eesafetensors.load(args.model)
        arch = json.loads(meta.get("config", "{}")).get("arch")
        if arch == "audiocsrnet":
            cfg, tensors = audiocsrnet.load_model(args.model)
            keys = audiocsrnet.reference_keys(cfg)
            sd = {keys[k]: torch.from_numpy(v.copy()) for k, v in tensors.items()
                  if not k.startswith("exits.") and k in keys}
            if cfg["count_head"] != "sum":
                raise audiocsrnet.ConvertError("the reference code has no dense count head")
        else:
            cfg, tensors, _ = classifier.load_model(args.model)
            sd = {k: torch.from_numpy(v.copy()) for k, v in tensors.items()
                  if not k.startswith("exits.")}
    except (audiocsrnet.ConvertError, OSError, ValueError) as exc:
        print(f"error: {args.model}: {exc}", file=sys.stderr)
        return 1
    torch.save(sd, args.out)
    print(f"wrote {args.out}: {len(sd)} tensors of the {cfg['arch']} backbone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
