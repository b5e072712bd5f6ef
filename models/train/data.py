"""Data sets of earlyexit-train: what a sample's network input is, computed as
the engine computes it, and its target.

Layouts (docs/your-own-model.md):
- images: DIR/<class>/*.png|jpg|jpeg|bmp (torchvision ImageFolder);
- audio: DIR/<class>/*.wav (Speech Commands: one 1 s clip per file; GTZAN: the
  first 3 s of each file), through the project's feature definitions;
- crowd: the AudioCSRNet reference code's layout, DIR/imgs/ID.jpg,
  DIR/auds/ID.wav (1 s) and, per sample, either DIR/density/{train,test}/ID.mat
  (its density map, key `map`) or DIR/labels/*_ID.txt (head positions "x y",
  one a line), from which the density map is made as the reference code makes
  it (15x15 Gaussian, sigma 4).

For images and audio, DIR/train/<class> and DIR/val/<class> give the split;
otherwise a seeded share of each class is held out.
"""
import os
import re
import sys
import wave

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
# the numpy features that tests/features checks the engine's C extractor
# against (1e-4), so that exits learn on the features the engine makes
sys.path.insert(0, os.path.join(ROOT, "tests", "features"))
import features_ref  # noqa: E402

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
AUDIO_EXT = (".wav",)
# the engine's feature windows: rate and samples per window
FEATURE_WINDOW = {"sc": (16000, 16000), "gtzan": (22050, 66150), "vggish": (16000, 16000)}


class DataError(Exception):
    pass


# ----------------------------------------------------------------- listing

def _class_folder(root, ext):
    if not os.path.isdir(root):
        raise DataError(f"{root}: not a folder")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<files>)")
    items = []
    for i, c in enumerate(classes):
        files = sorted(f for f in os.listdir(os.path.join(root, c))
                       if f.lower().endswith(ext))
        if not files:
            raise DataError(f"{root}/{c}: no {'/'.join(ext)} files")
        items += [(os.path.join(root, c, f), i) for f in files]
    return classes, items


def class_folders(root, ext, val_fraction, seed):
    """(classes, train items, val items); items are (path, class index)."""
    tr, va = os.path.join(root, "train"), os.path.join(root, "val")
    if os.path.isdir(tr) and os.path.isdir(va):
        classes, train = _class_folder(tr, ext)
        vclasses, val = _class_folder(va, ext)
        if vclasses != classes:
            raise DataError(f"{va} has classes {vclasses}, {tr} has {classes}")
        return classes, train, val
    classes, items = _class_folder(root, ext)
    if len(classes) < 2:
        raise DataError(f"{root}: one class folder; a classifier needs two or more")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for i in range(len(classes)):
        mine = [it for it in items if it[1] == i]
        order = rng.permutation(len(mine))
        n_val = max(1, int(round(val_fraction * len(mine)))) if len(mine) > 1 else 0
        val += [mine[k] for k in sorted(order[:n_val])]
        train += [mine[k] for k in sorted(order[n_val:])]
    return classes, train, val


# ----------------------------------------------------------------- inputs

def preprocess_pixels(img, cfg):
    """(H, W, 3) RGB pixel values -> (3, H, W) float32 network input
    (docs/model-format.md `preprocess`)."""
    p = cfg["preprocess"]
    img = np.asarray(img, np.float64)
    if p["channel_order"] == "bgr":
        img = img[:, :, ::-1]
    x = (img * p["scale"] - np.array(p["mean"])) / np.array(p["std"])
    return np.ascontiguousarray(x.transpose(2, 0, 1), np.float32)


def load_image(path, cfg):
    """An image file's RGB pixels (H, W, 3) float64 at the model input size,
    resized as the engine resizes (bilinear with half-pixel centres, no
    antialiasing: PyTorch's align_corners=False)."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"), np.float64)
    except OSError as exc:
        raise DataError(f"{path}: cannot read the image ({exc})") from exc
    h, w = cfg["input_height"], cfg["input_width"]
    if rgb.shape[:2] == (h, w):
        return rgb
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
    t = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)
    return t[0].numpy().transpose(1, 2, 0)


def read_wav(path, rate, samples):
    """The first `samples` samples of a WAV file at `rate` Hz, mono float32
    (PCM 8/16/24/32-bit; other rates resampled with resampy; zero-padded)."""
    try:
        with wave.open(path, "rb") as w:
            sr, ch, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            raw = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise DataError(f"{path}: not a PCM WAV file ({exc})") from exc
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128) / 128
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
    else:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    x = x.reshape(-1, ch).mean(axis=1)
    if sr != rate:
        import resampy
        x = resampy.resample(x[:int(np.ceil(samples * sr / rate)) + 64], sr, rate)
    x = x[:samples]
    if len(x) < samples:
        x = np.concatenate([x, np.zeros(samples - len(x), np.float32)])
    return x.astype(np.float32)


def audio_input(path, cfg):
    """(3, H, W) float32 network input of an audio classifier from a clip."""
    f = cfg["audio_features"]
    rate, n = FEATURE_WINDOW[f["kind"]]
    p = {"log": f["log"], "log_offset": np.float64(np.float32(f["log_offset"])),
         "htk": f["mel_scale"] == "htk", "height": cfg["input_height"],
         "width": cfg["input_width"], "mean": f["mean"], "std": f["std"]}
    x = read_wav(path, rate, n)
    fn = features_ref.sc if f["kind"] == "sc" else features_ref.gtzan
    return fn(x, p)[0].astype(np.float32)


def logmel(path):
    """(96, 64) VGGish log-mel of a clip's first second (AudioCSRNet's audio input)."""
    return features_ref.vggish(read_wav(path, 16000, 16000))[0, 0].astype(np.float32)


# ----------------------------------------------------------------- crowd

def gaussian_kernel(size=15, sigma=4.0):
    """MATLAB fspecial('gaussian'), as the reference code's density maps use."""
    m = (size - 1) / 2
    y, x = np.ogrid[-m:m + 1, -m:m + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    return h / h.sum()


def density_map(points, height, width, size=15, sigma=4.0):
    """The reference code's density map of head points (x, y) in pixels: a
    kernel per head, cut at the borders (its window stops one pixel short of
    the last row and column, as the reference code's does), so that its sum is
    the count the reference code trains on."""
    d = np.zeros((height, width))
    k = gaussian_kernel(size, sigma)
    hk = size // 2
    for px, py in points:
        x, y = int(px), int(py)
        if x == width:
            x -= 1
        if y == height:
            y -= 1
        if x < 0 or y < 0 or x > width or y > height:
            continue
        x0, y0 = max(0, x - hk), max(0, y - hk)
        x1, y1 = min(x + hk + 1, width - 1), min(y + hk + 1, height - 1)
        kx, ky = (hk - x if x <= hk else 0), (hk - y if y <= hk else 0)
        d[y0:y1, x0:x1] += k[ky:ky + y1 - y0, kx:kx + x1 - x0]
    return d


def read_heads(path):
    pts = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                pts.append((float(parts[0]), float(parts[1])))
            except (IndexError, ValueError) as exc:
                raise DataError(f"{path}:{n}: expected \"x y\", got {line.strip()!r}") from exc
    return pts


def crowd_folder(root, val_fraction, seed):
    """(train, val) lists of (id, image path, audio path, count)."""
    imgs, auds = os.path.join(root, "imgs"), os.path.join(root, "auds")
    for d in (imgs, auds):
        if not os.path.isdir(d):
            raise DataError(f"{root}: no {os.path.basename(d)}/ folder (the reference "
                            "code's layout: imgs/ID.jpg, auds/ID.wav, density/ or labels/)")
    dens, labels = os.path.join(root, "density"), os.path.join(root, "labels")

    def sample(i):
        img, aud = os.path.join(imgs, i + ".jpg"), os.path.join(auds, i + ".wav")
        for f in (img, aud):
            if not os.path.exists(f):
                raise DataError(f"sample {i}: {f} is missing")
        return img, aud

    if os.path.isdir(dens):
        import scipy.io
        split = {}
        for part in ("train", "test"):
            d = os.path.join(dens, part)
            if not os.path.isdir(d):
                raise DataError(f"{dens}: no {part}/ folder of .mat density maps")
            rows = []
            for f in sorted(os.listdir(d)):
                if not f.endswith(".mat") or f.startswith("._"):
                    continue
                i = f.split(".")[0]
                try:
                    count = float(scipy.io.loadmat(os.path.join(d, f))["map"].sum())
                except (KeyError, ValueError, OSError) as exc:
                    raise DataError(f"{d}/{f}: no density map `map` ({exc})") from exc
                rows.append((i, *sample(i), count))
            split[part] = rows
        return split["train"], split["test"]
    if not os.path.isdir(labels):
        raise DataError(f"{root}: neither density/ (.mat maps) nor labels/ (head points)")
    from PIL import Image
    rows = []
    for f in sorted(os.listdir(labels)):
        m = re.fullmatch(r"(?:.*_)?([^_]+)\.txt", f)
        if not m or f.startswith("._"):
            continue
        i = m.group(1)
        img, aud = sample(i)
        with Image.open(img) as im:
            w, h = im.size
        count = float(density_map(read_heads(os.path.join(labels, f)), h, w).sum())
        rows.append((i, img, aud, count))
    if len(rows) < 2:
        raise DataError(f"{labels}: fewer than two annotated samples")
    order = np.random.default_rng(seed).permutation(len(rows))
    n_val = max(1, int(round(val_fraction * len(rows))))
    return ([rows[k] for k in sorted(order[n_val:])], [rows[k] for k in sorted(order[:n_val])])
