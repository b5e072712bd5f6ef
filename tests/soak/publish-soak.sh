#!/usr/bin/env bash
# Publish soak (not part of `make check`): a live 25 fps pipeline
#   videotestsrc ! exitclassify ! earlyexitpublish method=mqtt ! fakesink
# publishes to a mosquitto broker this script starts on 127.0.0.1 for
# DURATION seconds (default 600) while a mosquitto_sub counts the messages.
# The broker is stopped for 5 s at a third of the run, so the queue fills,
# drops and reconnection are exercised too. Prints the pipeline's RSS every
# 30 s and at the start (after 30 s: model loaded), middle and end, the
# messages received and the element's counts (its INFO log at stop).
#
# usage: tests/soak/publish-soak.sh [BUILD_DIR] [DURATION_S]
set -euo pipefail

BUILD=${1:-build}
DURATION=${2:-600}
FPS=25
FRAMES=$((DURATION * FPS))
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
MODEL=$BUILD/pipelines/demo-classifier.safetensors

for f in "$MOSQUITTO" "$(command -v mosquitto_sub)" "$MODEL" "$BUILD/gst/libgstearlyexit.so"; do
  [ -e "$f" ] || { echo "publish-soak: $f missing (build first; apt-get install mosquitto mosquitto-clients)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/publish-soak-XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
$( [ "$(id -u)" = 0 ] && echo "user root" )
EOF

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

start_broker() {
  "$MOSQUITTO" -c "$WORK/mosquitto.conf" >>"$WORK/mosquitto.log" 2>&1 &
  BROKER=$!
  pids+=("$BROKER")
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "publish-soak: mosquitto did not start (see $WORK/mosquitto.log)" >&2
  exit 1
}

start_broker
mosquitto_sub -h 127.0.0.1 -p "$PORT" -t 'earlyexit/#' -q 1 -i soak-sub -c >"$WORK/received.jsonl" &
pids+=($!)
sleep 0.5

export GST_PLUGIN_PATH="$BUILD/gst" OMP_WAIT_POLICY=passive GST_DEBUG=earlyexitpublish:4
gst-launch-1.0 -q \
  videotestsrc is-live=true num-buffers=$FRAMES ! \
  video/x-raw,width=320,height=240,framerate=$FPS/1 ! \
  exitclassify model-file="$MODEL" device=cpu interval=5 ! \
  earlyexitpublish name=pub method=mqtt host=127.0.0.1 port=$PORT source=soak \
    max-queued=200 flush-timeout=10000000000 ! \
  fakesink sync=true >"$WORK/pipeline.log" 2>&1 &
PIPE=$!
pids+=("$PIPE")

rss() { awk '/VmRSS/ {print $2}' /proc/$PIPE/status 2>/dev/null || echo 0; }
echo "publish-soak: $DURATION s at $FPS fps, broker on port $PORT, files in $WORK"
printf "%8s %10s %10s\n" "t (s)" "RSS (kB)" "received"
start=$(date +%s)
start_rss="" mid_rss="" end_rss="" stopped=0
while kill -0 "$PIPE" 2>/dev/null; do
  sleep 30
  t=$(( $(date +%s) - start ))
  r=$(rss)
  [ "$r" = 0 ] && break
  printf "%8d %10d %10d\n" "$t" "$r" "$(wc -l <"$WORK/received.jsonl")"
  [ -z "$start_rss" ] && start_rss=$r
  [ -z "$mid_rss" ] && [ "$t" -ge $((DURATION / 2)) ] && mid_rss=$r
  end_rss=$r
  if [ $stopped = 0 ] && [ "$t" -ge $((DURATION / 3)) ]; then
    kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
    sleep 5
    start_broker
    stopped=1
  fi
done
wait "$PIPE" || true
sleep 1
received=$(sort -u <(grep -o '"seq":[0-9]*' "$WORK/received.jsonl") | wc -l)
echo "RSS start (30 s) ${start_rss} kB, middle ${mid_rss} kB, end ${end_rss} kB"
echo "messages received (distinct seq): $received of $FRAMES frames"
echo "element: $(grep -o 'published [0-9]*, dropped [0-9]*, errors [0-9]*' "$WORK/pipeline.log" | tail -1)"
