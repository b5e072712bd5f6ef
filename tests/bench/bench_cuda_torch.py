"""Times torch.nn.functional.conv2d (3x3, pad 1, bias) + in-place ReLU on a GPU.

Usage: bench_cuda_torch.py --precision P --device N --iterations I CIN,COUT,H,W ...

PyTorch eager with channels_last tensors in the precision bench-cuda measures:
fp32 (TF32 off), tf32 (TF32 on), fp16, bf16; cuDNN benchmark mode picks each
shape's algorithm, as bench-cuda's backend times its own. Prints one line per
shape, "conv INDEX MEDIAN_MS", from CUDA events around each of I runs after
three warm-up runs. Exits 3 with a reason on stderr when torch or its CUDA
support is missing.
"""
import argparse
import statistics
import sys

DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16",
          "bf16": "bfloat16"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--precision", choices=sorted(DTYPES), required=True)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--iterations", type=int, required=True)
    ap.add_argument("shapes", nargs="+")
    args = ap.parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(f"torch cannot be imported ({e})", file=sys.stderr)
        return 3
    if not torch.cuda.is_available():
        print("torch has no usable CUDA device", file=sys.stderr)
        return 3
    tf32 = args.precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda", args.device)
    dtype = getattr(torch, DTYPES[args.precision])
    torch.manual_seed(0)
    with torch.no_grad():
        for i, spec in enumerate(args.shapes):
            cin, cout, h, w = (int(v) for v in spec.split(","))
            x = torch.randn(1, cin, h, w, device=dev, dtype=dtype)
            weight = torch.randn(cout, cin, 3, 3, device=dev,
                                 dtype=dtype) / (cin * 9) ** 0.5
            bias = torch.randn(cout, device=dev, dtype=dtype)
            x = x.to(memory_format=torch.channels_last)
            weight = weight.to(memory_format=torch.channels_last)
            for _ in range(3):
                F.relu_(F.conv2d(x, weight, bias, padding=1))
            events = [torch.cuda.Event(enable_timing=True)
                      for _ in range(args.iterations + 1)]
            events[0].record()
            for k in range(args.iterations):
                F.relu_(F.conv2d(x, weight, bias, padding=1))
                events[k + 1].record()
            torch.cuda.synchronize(dev)
            times = [events[k].elapsed_time(events[k + 1])
                     for k in range(args.iterations)]
            print(f"conv {i} {statistics.median(times):.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
