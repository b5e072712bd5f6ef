#!/usr/bin/env bash
# `make demo`: runs what exists of the product end to end on generated media.
# Usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-$build/demo}
mkdir -p "$out"
ee="$build/models/earlyexit"

echo "== gst-earlyexit demo =="
echo "1. A 1 s clip of ambient sound (pink noise + a 440 Hz tone), 16 kHz mono, made by GStreamer:"
gst-launch-1.0 -q audiotestsrc wave=pink-noise volume=0.3 num-buffers=16 samplesperbuffer=1000 \
  ! audio/x-raw,format=S16LE,rate=16000,channels=1 ! wavenc ! filesink location="$out/ambient.wav"
ls -l "$out/ambient.wav"

echo "2. Its VGGish log-mel spectrogram (the audio input of AudioCSRNet), through FFTW3:"
"$ee" features --kind vggish --audio "$out/ambient.wav" --out "$out/ambient-logmel.npy"

echo "3. Once the avcrowdcount element exists (next issue), this demo runs:"
cat <<'PIPE'
   gst-launch-1.0 filesrc location=sample.mp4 ! decodebin name=d \
     d. ! queue ! videoconvert ! avcrowdcount name=c model-file=default.safetensors deadline=40000000 \
     ! videoconvert ! autovideosink \
     d. ! queue ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio
PIPE
