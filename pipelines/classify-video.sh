#!/usr/bin/env bash
# Classifies the frames of a video file (or, without one, a test pattern) with
# exitclassify and prints one line per frame: time, label, confidence, exit.
#
#   pipelines/classify-video.sh [MODEL [INPUT [exitclassify properties...]]]
#   e.g. pipelines/classify-video.sh build/pipelines/demo-classifier.safetensors \
#          clip.mp4 policy=confidence confidence-threshold=0.8 deadline=40000000
#
# MODEL defaults to the build's demo model (random weights: meaningless
# labels), INPUT to 50 frames of videotestsrc; "-" also means the test pattern.
# BUILD names the build folder (default: build); GST_PLUGIN_PATH, when unset,
# becomes $BUILD/gst. Set RAW=1 to see gst-launch-1.0's messages unfiltered.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$build/gst}
model=${1:-$build/pipelines/demo-classifier.safetensors}
input=${2:--}
shift $(( $# < 2 ? $# : 2 ))

if [ "$input" = "-" ]; then
  source=(videotestsrc num-buffers=50 '!'
    video/x-raw,width=320,height=240,framerate=25/1)
else
  source=(filesrc location="$input" '!' decodebin '!' videoconvert)
fi

# exitclassify posts one element message per frame (post-messages=true)
run() {
  gst-launch-1.0 -m "${source[@]}" '!' \
    exitclassify model-file="$model" device=cpu "$@" '!' fakesink
}

if [ -n "${RAW:-}" ]; then
  run "$@"
else
  run "$@" | sed -n 's/^Got message .* (element): exitclassify, timestamp=(guint64)\([0-9]*\),.* label=(string)\([^,]*\),.* confidence=(double)\([^,]*\),.* exit=(string)\([^,]*\),.* deadline-missed=(boolean)\([a-z]*\),.*/t=\1 ns  \2  p=\3  exit=\4  missed=\5/p'
fi
