#!/usr/bin/env bash
# Everything only a GPU can show, in one call (a lent device machine gives a
# session minutes, not hours): builds the CUDA backend, runs the CUDA test
# suite (every op against the CPU in fp32, tf32, fp16 and bf16; the runtime;
# the engine's batched steps against the CPU), compute-sanitizer's memcheck
# over them, and the benchmarks: VGG-16's convolutions against PyTorch, and
# avcrowdcount on 4 and 8 live streams on the GPU, one engine with and
# without batched steps. A short table of what passed ends the output; the
# logs go to $OUT (or ./gpu-check-out).
#
# Usage: scripts/gpu-check.sh [BUILD_DIR]      (default build-cuda)
#   GPU_CHECK_SKIP="sanitizer streams" leaves parts out.
set -uo pipefail
build=${1:-build-cuda}
out=${OUT:-gpu-check-out}
skip=" ${GPU_CHECK_SKIP:-} "
cd "$(dirname "$0")/.."
mkdir -p "$out"
summary=()

step() { # name, command...
  local name=$1 start rc
  shift
  start=$(date +%s)
  echo "== $name: $*"
  "$@" >"$out/$name.log" 2>&1
  rc=$?
  summary+=("$(printf '%-22s rc %-3s %4ss  %s' "$name" "$rc" \
    "$(($(date +%s) - start))" "$out/$name.log")")
  tail -n 25 "$out/$name.log"
  return $rc
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv \
  >"$out/gpu.txt" 2>&1 || true
cat "$out/gpu.txt"

if [ ! -f "$build/build.ninja" ]; then
  step configure meson setup "$build" -Dcuda=enabled || exit 1
fi
step build ninja -C "$build" || exit 1
step tests-cuda meson test -C "$build" --suite cuda --print-errorlogs \
  --num-processes 1
case $skip in *" sanitizer "*) ;; *)
  step sanitizer tests/cuda/run-sanitizer.sh "$build" memcheck ;;
esac
step bench-cuda "$build/tests/bench/bench-cuda" -p all
case $skip in *" streams "*) ;; *)
  GST_PLUGIN_PATH="$build/gst" step streams \
    "$build/tests/bench/bench-streams" --seconds 6 --settle 2 \
    --streams 4,8 --modes shared,shared-batch --batch 4 ;;
esac

echo
echo "== summary (logs in $out)"
printf '%s\n' "${summary[@]}"
