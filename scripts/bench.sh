#!/usr/bin/env bash
# Prints the benchmark tables: CPU backend vs PyTorch in the same run (VGG-16 convs at
# 1024x576; ResNet152, DenseNet201 and InceptionV3 at 224x224 per exit, random
# weights written to a temporary folder) and audio feature timing.
# Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
"$build/tests/bench/bench-features"
"$build/tests/bench/bench-conv"
"$build/tests/bench/bench-classifier"
