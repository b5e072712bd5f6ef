#!/usr/bin/env bash
# Prints the benchmark tables: CPU backend vs PyTorch in the same run (VGG-16 convs at
# 1024x576; ResNet152, DenseNet201 and InceptionV3 at 224x224 per exit, random
# weights written to a temporary folder), audio feature timing, batching against
# lanes on the CPU (the bundled model's visual trunk), density maps, regions and
# the heatmap overlay per 640x360 frame, and avcrowdcount on
# 1, 2, 4 and 8 live streams in one process (about 2.5 minutes: private and
# shared engines, 12 s per row, on the demo clip generated at 25 fps).
# Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
"$build/tests/bench/bench-features"
"$build/tests/bench/bench-conv"
"$build/tests/bench/bench-classifier"
"$build/tests/bench/bench-batch"
"$build/tests/bench/bench-overlay"
GST_PLUGIN_PATH="$build/gst${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}" \
  "$build/tests/bench/bench-streams"
