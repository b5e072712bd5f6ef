#!/usr/bin/python3
"""`earlyexit info` on the paper's AudioCSRNet configuration (1024x576, full widths):
exit parameter counts equal docs/models.md 3.4 exactly, and FLOPs up to each exit are
within 1 % of the paper's (docs/models.md 5), for SL-ViT and CNN exits.

Usage: test_info.py EARLYEXIT_BINARY WORKDIR
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERT = os.path.join(HERE, "..", "..", "models", "convert", "audiocsrnet.py")

EXPECTED_PARAMS = {
    "slvit": {"v1": 2353825, "av1": 2362049, "av2": 2353825},
    "cnn": {"v1": 2499345, "av1": 2515761, "av2": 2499345},
}
# docs/models.md 5: FLOPs up to and including each SL-ViT exit, and the full model
PAPER_GFLOP = {"v1": 328.7, "av1": 330.3, "av2": 373.8}


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def main():
    ee, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    for kind, expected in EXPECTED_PARAMS.items():
        model = os.path.join(work, f"paper-{kind}.safetensors")
        run([sys.executable, CONVERT, "--random", "--seed", "3", "--dtype", "f16",
             "--exit-kind", kind, "--input-size", "1024x576", "--out", model])
        info = json.loads(run([ee, "info", model, "--json"]))
        exits = {e["name"]: e for e in info["exits"]}
        for name, params in expected.items():
            got = exits[name]["params"]
            print(f"{kind:5s} {name:5s} params {got:>9d} expected {params:>9d} "
                  f"GFLOP to exit {exits[name]['flops_to_exit'] / 1e9:8.1f}")
            if got != params:
                sys.exit(f"{kind} {name}: {got} parameters, docs/models.md 3.4 says {params}")
        print(f"{kind:5s} final GFLOP {exits['final']['flops_to_exit'] / 1e9:8.1f} "
              f"(paper: about 490)")
        if kind == "slvit":
            for name, gflop in PAPER_GFLOP.items():
                got = exits[name]["flops_to_exit"] / 1e9
                if abs(got - gflop) > 0.01 * gflop:
                    sys.exit(f"{name}: {got:.1f} GFLOP to exit, paper {gflop}")
    print("parameter counts match docs/models.md 3.4; FLOPs within 1 % of docs/models.md 5")


if __name__ == "__main__":
    main()
