#!/usr/bin/env python3
"""Runs `earlyexit features` on WAV files written here (wave module, 16-bit)
and checks the .npy against features_ref.py, plus the CLI's documented
behaviour: stereo averaged to mono, --hop windows, zero-padding of a short file,
the wrong-rate and usage errors.

    features_cli.py EARLYEXIT WORKDIR
"""
import os
import subprocess
import sys
import wave

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import features_ref as ref  # noqa: E402


def write_wav(path, rate, data):
    """data: (frames, channels) float in [-1, 1) -> 16-bit PCM; returns what a
    reader gets back as float32 (int16 / 32768)."""
    pcm = np.clip(np.round(data * 32768.0), -32768, 32767).astype("<i2")
    with wave.open(path, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return pcm.astype(np.float32) / np.float32(32768.0)


def tone_mix(rate, n, channels):
    t = np.arange(n) / rate
    rng = np.random.default_rng(5)
    cols = [0.5 * np.sin(2 * np.pi * (300.0 + 500.0 * c) * t)
            + 0.1 * rng.uniform(-1, 1, n) for c in range(channels)]
    return np.stack(cols, axis=1)


class Checker:
    def __init__(self, exe, workdir):
        self.exe, self.workdir, self.failures = exe, workdir, []

    def run(self, *args):
        return subprocess.run([self.exe, "features", *args], capture_output=True,
                              text=True)

    def expect(self, cond, what):
        print(("ok   " if cond else "FAIL ") + what)
        if not cond:
            self.failures.append(what)

    def compare(self, what, out, want):
        got = np.load(out)
        if got.shape != want.shape:
            self.expect(False, f"{what}: shape {got.shape}, expected {want.shape}")
            return
        err = np.abs(got.astype(np.float64) - want).max()
        self.expect(err <= ref.TOLERANCE, f"{what}: max abs error {err:.3e}")


def main():
    exe, workdir = sys.argv[1], sys.argv[2]
    os.makedirs(workdir, exist_ok=True)
    c = Checker(exe, workdir)
    path = lambda name: os.path.join(workdir, name)  # noqa: E731

    # Stereo 1.5 s at 16 kHz: averaged to mono; first window, then --hop.
    stereo = write_wav(path("stereo.wav"), 16000, tone_mix(16000, 24000, 2))
    mono = ((stereo[:, 0].astype(np.float64) + stereo[:, 1]) / 2).astype(np.float32)
    r = c.run("--kind", "vggish", "--audio", path("stereo.wav"),
              "--out", path("stereo.npy"))
    c.expect(r.returncode == 0, f"vggish stereo runs (rc {r.returncode}) {r.stderr.strip()}")
    c.expect("first 1.000 s of 1.500 s" in r.stderr, "note about the ignored tail")
    if r.returncode == 0:
        c.compare("vggish stereo first window", path("stereo.npy"),
                  ref.vggish(mono[:16000]))

    r = c.run("--kind", "vggish", "--audio", path("stereo.wav"),
              "--out", path("hop.npy"), "--hop", "4000")
    c.expect(r.returncode == 0, f"vggish --hop runs (rc {r.returncode}) {r.stderr.strip()}")
    if r.returncode == 0:
        want = np.concatenate([ref.vggish(mono[s:s + 16000])
                               for s in (0, 4000, 8000)])
        c.compare("vggish --hop 4000 (3 windows)", path("hop.npy"), want)

    # Mono 0.5 s: zero-padded to 1 s with a warning.
    short = write_wav(path("short.wav"), 16000, tone_mix(16000, 8000, 1))[:, 0]
    r = c.run("--kind", "sc", "--audio", path("short.wav"), "--out",
              path("short.npy"))
    c.expect(r.returncode == 0 and "zero-padded" in r.stderr,
             f"sc short file padded with a warning (rc {r.returncode})")
    if r.returncode == 0:
        padded = np.concatenate([short, np.zeros(8000, np.float32)])
        c.compare("sc zero-padded", path("short.npy"),
                  ref.sc(padded, ref.default_params()))

    # GTZAN with switches.
    music = write_wav(path("music.wav"), 22050, tone_mix(22050, 66150, 1))[:, 0]
    r = c.run("--kind", "gtzan", "--audio", path("music.wav"), "--out",
              path("music.npy"), "--mel-scale", "htk", "--height", "64",
              "--width", "96")
    c.expect(r.returncode == 0, f"gtzan runs (rc {r.returncode}) {r.stderr.strip()}")
    if r.returncode == 0:
        p = ref.default_params()
        p.update(htk=True, height=64, width=96)
        c.compare("gtzan htk 64x96", path("music.npy"), ref.gtzan(music, p))

    # Errors.
    r = c.run("--kind", "vggish", "--audio", path("music.wav"), "--out",
              path("wrong.npy"))
    c.expect(r.returncode == 1 and "22050 Hz" in r.stderr
             and "16000 Hz" in r.stderr and "resample" in r.stderr
             and not os.path.exists(path("wrong.npy")),
             f"wrong rate is an error that says to resample: {r.stderr.strip()}")
    r = c.run("--kind", "mfcc", "--audio", path("music.wav"), "--out",
              path("wrong.npy"))
    c.expect(r.returncode == 2 and "--kind" in r.stderr,
             f"unknown kind is a usage error: {r.stderr.strip()}")
    r = c.run("--kind", "sc", "--audio", path("missing.wav"), "--out",
              path("wrong.npy"))
    c.expect(r.returncode == 1 and "missing.wav" in r.stderr,
             f"missing file names the file: {r.stderr.strip()}")

    if c.failures:
        print(f"{len(c.failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
