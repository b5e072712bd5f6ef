#!/usr/bin/env python3
"""How far the elements' resampling moves the VGGish log-mel features from the
reference pipeline's.

The reference (AudioSet's vggish_input.py, which AudioCSRNet's features follow)
averages the channels and resamples to 16 kHz with resampy's `kaiser_best`
filter. avcrowdcount and audioexitclassify average the channels and resample
with GstAudioConverter (gst/ee-audioconv.c, Kaiser sinc at a quality 0..10, the
`audio-resample-quality` property). This script resamples the same test
signals both ways (the elements' way through the resample-dump program, fed
in 1024-frame chunks as buffers arrive, then drained), computes the VGGish
log-mel features of both with the numpy reference (features_ref.py; the C
extractor matches it to 1e-6) on 1 s windows every 0.5 s, and reports the
max and mean absolute difference of the log-mel values.

  resample_compare.py --dump BUILD/tests/features/resample-dump --table
      a markdown table for every quality at 48 kHz and 44.1 kHz (docs/features.md)
  resample_compare.py --dump ... --check --quality Q --max-abs X --mean-abs Y
      exits non-zero when a rate's differences at quality Q exceed the bounds
      (meson test features-resample)

Signals, 3 s each at the input rate: a 40 Hz to 0.45 * rate sine sweep, white
noise, a clipped two-tone mix (features_ref.signals), and the sum of a 200 Hz
to 7 kHz harmonic series with a slow amplitude envelope (speech-like spectrum).
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import resampy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features_ref  # noqa: E402

OUT_RATE = 16000
SECONDS = 3
RATES = (48000, 44100)


def test_signals(sr):
    n = SECONDS * sr
    sig = features_ref.signals(sr, n)
    del sig["silence"]  # both resamplers give exact zeros
    t = np.arange(n) / sr
    harm = sum(np.sin(2 * np.pi * 200.0 * k * t + k) / k for k in range(1, 36))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t)
    sig["harmonics"] = (0.3 * env * harm).astype(np.float32)
    return sig


def windows(x):
    """VGGish log-mel of every 1 s window, every 0.5 s."""
    out = []
    for start in range(0, len(x) - OUT_RATE + 1, OUT_RATE // 2):
        out.append(features_ref.vggish(x[start:start + OUT_RATE]))
    return np.concatenate(out)


def run_dump(dump, workdir, sr, quality, names):
    cmd = [dump, f"--rate={sr}", f"--quality={quality}"]
    outs = {}
    for name in names:
        outs[name] = os.path.join(workdir, f"out-{sr}-q{quality}-{name}.npy")
        cmd += [os.path.join(workdir, f"in-{sr}-{name}.npy"), outs[name]]
    res = subprocess.run(cmd, check=True, capture_output=True, text=True)
    cpu = sum(float(m) for m in re.findall(r"cpu-ms=([0-9.]+)", res.stdout))
    return {n: np.load(p) for n, p in outs.items()}, cpu


def measure(dump, workdir, qualities):
    os.makedirs(workdir, exist_ok=True)
    table = {}
    for sr in RATES:
        sig = test_signals(sr)
        ref = {}
        for name, x in sig.items():
            np.save(os.path.join(workdir, f"in-{sr}-{name}.npy"), x)
            y = resampy.resample(x.astype(np.float64), sr, OUT_RATE,
                                 filter="kaiser_best")
            ref[name] = windows(y.astype(np.float32))
        audio_s = SECONDS * len(sig)
        for q in qualities:
            got, cpu_ms = run_dump(dump, workdir, sr, q, sig.keys())
            diffs = []
            for name in sig:
                if len(got[name]) != SECONDS * OUT_RATE:
                    raise SystemExit(f"{sr} Hz q{q} {name}: {len(got[name])} "
                                     f"samples, expected {SECONDS * OUT_RATE}")
                diffs.append(np.abs(windows(got[name]).astype(np.float64)
                                    - ref[name]).ravel())
            d = np.concatenate(diffs)
            table[(sr, q)] = (d.max(), d.mean(), cpu_ms / audio_s)
    return table


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", required=True, help="resample-dump program")
    ap.add_argument("--workdir", default="resample-compare")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quality", type=int, default=None)
    ap.add_argument("--max-abs", type=float, default=None)
    ap.add_argument("--mean-abs", type=float, default=None)
    args = ap.parse_args()

    if args.check:
        if args.quality is None or args.max_abs is None or args.mean_abs is None:
            ap.error("--check needs --quality, --max-abs and --mean-abs")
        table = measure(args.dump, args.workdir, [args.quality])
        bad = []
        for sr in RATES:
            mx, mean, _ = table[(sr, args.quality)]
            print(f"{sr} Hz, quality {args.quality}: log-mel max abs diff "
                  f"{mx:.4f} (bound {args.max_abs}), mean {mean:.5f} "
                  f"(bound {args.mean_abs})")
            if not (mx <= args.max_abs and mean <= args.mean_abs):
                bad.append(sr)
        if bad:
            print(f"FAIL: features from {bad} Hz input lie outside the bounds "
                  "of the resampy kaiser_best reference")
            return 1
        return 0

    table = measure(args.dump, args.workdir, list(range(11)))
    print("| quality | 48 kHz max abs | 48 kHz mean abs | 44.1 kHz max abs "
          "| 44.1 kHz mean abs | CPU ms per s of 48 kHz audio "
          "| CPU ms per s of 44.1 kHz audio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for q in range(11):
        a, b = table[(48000, q)], table[(44100, q)]
        print(f"| {q} | {a[0]:.4f} | {a[1]:.5f} | {b[0]:.4f} | {b[1]:.5f} "
              f"| {a[2]:.2f} | {b[2]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
