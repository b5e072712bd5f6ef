"""What the tests of tests/train share: running a program and the command line
`TEST EARLYEXIT_BINARY WORKDIR [ARGS]` with a fresh WORKDIR."""
import os
import shutil
import subprocess
import sys

import torch


def run(cmd):
    """Runs a program; exits the test with its output when it fails."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def expect_failure(cmd, words):
    """A program that must fail with a message naming every one of `words`."""
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if p.returncode == 0 or not all(w in p.stderr for w in words):
        sys.exit(f"expected a failure naming {words}: {' '.join(map(str, cmd))}\n"
                 f"status {p.returncode}\n{p.stdout}\n{p.stderr}")
    print(f"refused as expected: {p.stderr.strip().splitlines()[-1][:150]}")


def start(doc, min_args=2, max_args=2):
    """(earlyexit binary, an emptied work folder, the other arguments); one torch
    thread."""
    args = sys.argv[1:]
    if not min_args <= len(args) <= max_args:
        sys.exit(doc)
    ee, work = args[0], args[1]
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    torch.set_num_threads(1)
    return ee, work, args[2:]
