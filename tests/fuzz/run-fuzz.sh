#!/bin/sh
# Fuzzes the safetensors reader for SECONDS (default 60) with libFuzzer, ASan
# and UBSan, in a clang build of its own (build-fuzz/). The seeds in corpus/
# are copied into the scratch corpus corpus-run/ (git-ignored), which keeps
# what earlier runs found. Exits non-zero on a finding; the crashing input is
# left in build-fuzz/fuzz-artifacts/: add it to corpus/ once fixed, so that the
# fuzz-corpus test keeps it fixed.
set -eu

seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=$root/build-fuzz

if [ ! -f "$build/build.ninja" ]; then
  CC=clang meson setup "$build" "$root" -Dfuzz=true -Dcuda=disabled
fi
ninja -C "$build" tests/fuzz/fuzz-safetensors

mkdir -p "$here/corpus-run" "$build/fuzz-artifacts"
cp "$here"/corpus/* "$here/corpus-run/"
exec "$build/tests/fuzz/fuzz-safetensors" \
  -max_total_time="$seconds" \
  -dict="$here/safetensors.dict" \
  -artifact_prefix="$build/fuzz-artifacts/" \
  -print_final_stats=1 \
  "$here/corpus-run"
