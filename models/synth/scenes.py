#!/usr/bin/env python3
"""Synthetic audiovisual crowd scenes for training and testing AudioCSRNet.

No real crowd data set can be downloaded where gst-earlyexit is built, so the
default model is trained on scenes this module draws. Everything is a function
of a seed (numpy's PCG64), so a scene, a data set or a clip is the same on every
machine with the same numpy.

A scene (256x144 RGB, the default model's input size):
- a ground plane in perspective (a horizon, floor tiles converging to it, a
  noise texture) under a wall or skyline of random blocks;
- N people (0..MAX_PEOPLE) drawn back to front as legs, torso and head, their
  height proportional to their depth below the horizon, spread uniformly or in
  a few groups; a few round distractors (lamps, balls) that are not people;
- the AudioCSRNet paper's "extreme" conditions: low illumination (brightness
  factor, then Gaussian sensor noise, rounded to 8 bits), and black occlusion
  patches;
- ground truth: head centres (those inside the frame count) and a density map
  made with the paper's recipe, a 15x15 Gaussian with sigma 4 per head
  (clipped to the frame and renormalised, so it sums to N).

Its ambient audio (1 s, 16 kHz mono float32): crowd babble whose level and
modulation depend on who talks (each person talks some of the time, louder
when near the camera; the babble is noise shaped like speech whose power
follows the sum of the talkers' syllable envelopes, plus harmonic voices for
the nearest talkers), over background noise (brown rumble, a hum, random
level), with a random microphone gain. More people: louder, steadier babble,
as in DISCO, where audio carries information about the count.

    python3 models/synth/scenes.py scene --seed 7 --out scene.png
    python3 models/synth/scenes.py clip --kind test --seed 2000000 --out DIR
    python3 models/synth/scenes.py clip --kind demo --seed 1 --out DIR

`clip` writes DIR/frames.rgb (raw RGB, 256x144), DIR/audio.f32 (raw float32,
16 kHz mono), DIR/truth.json and, with --mkv, DIR/clip.mkv (raw RGB video +
FLAC, made with gst-launch-1.0), which is what the tests and the demo play.
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np

WIDTH, HEIGHT = 256, 144
RATE = 16000
MAX_PEOPLE = 250
KERNEL_SIZE, KERNEL_SIGMA = 15, 4.0
LIGHTS = ("normal", "low")
# Seeds: training scenes 0.., validation VAL_SEED0.., the held-out test set
# (models/synth/report.py, tests/gst/test_trained_model.py) TEST_SEED0..
VAL_SEED0 = 1_000_000
TEST_SEED0 = 2_000_000


# ----------------------------------------------------------------- geometry

def _camera(rng):
    """Horizon row and the height (px) of a person whose feet are on the bottom
    row; a person's height is proportional to the depth of its feet below the
    horizon (a flat ground plane seen by a level pinhole camera)."""
    return {"horizon": rng.uniform(0.22, 0.42) * HEIGHT,
            "h_bottom": rng.uniform(36.0, 62.0)}


def _height_at(cam, y_foot):
    return cam["h_bottom"] * (y_foot - cam["horizon"]) / (HEIGHT - cam["horizon"])


def _ground_points(rng, cam, n, groups):
    """n feet positions, uniform per ground area (or in Gaussian groups).
    Depth z is 1 at the bottom row; rows nearer the horizon are farther."""
    # the farthest people are about 5 px tall
    z_far = cam["h_bottom"] / 5.0
    if groups:
        k = rng.integers(1, 4)
        centres = np.stack([rng.uniform(-0.8, 0.8, k), rng.uniform(1.1, z_far * 0.7, k)], 1)
        spread = rng.uniform(0.08, 0.35, k)
        which = rng.integers(0, k, n)
        z = np.abs(centres[which, 1] + rng.normal(0, 1, n) * spread[which] * centres[which, 1])
        u = centres[which, 0] + rng.normal(0, 1, n) * spread[which]
        z = np.clip(z, 0.95, z_far)
    else:
        # p(z) proportional to z (the visible width grows with depth)
        z = np.sqrt(rng.uniform(0.9 ** 2, z_far ** 2, n))
        u = rng.uniform(-1.05, 1.05, n)
    y_foot = cam["horizon"] + (HEIGHT - cam["horizon"]) / z
    x = WIDTH / 2 + u * WIDTH / 2
    return x, y_foot


# ----------------------------------------------------------------- drawing

_GRID_Y, _GRID_X = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)


def _smooth_noise(rng, scale):
    """Low-frequency noise in [-1, 1] (bilinear upsampling of a coarse grid)."""
    gh, gw = max(2, HEIGHT // scale + 2), max(2, WIDTH // scale + 2)
    g = rng.uniform(-1, 1, (gh, gw)).astype(np.float32)
    ys = _GRID_Y / scale
    xs = _GRID_X / scale
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = ys - y0, xs - x0
    return (g[y0, x0] * (1 - fy) * (1 - fx) + g[y0 + 1, x0] * fy * (1 - fx)
            + g[y0, x0 + 1] * (1 - fy) * fx + g[y0 + 1, x0 + 1] * fy * fx)


def _background(rng, cam):
    img = np.empty((HEIGHT, WIDTH, 3), np.float32)
    hz = cam["horizon"]
    # wall / skyline: a vertical gradient and random blocks with windows
    top = rng.uniform(60, 200, 3)
    bottom = rng.uniform(60, 200, 3)
    t = np.clip(_GRID_Y / max(hz, 1.0), 0, 1)[..., None]
    img[:] = top * (1 - t) + bottom * t
    for _ in range(rng.integers(2, 9)):
        x0 = rng.uniform(-20, WIDTH)
        w = rng.uniform(15, 80)
        y0 = rng.uniform(-10, hz * 0.8)
        m = (_GRID_X >= x0) & (_GRID_X < x0 + w) & (_GRID_Y >= y0) & (_GRID_Y < hz)
        colour = rng.uniform(40, 220, 3)
        img[m] = colour
        win = m & ((_GRID_X - x0) % 7 < 3) & ((_GRID_Y - y0) % 9 < 4)
        img[win] = colour * rng.uniform(0.5, 1.4)
    # ground: tiles converging to the horizon plus texture
    below = _GRID_Y > hz
    z = (HEIGHT - hz) / np.maximum(_GRID_Y - hz, 0.5)
    u = (_GRID_X - WIDTH / 2) / (WIDTH / 2) * z
    tile = rng.uniform(0.15, 0.5)
    checker = ((np.floor(u / tile) + np.floor(z / tile)) % 2) * 2 - 1
    ground = rng.uniform(50, 190, 3)
    contrast = rng.uniform(0.0, 0.15)
    g = ground * (1 + contrast * checker)[..., None]
    img[below] = g[below]
    img *= (1 + 0.12 * _smooth_noise(rng, 24))[..., None]
    img += rng.normal(0, rng.uniform(2, 8), (HEIGHT, WIDTH, 1)).astype(np.float32)
    return img


def _blend(img, y0, x0, cover, colour):
    """Paints colour with per-pixel coverage `cover` (a small array at y0, x0),
    clipped to the frame."""
    h, w = cover.shape
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(HEIGHT, y0 + h), min(WIDTH, x0 + w)
    if ya >= yb or xa >= xb:
        return
    c = cover[ya - y0:yb - y0, xa - x0:xb - x0, None]
    region = img[ya:yb, xa:xb]
    region *= 1 - c
    region += c * colour


def _ellipse(cx, cy, rx, ry):
    """Antialiased coverage of an ellipse: (y0, x0, array)."""
    x0, y0 = int(math.floor(cx - rx - 1)), int(math.floor(cy - ry - 1))
    x1, y1 = int(math.ceil(cx + rx + 1)), int(math.ceil(cy + ry + 1))
    ys = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5
    d = np.sqrt(((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2)
    # distance to the edge in pixels, roughly
    cover = np.clip((1 - d) * min(rx, ry) + 0.5, 0, 1)
    return y0, x0, cover


SKIN = np.array([[224, 172, 140], [198, 134, 66], [141, 85, 36], [255, 219, 172],
                 [92, 58, 40]], np.float32)


def _person(img, rng, x, y_foot, h):
    """Legs, torso and head of a person h px tall standing at (x, y_foot).
    Returns the head centre."""
    shirt = rng.uniform(20, 240, 3)
    pants = rng.uniform(10, 120, 3)
    skin = SKIN[rng.integers(0, len(SKIN))] * rng.uniform(0.85, 1.1)
    hair = rng.uniform(10, 90, 3) if rng.random() < 0.8 else skin
    lw = max(0.6, 0.055 * h)
    step = rng.uniform(-0.06, 0.06) * h
    for side in (-1, 1):
        _blend(img, *_ellipse(x + side * 0.05 * h + side * step * 0.5, y_foot - 0.23 * h,
                              lw, 0.23 * h), pants)
    _blend(img, *_ellipse(x, y_foot - 0.6 * h, 0.13 * h + 0.3, 0.19 * h + 0.3), shirt)
    hx, hy = x + rng.normal(0, 0.01) * h, y_foot - 0.87 * h
    r = max(0.7, 0.085 * h)
    _blend(img, *_ellipse(hx, hy, r, r * 1.1), skin)
    if h > 14:  # hair on the top half of the head
        y0, x0, c = _ellipse(hx, hy - 0.35 * r, r, r * 0.7)
        c[int(round(c.shape[0] * 0.55)):] = 0
        _blend(img, y0, x0, c, hair)
    return hx, hy


def _distractors(img, rng, cam):
    """Round things that are not heads: lamps, balls, signs on poles."""
    for _ in range(rng.integers(0, 6)):
        y = rng.uniform(cam["horizon"] + 2, HEIGHT)
        x = rng.uniform(0, WIDTH)
        h = _height_at(cam, y)
        if rng.random() < 0.5:  # a pole with a lamp
            _blend(img, *_ellipse(x, y - 0.7 * h, 0.03 * h + 0.4, 0.7 * h), rng.uniform(30, 90, 3))
            _blend(img, *_ellipse(x, y - 1.4 * h, 0.1 * h, 0.1 * h), rng.uniform(150, 255, 3))
        else:  # a ball or a bollard on the ground
            r = rng.uniform(0.05, 0.15) * h
            _blend(img, *_ellipse(x, y - r, r + 0.3, r + 0.3), rng.uniform(20, 240, 3))


def density_map(heads, kernel_size=KERNEL_SIZE, sigma=KERNEL_SIGMA):
    """(HEIGHT, WIDTH) float32: a 15x15 Gaussian (sigma 4) per head, clipped to
    the frame and renormalised, so the map sums to the number of heads."""
    d = np.zeros((HEIGHT, WIDTH), np.float64)
    r = kernel_size // 2
    k1 = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel = np.outer(k1, k1)
    for hx, hy in heads:
        cx, cy = int(math.floor(hx)), int(math.floor(hy))
        y0, y1 = max(0, cy - r), min(HEIGHT, cy + r + 1)
        x0, x1 = max(0, cx - r), min(WIDTH, cx + r + 1)
        k = kernel[y0 - cy + r:y1 - cy + r, x0 - cx + r:x1 - cx + r]
        d[y0:y1, x0:x1] += k / k.sum()
    return d.astype(np.float32)


def pool_density(d, s=8):
    """Sum over s x s cells: the target for a network whose map is 1/s the size."""
    h, w = d.shape
    return d.reshape(h // s, s, w // s, s).sum(axis=(1, 3))


# ----------------------------------------------------------------- conditions

def sample_conditions(rng, light=None):
    """The 'extreme' conditions of the AudioCSRNet paper, drawn per scene."""
    light = light or ("low" if rng.random() < 0.4 else "normal")
    if light == "low":
        brightness, sigma = rng.uniform(0.08, 0.25), rng.uniform(4.0, 14.0)
    else:
        brightness, sigma = rng.uniform(0.7, 1.3), rng.uniform(0.0, 4.0)
    occl = []
    if rng.random() < 0.25:
        for _ in range(rng.integers(1, 3)):
            area = rng.uniform(0.03, 0.15) * WIDTH * HEIGHT
            aspect = rng.uniform(0.5, 2.0)
            w = min(WIDTH, math.sqrt(area * aspect))
            h = min(HEIGHT, area / w)
            occl.append((rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h), w, h))
    return {"light": light, "brightness": float(brightness), "noise_sigma": float(sigma),
            "occlusions": occl}


def apply_conditions(img, rng, cond):
    """Brightness factor, Gaussian noise (rounded to 8 bits, clipped), black
    rectangles: the order of the reference code's degradations."""
    out = np.clip(img, 0, 255) * cond["brightness"]
    out = np.round(out)
    out += rng.normal(0, 1, out.shape).astype(np.float32) * cond["noise_sigma"]
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    for x, y, w, h in cond["occlusions"]:
        out[int(y):int(y + h), int(x):int(x + w)] = 0
    return out


# ----------------------------------------------------------------- audio

def _speech_shape(n):
    """Magnitude response of a long-term speech spectrum for an n-point rfft at
    16 kHz: rises to about 500 Hz, falls off above, nothing below 100 Hz."""
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = (f / 500.0) ** 1.0 / (1 + (f / 500.0) ** 2.2)
    shape[f < 100] = 0
    shape[f > 6000] *= np.exp(-(f[f > 6000] - 6000) / 800)
    return shape


def _shaped_noise(rng, n, shape_fn):
    spec = np.fft.rfft(rng.normal(0, 1, n)) * shape_fn(n)
    x = np.fft.irfft(spec, n)
    return x / (np.std(x) + 1e-12)


def talkers_for(rng, heights, chattiness):
    """Per person: talks at all (prob chattiness), loudness (from its size, i.e.
    its distance), pitch, syllable rate and phase, turn pattern."""
    n = len(heights)
    return {
        "gain": np.asarray(heights, np.float64) / 40.0,
        "active": rng.random(n) < chattiness,
        "f0": rng.uniform(95, 250, n),
        "rate": rng.uniform(3.0, 6.0, n),
        "phase": rng.uniform(0, 2 * np.pi, n),
        "turn_rate": rng.uniform(0.2, 0.8, n),
        "turn_phase": rng.uniform(0, 2 * np.pi, n),
    }


def _envelopes(tk, times):
    """(n_talkers, len(times)) syllable envelopes in [0, 1]: syllables at 3-6 Hz
    gated by slower turns (on about half the time)."""
    t = times[None, :]
    syl = np.maximum(0, np.sin(2 * np.pi * tk["rate"][:, None] * t + tk["phase"][:, None])) ** 1.5
    turn = np.sin(2 * np.pi * tk["turn_rate"][:, None] * t + tk["turn_phase"][:, None]) > -0.2
    return syl * turn * tk["active"][:, None]


BABBLE_LEVEL = 0.02  # babble amplitude of one talker 40 px tall, talking


def render_audio(rng, tk, t0, n_samples, present=None, background=None):
    """n_samples of babble + background starting at time t0 (s).
    present: optional (n_talkers, n_env) mask at 100 Hz over the same span."""
    n_env = int(math.ceil(n_samples / 160)) + 1
    t_env = t0 + np.arange(n_env) / 100.0
    env = _envelopes(tk, t_env)
    if present is not None:
        env = env * present
    g2 = tk["gain"][:, None] ** 2
    power = (g2 * env ** 2).sum(0)  # babble power at 100 Hz
    ts = np.arange(n_samples) / RATE
    power_s = np.interp(ts, np.arange(n_env) / 100.0, power)
    babble = _shaped_noise(rng, n_samples, _speech_shape) * np.sqrt(power_s) * BABBLE_LEVEL
    # harmonic voices for the four loudest talkers
    loud = np.argsort(-(g2[:, 0] * env.mean(1)))[:4]
    for i in loud:
        if env[i].max() <= 0:
            continue
        e = np.interp(ts, np.arange(n_env) / 100.0, env[i])
        f0 = tk["f0"][i] * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * (ts + t0) + tk["phase"][i]))
        ph = 2 * np.pi * np.cumsum(f0) / RATE
        v = sum(np.sin(k * ph) / k for k in range(1, 9))
        babble += v * e * tk["gain"][i] * BABBLE_LEVEL * 0.6
    bg = background or {}
    rumble = _shaped_noise(rng, n_samples, lambda n: 1 / np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20))
    out = babble + rumble * bg.get("rumble", 0.01)
    hum = bg.get("hum", 0.0)
    if hum:
        out += hum * np.sin(2 * np.pi * bg.get("hum_hz", 50) * (ts + t0))
    out *= bg.get("gain", 1.0)
    return np.clip(out, -1, 1).astype(np.float32)


def sample_background(rng):
    return {"rumble": 10 ** rng.uniform(-2.6, -1.6), "hum": 10 ** rng.uniform(-3.5, -2.2)
            if rng.random() < 0.5 else 0.0, "hum_hz": float(rng.choice([50, 60])),
            "gain": 10 ** (rng.uniform(-4, 4) / 20)}


# ----------------------------------------------------------------- scenes

def sample_count(rng):
    """Half uniform over 0..MAX_PEOPLE, half log-uniform (more small crowds)."""
    if rng.random() < 0.5:
        return int(rng.integers(0, MAX_PEOPLE + 1))
    return int(min(MAX_PEOPLE, math.floor(math.exp(rng.uniform(0, math.log(MAX_PEOPLE + 1)))) - 1))


def make_scene(seed, light=None, count=None):
    """One scene. Returns a dict: image (HEIGHT, WIDTH, 3) uint8, audio (16000,)
    float32, heads (K, 2) inside the frame, count K, density (HEIGHT, WIDTH)
    float32 and the conditions."""
    rng = np.random.default_rng(seed)
    n = sample_count(rng) if count is None else count
    cam = _camera(rng)
    cond = sample_conditions(rng, light)
    img = _background(rng, cam)
    _distractors(img, rng, cam)
    x, y = _ground_points(rng, cam, n, groups=rng.random() < 0.5)
    hts = _height_at(cam, y)
    order = np.argsort(y)  # far (small y) first
    heads = []
    for i in order:
        heads.append(_person(img, rng, x[i], y[i], hts[i]))
    heads = np.array([(hx, hy) for hx, hy in heads
                      if 0 <= hx < WIDTH and 0 <= hy < HEIGHT], np.float64).reshape(-1, 2)
    image = apply_conditions(img, rng, cond)
    tk = talkers_for(rng, hts, rng.uniform(0.25, 0.6))
    audio = render_audio(rng, tk, rng.uniform(0, 100), RATE, background=sample_background(rng))
    return {"image": image, "audio": audio, "heads": heads, "count": len(heads),
            "density": density_map(heads), "conditions": cond}


# ----------------------------------------------------------------- clips

def test_scene(seed0, i):
    """Scene i of the held-out test set that starts at seed seed0: normal light
    for even i, low light for odd i."""
    return make_scene(seed0 + i, light=LIGHTS[i % 2])


def test_clip(seed0, n_scenes, fps=1):
    """The test scenes seed0.. (test_scene) one second apart, after a warm-up
    scene (seed seed0 - 1) at 0 s, which has only half its window and is not
    scored. Frame k is at k s; its scene's audio fills [k - 0.5, k + 0.5), so
    the element's 1 s window centred on frame k is exactly that audio."""
    frames, truth = [], []
    audio = np.zeros(int((n_scenes + 1.5) * RATE), np.float32)
    for k in range(n_scenes + 1):
        s = make_scene(seed0 - 1) if k == 0 else test_scene(seed0, k - 1)
        light = s["conditions"]["light"]
        frames.append(s["image"])
        a0 = int((k - 0.5) * RATE)
        seg = s["audio"][max(0, -a0):]
        audio[max(0, a0):max(0, a0) + len(seg)] = seg
        truth.append({"frame": k, "pts": k / fps, "count": s["count"], "light": light,
                      "scored": k > 0})
    return frames, audio, truth


def demo_clip(seed, seconds=16, fps=5):
    """One place over time: people walk in and out (the crowd grows to about
    200 and thins out again), the light goes down for the middle third and the
    audio is one continuous recording of the same people talking."""
    rng = np.random.default_rng(seed)
    cam = _camera(rng)
    bg_rng = np.random.default_rng(seed + 1)
    base = _background(bg_rng, cam)
    _distractors(base, bg_rng, cam)
    n_all = 260
    x, y = _ground_points(rng, cam, n_all, groups=False)
    # arrival and departure times: a crowd that peaks in the middle of the clip
    mid = seconds / 2
    arrive = mid + rng.normal(0, 1, n_all) * seconds * 0.28 - seconds * 0.22
    stay = rng.uniform(0.15, 0.6, n_all) * seconds
    leave = arrive + stay
    vx = rng.normal(0, 6, n_all)  # px/s at the bottom row, scaled by depth below
    person_seeds = rng.integers(0, 2 ** 31, n_all)
    hts = _height_at(cam, y)
    tk = talkers_for(rng, hts, 0.45)
    bg = sample_background(rng)
    bg["gain"] = 1.0
    frames, truth = [], []
    n_frames = seconds * fps
    for f in range(n_frames):
        t = f / fps
        light = "low" if seconds / 3 <= t < 2 * seconds / 3 else "normal"
        cond = sample_conditions(rng, light)
        cond["occlusions"] = []
        img = base.copy()
        here = np.flatnonzero((arrive <= t) & (t < leave))
        heads = []
        for i in here[np.argsort(y[here])]:
            xi = x[i] + vx[i] * (t - arrive[i]) * hts[i] / cam["h_bottom"]
            heads.append(_person(img, np.random.default_rng(person_seeds[i]), xi, y[i], hts[i]))
        heads = [(hx, hy) for hx, hy in heads if 0 <= hx < WIDTH and 0 <= hy < HEIGHT]
        frames.append(apply_conditions(img, rng, cond))
        truth.append({"frame": f, "pts": t, "count": len(heads), "light": light, "scored": True})
    n_samples = int((seconds + 0.5) * RATE)
    n_env = int(math.ceil(n_samples / 160)) + 1
    t_env = np.arange(n_env) / 100.0
    present = (arrive[:, None] <= t_env[None, :]) & (t_env[None, :] < leave[:, None])
    audio = render_audio(rng, tk, 0.0, n_samples, present=present, background=bg)
    return frames, audio, truth


def write_clip(out, frames, audio, truth, fps, info, mkv=False):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "frames.rgb"), "wb") as f:
        for fr in frames:
            f.write(np.ascontiguousarray(fr).tobytes())
    audio.astype("<f4").tofile(os.path.join(out, "audio.f32"))
    if mkv:
        encode_mkv(out, fps)
    # last: a folder with truth.json is complete
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump({"width": WIDTH, "height": HEIGHT, "fps": fps, "rate": RATE,
                   "frames": truth, **info}, f, indent=1)


def encode_mkv(out, fps):
    """DIR/clip.mkv from the raw files: uncompressed RGB (decoded frames are
    the generated ones, bit for bit: chroma subsampling would smear the
    farthest heads, 1 or 2 px wide) + 24-bit FLAC."""
    cmd = ["gst-launch-1.0", "-q", "-e",
           "filesrc", f"location={os.path.join(out, 'frames.rgb')}", "!",
           "rawvideoparse", "format=rgb", f"width={WIDTH}", f"height={HEIGHT}",
           f"framerate={fps}/1", "!", "queue", "!", "mux.",
           "filesrc", f"location={os.path.join(out, 'audio.f32')}", "!",
           "rawaudioparse", "format=pcm", "pcm-format=f32le", f"sample-rate={RATE}",
           "num-channels=1", "!", "audioconvert", "!", "audio/x-raw,format=S24LE", "!", "flacenc", "!", "queue", "!", "mux.",
           "matroskamux", "name=mux", "!", "filesink",
           f"location={os.path.join(out, 'clip.mkv')}"]
    subprocess.run(cmd, check=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("scene", help="one scene as PNG + WAV + JSON")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--light", choices=LIGHTS)
    p.add_argument("--count", type=int)
    p.add_argument("--out", required=True, help="PNG path; .wav and .json beside it")
    p = sub.add_parser("clip", help="a clip (raw files, truth.json, optional MKV)")
    p.add_argument("--kind", choices=["test", "demo"], required=True)
    p.add_argument("--seed", type=int, required=True,
                   help=f"test clips: the first scene's seed (the report's: {TEST_SEED0})")
    p.add_argument("--scenes", type=int, default=25, help="test clips: scenes after the warm-up")
    p.add_argument("--seconds", type=int, default=16, help="demo clips: length")
    p.add_argument("--fps", type=int, default=5, help="demo clips: frames per second")
    p.add_argument("--mkv", action="store_true")
    p.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "scene":
        from PIL import Image  # python3-pil, which python3-torchvision pulls in
        s = make_scene(args.seed, args.light, args.count)
        Image.fromarray(s["image"]).save(args.out)
        base = os.path.splitext(args.out)[0]
        import wave
        with wave.open(base + ".wav", "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes((np.clip(s["audio"], -1, 1) * 32767).astype("<i2").tobytes())
        with open(base + ".json", "w") as f:
            json.dump({"count": s["count"], "heads": s["heads"].tolist(),
                       "conditions": s["conditions"]}, f)
        print(f"{args.out}: {s['count']} people, {s['conditions']['light']} light")
        return 0
    if args.kind == "test":
        frames, audio, truth = test_clip(args.seed, args.scenes)
        fps = 1
    else:
        fps = args.fps
        frames, audio, truth = demo_clip(args.seed, args.seconds, fps)
    write_clip(args.out, frames, audio, truth, fps,
               {"kind": args.kind, "seed": args.seed,
                "generator": "models/synth/scenes.py"}, mkv=args.mkv)
    print(f"{args.out}: {len(frames)} frames, counts "
          + " ".join(str(t["count"]) for t in truth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
