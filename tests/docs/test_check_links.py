#!/usr/bin/python3
"""check_links.py must fail on a doc citing what the project lacks: runs it on
a small made-up project whose README and docs cite existing and missing
files, and whose code names the specs outside the project, and checks that
exactly those are reported."""
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_links.py")

GOOD = """# A project
[the engine](docs/engine.md), [same folder](docs/engine.md#threads), https://example.org
In prose: docs/engine.md, audio/x-raw and nn/ee-engine.h.
`nn/ee-engine.{c,h}`, `nn/ee-engine.c:12`, `engine.md`, `nn/*.c`, `audio/x-raw,format=F32LE`,
`build/nn/tool`, `build/nn`, `/usr/bin/python3`, `earlyexit/result`
```sh
GST_PLUGIN_PATH=build/nn tool model-file=nn/ee-engine.c clip.wav
```
"""
BAD = """## Bad
[gone](docs/gone.md) `MODELS.md` `../shared/docs/MODELS.md` `nn/missing.c`
`build/nn/not-made` `nn/ee-engine.{c,x}` and in prose nn/gone.h, not nn/ee-engine.h.
```sh
tool --model nn/absent.safetensors
```
"""
WANT = {"README.md:10: docs/gone.md", "README.md:10: MODELS.md",
        "README.md:10: ../shared/docs/MODELS.md", "README.md:10: nn/missing.c",
        "README.md:11: build/nn/not-made", "README.md:11: nn/ee-engine.x",
        "README.md:11: nn/gone.h",
        "README.md:13: nn/absent.safetensors", "docs/engine.md:1: ../nothing.md",
        "nn/ee-engine.c:1: MODELS.md (outside the project)",
        "README.md:10: MODELS.md (outside the project)",
        "nn/meson.build:2: ../shared/ (outside the project)"}


def run(root):
    p = subprocess.run([sys.executable, CHECKER, "--root", root],
                       capture_output=True, text=True)
    return p.returncode, {l.strip() for l in p.stderr.splitlines()[1:] if l.strip()}


def main():
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "docs"))
        os.makedirs(os.path.join(d, "nn"))
        for f in ("nn/ee-engine.c", "nn/ee-engine.h"):
            open(os.path.join(d, f), "w").close()
        with open(os.path.join(d, "nn", "meson.build"), "w") as f:
            f.write("executable('tool', 'ee-engine.c')\n")
        with open(os.path.join(d, "README.md"), "w") as f:
            f.write(GOOD)
        with open(os.path.join(d, "docs", "engine.md"), "w") as f:
            f.write("[back](../README.md) [up](../nn/ee-engine.c)\n")
        rc, errors = run(d)
        if rc != 0 or errors:
            sys.exit(f"test_check_links: a project citing only what it has failed: {errors}")
        with open(os.path.join(d, "README.md"), "a") as f:
            f.write(BAD)
        with open(os.path.join(d, "docs", "engine.md"), "w") as f:
            f.write("[back](../README.md#nothing-missing) [gone](../nothing.md)\n")
        with open(os.path.join(d, "nn", "ee-engine.c"), "w") as f:
            f.write("/* the engine (MODELS.md 5) */\n")
        with open(os.path.join(d, "nn", "meson.build"), "a") as f:
            f.write("# see ../shared/docs\n")
        rc, errors = run(d)
        if rc != 1 or errors != WANT:
            sys.exit(f"test_check_links: rc {rc}; missing reports "
                     f"{sorted(WANT - errors)}, unexpected {sorted(errors - WANT)}")
    print("check_links reports exactly the missing citations")


if __name__ == "__main__":
    main()
