#!/bin/sh
# Runs the CUDA tests under compute-sanitizer: memcheck (out-of-bounds and
# misaligned accesses, device memory leaks) and racecheck (shared-memory
# hazards in the kernels' block reductions).
#
# Usage: tests/cuda/run-sanitizer.sh [BUILD_DIR] [TOOL...]
#   BUILD_DIR  a build configured with -Dcuda=enabled (default: build-cuda)
#   TOOL       memcheck, racecheck (default: both)
# compute-sanitizer comes from $COMPUTE_SANITIZER, PATH or the toolkit.
# Exits 0 when every run is clean, 1 on the first report, 77 when there is
# no sanitizer or no device to run on.
set -eu

build=${1:-build-cuda}
[ $# -gt 0 ] && shift
tools=${*:-memcheck racecheck}
here=$(cd "$(dirname "$0")" && pwd)
bin=$build/tests/cuda

sanitizer=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
[ -n "$sanitizer" ] || sanitizer=/usr/local/cuda/bin/compute-sanitizer
if [ ! -x "$sanitizer" ]; then
  echo "run-sanitizer: compute-sanitizer not found (set COMPUTE_SANITIZER)"
  exit 77
fi
if [ ! -x "$bin/test-cuda-parity" ]; then
  echo "run-sanitizer: $bin/test-cuda-parity missing; build $build with" \
    "-Dcuda=enabled first (from $(dirname "$here")/..)"
  exit 1
fi

# The module of this build; heuristics instead of timing every convolution
# algorithm keep the runs short under instrumentation.
export EE_CUDA_MODULE="$build/nn/libearlyexit-cuda.so"
export EE_CUDA_CONV_SEARCH=heuristic
export EE_CUDA_POISON=1

# A skip (77) of the plain run means no device: say so once and stop.
status=0
"$bin/test-cuda-runtime" >/dev/null 2>&1 || status=$?
if [ "$status" -eq 77 ]; then
  "$bin/test-cuda-runtime" | head -n 1
  exit 77
fi

for tool in $tools; do
  case $tool in
    memcheck) extra="--leak-check full" ;;
    racecheck) extra="--racecheck-report hazard" ;;
    *) echo "run-sanitizer: unknown tool $tool"; exit 2 ;;
  esac
  for p in fp32 tf32 fp16 bf16; do
    echo "== $tool: test-cuda-parity --precision $p"
    # shellcheck disable=SC2086
    "$sanitizer" --tool "$tool" $extra --error-exitcode 1 --print-limit 20 \
      "$bin/test-cuda-parity" --precision "$p"
  done
  echo "== $tool: test-cuda-runtime"
  # shellcheck disable=SC2086
  "$sanitizer" --tool "$tool" $extra --error-exitcode 1 --print-limit 20 \
    "$bin/test-cuda-runtime"
  # the engine's batched steps (weights shared with the model's first load)
  echo "== $tool: test-engine (batched, on cuda)"
  # shellcheck disable=SC2086
  EE_TEST_DEVICE=cuda EE_TEST_MODEL="$build/tests/gst/avcrowdcount-test.safetensors" \
    "$sanitizer" --tool "$tool" $extra --error-exitcode 1 --print-limit 20 \
    "$build/tests/engine/test-engine"
done
echo "run-sanitizer: clean ($tools)"
