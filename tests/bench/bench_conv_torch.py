"""Times torch.nn.functional.conv2d (3x3, pad 1, bias) + in-place ReLU per shape.

Usage: bench_conv_torch.py --threads N --iterations I [--channels-last] CIN,COUT,H,W ...

Prints one line per shape, "conv INDEX MEDIAN_MS", for bench-conv to read
(which passes one shape per run, alternating with its own measurements).
One warm-up run per shape precedes the timed ones.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("--channels-last", action="store_true",
                    help="NHWC tensors (oneDNN's brgconv) instead of NCHW")
    ap.add_argument("shapes", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with torch.no_grad():
        for i, spec in enumerate(args.shapes):
            cin, cout, h, w = (int(v) for v in spec.split(","))
            x = torch.randn(1, cin, h, w)
            weight = torch.randn(cout, cin, 3, 3) / (cin * 9) ** 0.5
            bias = torch.randn(cout)
            if args.channels_last:
                x = x.to(memory_format=torch.channels_last)
                weight = weight.to(memory_format=torch.channels_last)
            F.relu_(F.conv2d(x, weight, bias, padding=1))
            times = []
            for _ in range(args.iterations):
                t0 = time.perf_counter()
                F.relu_(F.conv2d(x, weight, bias, padding=1))
                times.append((time.perf_counter() - t0) * 1000.0)
            print(f"conv {i} {statistics.median(times):.3f}", flush=True)


if __name__ == "__main__":
    main()
