#!/usr/bin/python3
"""earlyexitoverlay's heatmap, region outlines and labels against a golden picture.

heatmap-render draws the fixed scene of tests/gst/overlay-scene.h (a 32x18 density
map of two crowds, the "stage" region alerting, the concave "bar" region) through
earlyexitoverlay at 640x360 RGB; the frame must match tests/gst/golden/
heatmap-overlay.png to within MAX_DIFF per channel at every pixel and MEAN_DIFF on
average (room for libm's exp and pow differing in the last bits between machines,
none for a colormap, placement or opacity change). It also renders I420 and NV12
(the chroma paths) and checks they ran. The rendered picture is kept in WORKDIR
(heatmap-overlay.png) to look at; `--update` rewrites the golden one.

Usage: test_heatmap_golden.py HEATMAP_RENDER WORKDIR [--update]
"""
import os
import struct
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "heatmap-overlay.png")
W, H = 640, 360
MAX_DIFF = 6
MEAN_DIFF = 0.25


def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def read_png(path):
    """8-bit RGB PNGs as write_png makes them (any filter type)."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype == 2, "8-bit RGB only"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    out = np.zeros((h, 3 * w), np.int32)
    for y in range(h):
        f, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        prev = out[y - 1] if y else np.zeros(3 * w, np.int32)
        if f == 0:
            cur = line
        elif f == 2:
            cur = (line + prev) & 255
        else:  # 1, 3, 4 need the left neighbour: byte by byte
            cur = np.zeros(3 * w, np.int32)
            for x in range(3 * w):
                a = cur[x - 3] if x >= 3 else 0
                b, c = prev[x], (prev[x - 3] if x >= 3 else 0)
                if f == 1:
                    pred = a
                elif f == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                cur[x] = (line[x] + pred) & 255
        out[y] = cur
    return out.reshape(h, w, 3).astype(np.uint8)


def render(exe, work, fmt):
    path = os.path.join(work, f"heatmap-{fmt}.raw")
    p = subprocess.run([exe, path, fmt], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"heatmap-render {fmt} failed:\n{p.stdout}\n{p.stderr}")
    return np.fromfile(path, np.uint8)


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rgb = render(exe, work, "RGB").reshape(H, W, 3)
    out = os.path.join(work, "heatmap-overlay.png")
    write_png(out, rgb)
    if "--update" in sys.argv:
        write_png(GOLDEN, rgb)
        print(f"wrote {GOLDEN}")
        return
    gold = read_png(GOLDEN)
    diff = np.abs(rgb.astype(np.int32) - gold.astype(np.int32))
    print(f"against {GOLDEN}: max difference {diff.max()}, mean {diff.mean():.4f} "
          f"(allowed {MAX_DIFF}, {MEAN_DIFF}); rendered picture: {out}")
    if diff.max() > MAX_DIFF or diff.mean() > MEAN_DIFF:
        ys, xs = np.nonzero(diff.max(2) > MAX_DIFF)
        where = f" first at ({xs[0]}, {ys[0]})" if len(xs) else ""
        sys.exit(f"the overlay differs from the golden picture{where}")
    # the chroma paths (subsampled planes) run and fill the frame
    for fmt, size in (("I420", W * H * 3 // 2), ("NV12", W * H * 3 // 2)):
        got = render(exe, work, fmt)
        if got.size != size:
            sys.exit(f"{fmt}: {got.size} bytes, expected {size}")
        print(f"{fmt}: rendered")


if __name__ == "__main__":
    main()
