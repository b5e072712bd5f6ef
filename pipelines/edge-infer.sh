#!/usr/bin/env bash
# The edge side: receives a camera's RTP video and audio
# (pipelines/edge-camera.sh), takes each frame's capture time from the RTCP
# sender reports (rtpbin add-reference-timestamp-meta=true) and counts the
# crowd with avcrowdcount deadline-reference=capture: a frame that spent
# longer on the network has less of its budget left and runs fewer exits.
#
#   pipelines/edge-infer.sh MODEL [BASE_PORT] [avcrowdcount properties...]
#   SINK replaces the sink (default: fakesink; results are printed as element
#   messages by gst-launch-1.0 -m); e.g. SINK="earlyexitpublish method=mqtt
#   host=broker ! fakesink" to publish them (docs/publish.md).
#
# Defaults: deadline=200 ms from capture, window=200 ms (the frame waits for
# 100 ms of audio after it: part of its budget), rtpbin latency 50 ms.
# GST_PLUGIN_PATH must reach the plugin (unset: this script uses build/gst).
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
model=$1
port=${2:-5000}
shift $(($# >= 2 ? 2 : 1))

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${GST_PLUGIN_PATH:-}" ] && [ -d "$here/build/gst" ]; then
  export GST_PLUGIN_PATH="$here/build/gst"
fi
sink=${SINK:-fakesink}
vcaps="application/x-rtp,media=video,clock-rate=90000,encoding-name=JPEG,payload=26"
acaps="application/x-rtp,media=audio,clock-rate=16000,encoding-name=L16,channels=1,payload=96"
queue="queue max-size-buffers=0 max-size-bytes=0 max-size-time=1000000000"

# shellcheck disable=SC2086  # sink and queue are word lists
exec gst-launch-1.0 -e -m \
  rtpbin name=rb latency=50 add-reference-timestamp-meta=true \
  udpsrc port="$port" caps="$vcaps" ! rb.recv_rtp_sink_0 \
  udpsrc port=$((port + 1)) ! rb.recv_rtcp_sink_0 \
  udpsrc port=$((port + 2)) caps="$acaps" ! rb.recv_rtp_sink_1 \
  udpsrc port=$((port + 3)) ! rb.recv_rtcp_sink_1 \
  rb. ! rtpjpegdepay ! jpegdec ! videoconvert ! $queue ! c.video \
  rb. ! rtpL16depay ! audioconvert ! audioresample ! \
    audio/x-raw,format=F32LE,rate=16000,channels=1 ! $queue ! c.audio \
  avcrowdcount name=c model-file="$model" deadline-reference=capture \
    deadline=200000000 window=200000000 "$@" ! $sink
