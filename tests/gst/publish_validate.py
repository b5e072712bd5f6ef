#!/usr/bin/env python3
"""Validates earlyexitpublish messages against docs/earlyexit-result.schema.json.

usage: publish_validate.py SCHEMA MESSAGES

MESSAGES holds one JSON message per line (what method=file writes, or what a
test collected from a broker). Every line must parse and validate; prints
"N valid" and exits 0, else prints the first failures and exits 1. Used by the
earlyexitpublish tests (tests/gst/test-earlyexitpublish*.c).
"""
import json
import sys

import jsonschema


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        schema = json.load(f)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    n = 0
    failures = []
    with open(sys.argv[2]) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            n += 1
            try:
                msg = json.loads(line)
            except json.JSONDecodeError as e:
                failures.append(f"line {lineno}: not JSON ({e}): {line[:200]}")
                continue
            for err in validator.iter_errors(msg):
                path = "/".join(str(p) for p in err.absolute_path)
                failures.append(f"line {lineno}: {path}: {err.message}")
    if failures:
        print("\n".join(failures[:20]))
        print(f"{len(failures)} failures in {n} messages")
        return 1
    print(f"{n} valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
