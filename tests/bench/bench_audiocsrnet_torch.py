"""Times the PyTorch reference of AudioCSRNet (float32, eager) up to each exit.

Usage: bench_audiocsrnet_torch.py MODEL --threads N --iterations I [--channels-last]

For each exit, the work it needs runs alone, as the engine's benchmark runs it:
V1 = front end + V1 branch; AV1 = audio branch + front end + AV1; AV2 = audio +
front end + block 1 + AV2; final = the whole backbone. Prints "exit NAME MEDIAN_MS"
lines for bench-audiocsrnet to read, after one warm-up run each.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import audiocsrnet_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--channels-last", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg, tensors = ref.load_model(args.model)
    m = ref.AudioCSRNetRef(cfg, tensors, torch.float32)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    for k, v in m.t.items():
        if v.dim() == 4:
            m.t[k] = v.contiguous(memory_format=fmt)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(
        (1, 3, cfg["input_height"], cfg["input_width"])).astype(np.float32))
    x = x.contiguous(memory_format=fmt)
    audio = torch.from_numpy(rng.uniform(-4.6, 2, (1, 1, 96, 64)).astype(np.float32))
    taps = {e["name"]: e for e in cfg["exits"]}

    def upto(name):
        e = taps.get(name)
        needs_audio = name == "final" or e["tap"] != "frontend" or \
            e.get("audio_token") == "shared_projection" or e.get("film")
        a = m._vgg(audio, cfg["audio"], "audio").mean(dim=(2, 3)) if needs_audio else None
        y = m._vgg(x, cfg["frontend"], "frontend")
        last = len(cfg["backend"]) if name == "final" else \
            (0 if e["tap"] == "frontend" else int(e["tap"].split(".")[1]) + 1)
        for i in range(last):
            y = m._backend_block(y, i, a)
        if name == "final":
            d = F.conv2d(y, m.t["output.weight"], m.t["output.bias"])
            return d.sum()
        return m.exits[name](y, a)

    with torch.no_grad():
        for name in [e["name"] for e in cfg["exits"]] + ["final"]:
            upto(name)
            times = []
            for _ in range(args.iterations):
                t0 = time.perf_counter()
                upto(name)
                times.append((time.perf_counter() - t0) * 1000.0)
            print(f"exit {name} {statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
