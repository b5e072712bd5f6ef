#!/usr/bin/env bash
# Classifies an audio file (or, without one, 5 s of pink noise) window by
# window with audioexitclassify and prints one line per window: its start,
# label, confidence, exit and the fraction of it that was audio.
#
#   pipelines/classify-audio.sh [MODEL [INPUT [audioexitclassify properties...]]]
#   e.g. pipelines/classify-audio.sh build/pipelines/demo-gtzan-classifier.safetensors \
#          song.ogg hop=1000000000 policy=anytime
#
# MODEL defaults to the build's Speech Commands demo model (random weights:
# meaningless labels), INPUT to audiotestsrc; "-" also means the test signal.
# The model says the rate and window (1 s at 16 kHz or 3 s at 22050 Hz);
# audioconvert ! audioresample bring any input there. BUILD names the build
# folder (default: build); GST_PLUGIN_PATH, when unset, becomes $BUILD/gst.
# Set RAW=1 to see gst-launch-1.0's messages unfiltered.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$here/build}
export GST_PLUGIN_PATH=${GST_PLUGIN_PATH:-$build/gst}
model=${1:-$build/pipelines/demo-sc-classifier.safetensors}
input=${2:--}
shift $(( $# < 2 ? $# : 2 ))

if [ "$input" = "-" ]; then
  source=(audiotestsrc wave=pink-noise num-buffers=50 samplesperbuffer=4410
    '!' audio/x-raw,rate=44100)
else
  source=(filesrc location="$input" '!' decodebin)
fi

run() {
  gst-launch-1.0 -m "${source[@]}" '!' audioconvert '!' audioresample '!' \
    audioexitclassify model-file="$model" device=cpu "$@" '!' fakesink
}

if [ -n "${RAW:-}" ]; then
  run "$@"
else
  run "$@" | sed -n 's/^Got message .* (element): audioexitclassify, timestamp=(guint64)\([0-9]*\),.* label=(string)\([^,]*\),.* confidence=(double)\([^,]*\),.* exit=(string)\([^,]*\),.* audio-coverage=(double)\([0-9.e+-]*\).*/t=\1 ns  \2  p=\3  exit=\4  audio=\5/p'
fi
