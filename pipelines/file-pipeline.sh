#!/usr/bin/env bash
# Counts the people in a video file with an audio track and writes a copy with
# the count drawn on every frame (earlyexitoverlay) and the audio kept.
#
#   pipelines/file-pipeline.sh MODEL INPUT OUTPUT.mkv [avcrowdcount properties...]
#   e.g. pipelines/file-pipeline.sh models/default/crowd-synth-slvit.safetensors clip.mp4 \
#          counted.mkv deadline=40000000 policy=anytime
#
# GST_PLUGIN_PATH must reach the plugin (the build's gst/ folder when running
# uninstalled; when it is unset this script uses build/gst). The video is written
# as Motion JPEG (jpegenc, gst-plugins-good); set ENCODER to use another one,
# e.g. ENCODER="x264enc tune=zerolatency ! h264parse".
#
# Queues: avcrowdcount holds each frame until the audio half a window after it
# has arrived (0.5 s by default), and decodebin's demuxer feeds both branches
# from one thread, so each branch gets a queue bounded by time only, 2 s
# (more than the window plus the deadline; max-size-buffers and
# max-size-bytes are 0 because raw HD frames would hit the default 10 MB
# limit long before 0.5 s).
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
model=$1 input=$2 output=$3
shift 3

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GST_PLUGIN_PATH:-}" ] && [ -d "$here/build/gst" ]; then
  export GST_PLUGIN_PATH="$here/build/gst"
fi
encoder=${ENCODER:-jpegenc}
queue="queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000"

# shellcheck disable=SC2086  # encoder, queue and properties are word lists
exec gst-launch-1.0 -e \
  avcrowdcount name=c model-file="$model" "$@" ! earlyexitoverlay ! \
    videoconvert ! $encoder ! queue ! mux. \
  filesrc location="$input" ! decodebin name=d \
  d. ! $queue ! videoconvert ! c.video \
  d. ! $queue ! audioconvert ! audioresample ! \
    audio/x-raw,format=F32LE,rate=16000,channels=1 ! tee name=t ! queue ! c.audio \
  t. ! queue ! audioconvert ! flacenc ! mux. \
  matroskamux name=mux ! filesink location="$output"
