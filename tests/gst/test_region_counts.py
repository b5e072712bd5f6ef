#!/usr/bin/python3
"""Region counts (gst/ee-regions.c) against an independent numpy reference.

The C code clips each polygon against each map cell (Sutherland-Hodgman) and sums
the map weighted by the area share. The reference here integrates instead: the
area of polygon-and-cell is the integral over x of the length of the vertical line
at x that lies inside both; between the breakpoints (cell sides, vertices, edges
meeting the cell's top and bottom) that length is linear in x, so the midpoint rule
is exact. Lengths come from the even-odd crossings of the polygon's edges.

Cases, on random maps (including negative cells, as a dense head's map has):
concave polygons (stars, a U), polygons partly outside the frame, vertices on cell
corners and sides (touching cells), a region covering the frame (its count is the
map's sum), a thin sliver inside one cell, random simple polygons (star-shaped
around a random centre with random radii). Tolerance 1e-9 x max(1, sum |map|).

Usage: test_region_counts.py REGIONS_COUNT_BINARY WORKDIR
"""
import os
import subprocess
import sys

import numpy as np

TOL = 1e-9


def lengths_inside(poly, x, y0, y1):
    """Length of the vertical line at x inside the polygon, clipped to [y0, y1]."""
    ys = []
    n = len(poly)
    for i in range(n):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
        if (ax <= x < bx) or (bx <= x < ax):
            ys.append(ay + (x - ax) * (by - ay) / (bx - ax))
    ys.sort()
    total = 0.0
    for k in range(0, len(ys) - 1, 2):
        lo, hi = max(ys[k], y0), min(ys[k + 1], y1)
        total += max(0.0, hi - lo)
    return total


def cell_area(poly, cx, cy):
    xs = {cx, cx + 1.0}
    n = len(poly)
    for i in range(n):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
        if cx < ax < cx + 1:
            xs.add(ax)
        for yl in (cy, cy + 1.0):
            if (ay - yl) * (by - yl) < 0:
                xc = ax + (yl - ay) * (bx - ax) / (by - ay)
                if cx < xc < cx + 1:
                    xs.add(xc)
    xs = sorted(xs)
    area = 0.0
    for a, b in zip(xs, xs[1:]):
        area += (b - a) * lengths_inside(poly, 0.5 * (a + b), cy, cy + 1.0)
    return area


def reference(points, m):
    h, w = m.shape
    poly = [(x * w, y * h) for x, y in points]
    total = 0.0
    x0 = max(0, int(np.floor(min(p[0] for p in poly))))
    x1 = min(w, int(np.ceil(max(p[0] for p in poly))))
    y0 = max(0, int(np.floor(min(p[1] for p in poly))))
    y1 = min(h, int(np.ceil(max(p[1] for p in poly))))
    for cy in range(y0, y1):
        for cx in range(x0, x1):
            total += cell_area(poly, cx, cy) * m[cy, cx]
    return total


def star(rng, cx, cy, n, rmin, rmax):
    # jittered angles: no gap reaches half a turn, so the polygon is simple
    ang = (np.arange(n) + rng.uniform(0, 0.8, n)) * 2 * np.pi / n
    r = rng.uniform(rmin, rmax, n)
    return [(cx + ri * np.cos(a), cy + ri * np.sin(a)) for a, ri in zip(ang, r)]


def fmt(name, pts):
    return name + ": " + " ".join(f"{x!r},{y!r}" for x, y in pts)


def main():
    exe, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(12)
    worst = 0.0
    checked = 0
    for trial, (w, h) in enumerate([(32, 18), (8, 4), (13, 7), (128, 72)]):
        m = rng.gamma(0.5, 1.0, (h, w)).astype(np.float32)
        if trial % 2:
            m -= 0.3  # negative cells too
        cases = {
            "whole": [(0, 0), (1, 0), (1, 1), (0, 1)],
            "beyond": [(-0.5, -0.5), (1.5, -0.5), (1.5, 1.5), (-0.5, 1.5)],
            "u-shape": [(0.1, 0.1), (0.3, 0.1), (0.3, 0.7), (0.7, 0.7), (0.7, 0.1),
                        (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)],
            "outside-corner": [(-0.3, -0.2), (0.4, -0.1), (0.25, 0.5), (-0.1, 0.45)],
            "cell-corners": [(2 / w, 1 / h), (5 / w, 1 / h), (5 / w, 3 / h), (2 / w, 3 / h)],
            "touching": [(1 / w, 1 / h), (3 / w, 1 / h), (2.5 / w, 2.5 / h),
                         (1 / w, 2 / h)],
            "sliver": [(0.5 / w, 0.5 / h), (0.9 / w, 0.52 / h), (0.55 / w, 0.6 / h)],
        }
        for k in range(6):
            cases[f"star{k}"] = star(rng, rng.uniform(-0.1, 1.1), rng.uniform(-0.1, 1.1),
                                     int(rng.integers(4, 12)), 0.02, 0.6)
        path = os.path.join(work, f"map{trial}.f32")
        m.tofile(path)
        text = "; ".join(fmt(n, p) for n, p in cases.items())
        p = subprocess.run([exe, text, str(w), str(h), path], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"regions-count failed: {p.stderr}")
        got = {l.split()[0]: float(l.split()[1]) for l in p.stdout.splitlines()}
        scale = max(1.0, float(np.abs(m).sum()))
        for name, pts in cases.items():
            want = reference(pts, m.astype(np.float64))
            err = abs(got[name] - want) / scale
            worst = max(worst, err)
            checked += 1
            if err > TOL:
                sys.exit(f"{w}x{h} {name}: C {got[name]!r} reference {want!r} "
                         f"(error {err:.2e} > {TOL})")
        s = float(m.astype(np.float64).sum())
        for name in ("whole", "beyond"):
            if abs(got[name] - s) > TOL * scale:
                sys.exit(f"{w}x{h} {name}: {got[name]!r} is not the map's sum {s!r}")
        print(f"{w}x{h}: {len(cases)} regions match (whole frame {got['whole']:.6g} = "
              f"sum {s:.6g})")
    print(f"{checked} region counts match the reference; worst error {worst:.2e}")


if __name__ == "__main__":
    main()
