#!/usr/bin/env python3
"""Reference audio features in numpy (float64), written from docs/models.md section 1
and docs/features.md, and a comparison with the C extractor.

Run by `meson test features`:
    features_ref.py --dump BUILD/tests/features/features-dump --workdir DIR

It writes four test signals per sample rate (sine sweep, white noise, silence,
clipped tone) as float32 .npy, has the C program compute every feature case on
them, and checks the C output against this reference: max abs error <= 1e-4 on
log values (and relative to the largest value for the case without log).
Exits non-zero naming the case, the signal and the worst element.

The module is also imported by features_cli.py for its reference functions.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

TOLERANCE = 1e-4


def periodic_hann(n):
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


# ---- VGGish (docs/models.md 1.1) ------------------------------------------------

def vggish_mel_matrix():
    """(257, 64): HTK mel triangles in the mel domain, DC row zero."""
    def to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)

    bin_mel = to_mel(np.linspace(0.0, 8000.0, 257))[:, None]
    edges = np.linspace(to_mel(125.0), to_mel(7500.0), 64 + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    matrix = np.maximum(0.0, np.minimum(rising, falling))
    matrix[0, :] = 0.0
    return matrix


def vggish(x):
    x = np.asarray(x, np.float32).astype(np.float64)
    frames = sliding_window_view(x, 400)[::160]
    assert frames.shape[0] == 98
    mag = np.abs(np.fft.rfft(frames * periodic_hann(400), n=512))
    logmel = np.log(mag @ vggish_mel_matrix() + 0.01)
    return logmel[:96][None, None]


# ---- resize and normalisation shared by SC and GTZAN -----------------------

def resize(image, height, width):
    """PyTorch bilinear, align_corners=False, in float64."""
    t = torch.from_numpy(np.ascontiguousarray(image, np.float64))[None, None]
    out = torch.nn.functional.interpolate(t, size=(height, width),
                                          mode="bilinear", align_corners=False)
    return out[0, 0].numpy()


def finish(images, p):
    """images: three 2-d arrays -> (1, 3, H, W) after log, resize, mean/std."""
    planes = []
    for c, image in enumerate(images):
        if p["log"]:
            image = np.log(image + p["log_offset"])
        image = resize(image, p["height"], p["width"])
        planes.append((image - p["mean"][c]) / p["std"][c])
    return np.stack(planes)[None]


def default_params():
    return {"log": True, "log_offset": np.float64(np.float32(1e-6)),
            "htk": False, "height": 224, "width": 224,
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]}


# ---- Speech Commands (docs/models.md 1.2), tf.signal.stft(255, 128) -------------

def sc(x, p):
    x = np.asarray(x, np.float32).astype(np.float64)
    frames = sliding_window_view(x, 255)[::128]
    assert frames.shape[0] == 124
    mag = np.abs(np.fft.rfft(frames * periodic_hann(255), n=256))
    return finish([mag, mag, mag], p)      # rows time, columns frequency


# ---- GTZAN (docs/models.md 1.3), librosa defaults -------------------------------

def slaney_hz_to_mel(hz):
    hz = np.asarray(hz, np.float64)
    linear = hz * 3.0 / 200.0
    logpart = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz >= 1000.0, logpart, linear)


def slaney_mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    linear = mel * 200.0 / 3.0
    logpart = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel >= 15.0, logpart, linear)


def htk_hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def htk_mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def librosa_mel_matrix(sr, n_fft, n_mels, htk=False):
    """(n_mels, n_fft // 2 + 1) like librosa.filters.mel with fmin 0,
    fmax sr / 2, norm "slaney", in float64."""
    to_mel, to_hz = ((htk_hz_to_mel, htk_mel_to_hz) if htk
                     else (slaney_hz_to_mel, slaney_mel_to_hz))
    edges_hz = to_hz(np.linspace(0.0, to_mel(sr / 2.0), n_mels + 2))
    bin_hz = np.fft.rfftfreq(n_fft, 1.0 / sr)
    lower, centre, upper = (edges_hz[:-2, None], edges_hz[1:-1, None],
                            edges_hz[2:, None])
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    tri = np.maximum(0.0, np.minimum(rising, falling))
    return tri * (2.0 / (upper - lower))


def check_librosa_mel_matrix():
    """Values of librosa.filters.mel(sr=22050, n_fft=2048) (librosa docs),
    so that this reference is pinned to librosa itself, not to our reading."""
    m = librosa_mel_matrix(22050, 2048, 128)
    row0 = [0.0, 0.016182853208219942, 0.032365706416439884,
            0.028990088037379964, 0.012807234829160026, 0.0]
    row1 = [0.0, 0.0, 0.0, 0.009779235793639925, 0.025962089001859864,
            0.035393705451959974, 0.01921085224374004, 0.003027999035520103,
            0.0]
    assert np.allclose(m[0, :6], row0, rtol=0, atol=1e-12), m[0, :6]
    assert np.allclose(m[1, :9], row1, rtol=0, atol=1e-12), m[1, :9]


def librosa_stft(x, n_fft, hop):
    """(bins, frames): center=True with zero padding, periodic Hann of n_fft."""
    padded = np.pad(x, n_fft // 2)
    frames = sliding_window_view(padded, n_fft)[::hop]
    return np.fft.rfft(frames * periodic_hann(n_fft)).T


def gtzan(x, p):
    sr = 22050
    x = np.asarray(x, np.float32).astype(np.float64)
    ch0 = np.abs(librosa_stft(x, 512, 256))
    images = [ch0]
    for ms_window, ms_hop in ((100, 50), (50, 25)):
        n_fft = int(round(ms_window * sr / 1000))
        hop = int(round(ms_hop * sr / 1000))
        power = np.abs(librosa_stft(x, n_fft, hop)) ** 2
        images.append(librosa_mel_matrix(sr, n_fft, 128, p["htk"]) @ power)
    assert [im.shape for im in images] == [(257, 259), (128, 61), (128, 121)]
    return finish(images, p)


# ---- test signals ----------------------------------------------------------

def signals(sr, n):
    t = np.arange(n) / sr
    f0, f1 = 40.0, 0.45 * sr
    duration = n / sr
    sweep = 0.8 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * duration) * t * t))
    noise = np.random.default_rng(20240601).uniform(-0.5, 0.5, n)
    silence = np.zeros(n)
    clipped = np.clip(2.5 * np.sin(2 * np.pi * 441.0 * t)
                      + 0.5 * np.sin(2 * np.pi * 1234.5 * t), -1.0, 1.0)
    return {"sweep": sweep.astype(np.float32), "noise": noise.astype(np.float32),
            "silence": silence.astype(np.float32),
            "clipped": clipped.astype(np.float32)}


def cases():
    """(name, kind, params, command-line options of features-dump)."""
    out = []
    out.append(("vggish", "vggish", None, []))
    out.append(("sc", "sc", default_params(), []))
    p = default_params()
    p.update(height=100, width=180, mean=[0.5, -1.0, 2.0], std=[2.0, 3.0, 0.5])
    out.append(("sc-100x180-norm", "sc", p,
                ["--height=100", "--width=180", "--mean=0.5,-1,2",
                 "--std=2,3,0.5"]))
    p = default_params()
    p.update(log=False, height=64, width=48)
    out.append(("sc-nolog-64x48", "sc", p,
                ["--no-log", "--height=64", "--width=48"]))
    out.append(("gtzan", "gtzan", default_params(), []))
    p = default_params()
    p.update(htk=True, height=128, width=250, log_offset=np.float64(np.float32(1e-3)),
             mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0])
    out.append(("gtzan-htk-128x250", "gtzan", p,
                ["--htk", "--height=128", "--width=250", "--log-offset=1e-3",
                 "--mean=1,2,3", "--std=4,5,6"]))
    return out


def reference(kind, x, p):
    if kind == "vggish":
        return vggish(x)
    if kind == "sc":
        return sc(x, p)
    return gtzan(x, p)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", required=True, help="features-dump program")
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    check_librosa_mel_matrix()

    inputs = {}
    for sr, n in ((16000, 16000), (22050, 66150)):
        for name, x in signals(sr, n).items():
            path = os.path.join(args.workdir, f"signal-{sr}-{name}.npy")
            np.save(path, x)
            inputs[(sr, name)] = (path, x)

    failures = []
    print(f"{'case':<20} {'signal':<8} {'shape':<18} {'max abs err':>12}")
    for case, kind, p, options in cases():
        sr = 22050 if kind == "gtzan" else 16000
        names = ["sweep", "noise", "silence", "clipped"]
        cmd = [args.dump, f"--kind={kind}"] + options
        outs = {}
        for name in names:
            outs[name] = os.path.join(args.workdir, f"{case}-{name}.npy")
            cmd += [inputs[(sr, name)][0], outs[name]]
        subprocess.run(cmd, check=True)
        for name in names:
            got = np.load(outs[name])
            want = reference(kind, inputs[(sr, name)][1], p)
            if got.shape != want.shape:
                failures.append(f"{case}/{name}: shape {got.shape}, reference "
                                f"{want.shape}")
                continue
            err = np.abs(got.astype(np.float64) - want)
            # Without log the values are magnitudes up to ~1e2: compare relative
            # to the largest one.
            scale = 1.0 if (p is None or p["log"]) else max(1.0, np.abs(want).max())
            worst = np.unravel_index(np.argmax(err), err.shape)
            print(f"{case:<20} {name:<8} {str(got.shape):<18} {err.max():12.3e}"
                  + ("" if scale == 1.0 else f" (scale {scale:.3g})"))
            if not err.max() <= TOLERANCE * scale:
                failures.append(f"{case}/{name}: max abs error {err.max():.3e} > "
                                f"{TOLERANCE * scale:.1e} at {worst}: C "
                                f"{got[worst]:.7g}, reference {want[worst]:.7g}")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures), file=sys.stderr)
        return 1
    print("all feature cases within", TOLERANCE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
