#!/usr/bin/env bash
# Counts the people in front of a camera, hearing a microphone, and shows the
# video with the count drawn on it.
#
#   pipelines/live-pipeline.sh MODEL [avcrowdcount properties...]
#   VIDEO_DEVICE=/dev/video0 AUDIO_DEVICE=default WIDTH=640 HEIGHT=480 FPS=30
#   VIDEO_SRC, AUDIO_SRC, SINK replace the camera, microphone and display,
#   e.g. VIDEO_SRC="videotestsrc is-live=true" AUDIO_SRC="audiotestsrc
#   is-live=true wave=pink-noise" SINK="fakesink sync=true" to try it without
#   hardware.
#
# GST_PLUGIN_PATH must reach the plugin (when it is unset this script uses
# build/gst). Needs v4l2src (gst-plugins-good) and alsasrc (gst-plugins-base).
#
# Latency and queue sizes. avcrowdcount reports a latency of window/2 +
# deadline (0.5 s + one frame with the defaults): each frame waits for the
# audio half a window after it, then gets its deadline. The sink then renders
# every frame that much later, and the sources must be able to hold their data
# that long. v4l2src has a handful of buffers and alsasrc about 200 ms, less
# than 0.5 s, so without queues the pipeline fails with "Impossible to
# configure latency: max < min". Each branch therefore gets a queue bounded by
# time only:
#
#   branch   queue max-size-time   why
#   video    1.5 s                 0.5 s window + deadline + scheduling slack
#   audio    1.5 s                 the element takes audio as frames need it
#
# (max-size-buffers and max-size-bytes are 0: raw frames would hit the byte
# limit first). A queue's max-size-time also raises the maximum latency the
# branch reports, which is what makes the latency configuration succeed.
# Under load avcrowdcount lowers the exit it aims for when the sink reports
# lateness (QoS) instead of dropping frames.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
model=$1
shift

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GST_PLUGIN_PATH:-}" ] && [ -d "$here/build/gst" ]; then
  export GST_PLUGIN_PATH="$here/build/gst"
fi
video_device=${VIDEO_DEVICE:-/dev/video0}
audio_device=${AUDIO_DEVICE:-default}
width=${WIDTH:-640} height=${HEIGHT:-480} fps=${FPS:-30}
queue="queue max-size-buffers=0 max-size-bytes=0 max-size-time=1500000000"
video_src=${VIDEO_SRC:-v4l2src device=$video_device}
audio_src=${AUDIO_SRC:-alsasrc device=$audio_device}
sink=${SINK:-autovideosink}

# shellcheck disable=SC2086  # sources, sink and queue are word lists
exec gst-launch-1.0 -e \
  avcrowdcount name=c model-file="$model" "$@" ! earlyexitoverlay ! \
    videoconvert ! $sink \
  $video_src ! video/x-raw,width="$width",height="$height",framerate="$fps"/1 ! \
    videoconvert ! $queue ! c.video \
  $audio_src ! audioconvert ! audioresample ! \
    audio/x-raw,format=F32LE,rate=16000,channels=1 ! $queue ! c.audio
