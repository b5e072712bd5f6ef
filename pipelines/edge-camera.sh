#!/usr/bin/env bash
# The camera side of an edge deployment: video and audio sent as RTP over UDP,
# with RTCP sender reports that carry the capture clock (NTP), so that the
# edge box can count every frame's deadline from its capture
# (pipelines/edge-infer.sh, docs/deploying.md).
#
#   pipelines/edge-camera.sh EDGE_HOST [BASE_PORT]
#   VIDEO_SRC, AUDIO_SRC replace the camera and microphone (default: test
#   sources, live); WIDTH=640 HEIGHT=360 FPS=25.
#
# Ports: BASE_PORT (default 5000) video RTP, +1 video RTCP, +2 audio RTP,
# +3 audio RTCP. Video is JPEG (rtpjpegpay), audio 16 kHz mono L16.
# The sender reports use the real-time clock (ntp-time-source=ntp): keep the
# camera's and the edge box's clocks in sync with NTP (chrony, systemd-timesyncd),
# since a clock offset between them counts as network delay.
set -euo pipefail

if [ $# -lt 1 ]; then
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
host=$1
port=${2:-5000}
width=${WIDTH:-640} height=${HEIGHT:-360} fps=${FPS:-25}
video_src=${VIDEO_SRC:-videotestsrc is-live=true pattern=ball}
audio_src=${AUDIO_SRC:-audiotestsrc is-live=true wave=pink-noise}
udp="sync=false async=false host=$host"

# shellcheck disable=SC2086  # sources are word lists
exec gst-launch-1.0 -e \
  rtpbin name=rb ntp-time-source=ntp rtcp-sync-send-time=true \
  $video_src ! video/x-raw,width="$width",height="$height",framerate="$fps"/1 ! \
    videoconvert ! video/x-raw,format=I420 ! jpegenc quality=85 ! rtpjpegpay ! \
    rb.send_rtp_sink_0 \
  rb.send_rtp_src_0 ! udpsink $udp port="$port" \
  rb.send_rtcp_src_0 ! udpsink $udp port=$((port + 1)) \
  $audio_src ! audioconvert ! audioresample ! \
    audio/x-raw,rate=16000,channels=1 ! rtpL16pay ! rb.send_rtp_sink_1 \
  rb.send_rtp_src_1 ! udpsink $udp port=$((port + 2)) \
  rb.send_rtcp_src_1 ! udpsink $udp port=$((port + 3))
