#!/bin/sh
# Prints a Python interpreter that imports torch and numpy: $EE_PYTHON if set,
# else Debian's /usr/bin/python3, else python3 on PATH. Used by meson and scripts.
for py in "${EE_PYTHON:-}" /usr/bin/python3 python3; do
  [ -n "$py" ] || continue
  if "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
    command -v "$py"
    exit 0
  fi
done
echo "find-python: no Python with torch and numpy; install python3-torch python3-numpy or set EE_PYTHON" >&2
exit 1
