#!/usr/bin/python3
"""README.md's first pipeline works as written: takes the two commands of its
"First pipeline" section (gst-launch-1.0 on a media file, then the same in
Python through docs/examples/read_results.py), runs them from the source
folder on a short clip made as `make demo` makes its own (models/synth/
scenes.py clip --kind demo --mkv, raw RGB video + FLAC in Matroska), with
only the clip's path and the build's plugin folder put in, and checks that
every frame got a result that used the audio.

Usage: test_readme.py --source-root DIR --plugin-dir BUILD/gst --workdir DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys

SECTION = "## First pipeline"
CLIP_IN_README = "$PWD/build/demo/clip/clip.mkv"


def fail(msg):
    sys.exit(f"test_readme: {msg}")


def commands(readme):
    """The ```sh blocks of the section, joined into one line each."""
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    if SECTION not in text:
        fail(f"README.md has no section '{SECTION}'")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    if len(blocks) < 2:
        fail(f"'{SECTION}' should hold a gst-launch-1.0 and a Python command, "
             f"found {len(blocks)} sh blocks")
    return [b.replace("\\\n", " ").strip() for b in blocks[:2]]


def run(cmd, root, env):
    p = subprocess.run(["bash", "-c", cmd], cwd=root, env=env, capture_output=True,
                       text=True, timeout=240)
    if p.returncode != 0:
        fail(f"`{cmd}` failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--plugin-dir", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    root = os.path.abspath(args.source_root)
    try:
        import gi
        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
        Gst.ValueArray  # python3-gst-1.0's overrides
    except (ImportError, ValueError, AttributeError) as e:
        fail(f"{sys.executable} cannot use GStreamer from Python ({e}): "
             "install python3-gi and python3-gst-1.0 (scripts/install-deps.sh)")

    clip_dir = os.path.join(args.workdir, "clip")
    subprocess.run([sys.executable, os.path.join(root, "models", "synth", "scenes.py"),
                    "clip", "--kind", "demo", "--seed", "1", "--seconds", "3", "--mkv",
                    "--out", clip_dir], check=True, capture_output=True)
    with open(os.path.join(clip_dir, "truth.json"), encoding="utf-8") as f:
        truth = json.load(f)
    frames = len(truth["frames"])
    clip = os.path.join(clip_dir, "clip.mkv")

    gst_cmd, py_cmd = commands(os.path.join(root, "README.md"))
    for name, cmd in (("gst-launch", gst_cmd), ("python", py_cmd)):
        if CLIP_IN_README not in cmd or "GST_PLUGIN_PATH=build/gst" not in cmd:
            fail(f"the README's {name} command no longer reads {CLIP_IN_README} "
                 f"with GST_PLUGIN_PATH=build/gst: update this test with it")
    env = dict(os.environ)

    def localise(cmd):
        cmd = cmd.replace(CLIP_IN_README, clip)
        cmd = cmd.replace("GST_PLUGIN_PATH=build/gst", f"GST_PLUGIN_PATH={args.plugin_dir}")
        return re.sub(r"(^|\s)python3(\s)", rf"\g<1>{sys.executable}\g<2>", cmd)

    out = run(localise(gst_cmd), root, env)
    msgs = [l for l in out.splitlines() if "avcrowdcount, timestamp=" in l]
    if not msgs:
        fail(f"gst-launch-1.0 -m printed no avcrowdcount message:\n{out[-3000:]}")
    if len(msgs) != frames:
        fail(f"{len(msgs)} results from gst-launch-1.0 for {frames} frames")
    if any("audio-used=(boolean)true" not in m for m in msgs):
        fail("a frame's result did not use the file's audio")

    out = run(localise(py_cmd), root, env)
    metas = [l for l in out.splitlines() if l.startswith("meta ")]
    if len(metas) != len(msgs):
        fail(f"the Python command read {len(metas)} metas, gst-launch-1.0 "
             f"printed {len(msgs)} messages:\n{out[-3000:]}")
    print(f"README's first pipeline: {len(msgs)} frames counted with audio, "
          f"in gst-launch-1.0 and in Python")


if __name__ == "__main__":
    main()
