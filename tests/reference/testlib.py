"""Tiny test runner shared by the scripts in tests/reference/ (no pytest on the build
machines): each script lists its test functions and calls run(); the exit status is
non-zero when any test fails."""
import contextlib
import io
import os
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "models", "convert"))

import torch  # noqa: E402

torch.set_num_threads(max(1, os.cpu_count() or 1))


def convert(argv):
    """Runs the converter's main() in-process: returns (status, stdout, stderr)."""
    import audiocsrnet
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = audiocsrnet.main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def close(a, b, rtol=1e-9, atol=1e-9, what="value"):
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes {tuple(a.shape)} vs {tuple(b.shape)}")
    err = (a - b).abs().max().item() if a.numel() else 0.0
    tol = atol + rtol * b.abs().max().item() if b.numel() else atol
    if not err <= tol:
        raise AssertionError(f"{what}: max abs difference {err:.3g} > {tol:.3g}")


def run(tests):
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for t in tests:
            t0 = time.time()
            try:
                t(tmp)
                print(f"PASS {t.__name__} ({time.time() - t0:.1f} s)")
            except Exception:  # noqa: BLE001 - report every failure and go on
                failed += 1
                print(f"FAIL {t.__name__}")
                traceback.print_exc()
    print(f"{len(tests) - failed}/{len(tests)} passed")
    return 1 if failed else 0
