#!/usr/bin/python3
"""Writes scenes of models/synth/scenes.py in the AudioCSRNet reference code's
data layout (what `earlyexit-train crowd` reads): DIR/imgs/ID.jpg (quality 95),
DIR/auds/ID.wav (1 s, 16 kHz, 16-bit) and DIR/labels/new_ID.txt (one head "x y"
a line, in pixels, rounded as the reference code's annotations are integers).

    /usr/bin/python3 models/train/export_scenes.py --seed0 3000000 --count 600 --out DIR

Scene i has seed seed0 + i (the default model trained on seeds 0..5999 and was
validated on 1,000,000.. and tested on 2,000,000..).
"""
import argparse
import os
import sys
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "synth"))
import scenes  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed0", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    from PIL import Image
    for d in ("imgs", "auds", "labels"):
        os.makedirs(os.path.join(args.out, d), exist_ok=True)
    for i in range(args.count):
        s = scenes.make_scene(args.seed0 + i)
        sid = f"{args.seed0 + i}"
        Image.fromarray(s["image"]).save(os.path.join(args.out, "imgs", sid + ".jpg"),
                                         quality=95)
        with wave.open(os.path.join(args.out, "auds", sid + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(scenes.RATE)
            w.writeframes((np.clip(s["audio"], -1, 1) * 32767).astype("<i2").tobytes())
        with open(os.path.join(args.out, "labels", f"new_{sid}.txt"), "w") as f:
            f.write("".join(f"{int(round(x))} {int(round(y))}\n" for x, y in s["heads"]))
    print(f"wrote {args.count} scenes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
