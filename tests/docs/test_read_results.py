#!/usr/bin/python3
"""Runs docs/python.md's script (docs/examples/read_results.py) as the doc
shows it, on the build's Speech Commands demo classifier, and checks what it
read: 3 s of audio in 1 s buffers with 1 s windows every 250 ms, so after the
first buffer each buffer completes 4 windows and carries 4 results in its one
meta. Every window's result must be read from the meta (several from one
buffer) and equal the element message of the same window. With --doc, the
python code blocks of docs/python.md must be quoted verbatim from the script.

Usage: test_read_results.py --script read_results.py --model demo-sc.safetensors
                            [--doc docs/python.md]
(GST_PLUGIN_PATH_1_0 at the build's gst/ folder).
"""
import argparse
import json
import re
import subprocess
import sys

SECOND = 1_000_000_000
HOP = 0.25
BUFFERS = 3  # the script's tone example: 3 buffers of 1 s
WINDOW = SECOND  # Speech Commands features: 1 s


def fail(msg):
    sys.exit(f"test_read_results: {msg}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--script", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--doc", help="docs/python.md: its python blocks quote the script")
    args = ap.parse_args()

    if args.doc:
        with open(args.script, encoding="utf-8") as f:
            script = f.read()
        with open(args.doc, encoding="utf-8") as f:
            blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
        if not blocks:
            fail(f"{args.doc} quotes no python block")
        for b in blocks:
            if b not in script:
                fail(f"{args.doc} quotes code that is not in {args.script}:\n{b}")

    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
        Gst.ValueArray  # python3-gst-1.0's overrides
    except (ImportError, ValueError, AttributeError) as e:
        fail(f"{sys.executable} cannot use GStreamer from Python ({e}): "
             "install python3-gi and python3-gst-1.0 (scripts/install-deps.sh)")

    run = subprocess.run([sys.executable, args.script, "--sc-model", args.model,
                          "--hop", str(HOP), "--json"],
                         capture_output=True, text=True, timeout=240)
    sys.stderr.write(run.stderr)
    if run.returncode != 0:
        fail(f"the script failed ({run.returncode}):\n{run.stdout}")
    rows = [json.loads(line) for line in run.stdout.splitlines() if line.strip()]
    metas = [r for r in rows if r["source"] == "meta"]
    messages = [r for r in rows if r["source"] == "message"]

    # every complete window: starts 0, hop, ... up to the end of the audio
    hop_ns = int(HOP * SECOND)
    starts = list(range(0, BUFFERS * SECOND - WINDOW + 1, hop_ns))
    if sorted(r["window-start"] for r in metas) != starts:
        fail(f"windows read from metas start at {[r['window-start'] for r in metas]}, "
             f"expected {starts}")

    # several results from one buffer, as many as windows it completed
    per_buffer = {}
    for r in metas:
        per_buffer.setdefault(r["buffer-pts"], []).append(r)
    for pts, rs in per_buffer.items():
        end = pts + rs[0]["buffer-duration"]
        completed = [s for s in starts if pts < s + WINDOW <= end]
        if [r["window-start"] for r in rs] != completed:
            fail(f"buffer at {pts}: results for windows {[r['window-start'] for r in rs]}, "
                 f"it completed {completed}")
        if [r["index"] for r in rs] != list(range(len(rs))) or any(r["of"] != len(rs) for r in rs):
            fail(f"buffer at {pts}: index/of fields wrong: {[(r['index'], r['of']) for r in rs]}")
    most = max(len(rs) for rs in per_buffer.values())
    if most < 2:
        fail(f"no buffer carried several results (at most {most})")

    # the meta and the message of a window hold the same result
    by_start = {m["window-start"]: m for m in messages}
    for r in metas:
        m = by_start.get(r["window-start"])
        if m is None:
            fail(f"no message for the window at {r['window-start']}")
        for key in ("task", "label", "label-id", "confidence", "exit", "exit-index",
                    "fresh", "window-end", "audio-coverage", "top-labels"):
            if r.get(key) != m.get(key):
                fail(f"window at {r['window-start']}: meta {key}={r.get(key)!r}, "
                     f"message {key}={m.get(key)!r}")
    print(f"read {len(metas)} results from {len(per_buffer)} buffers' metas "
          f"(up to {most} from one buffer), {len(messages)} messages")


if __name__ == "__main__":
    main()
