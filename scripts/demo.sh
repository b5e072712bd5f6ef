#!/usr/bin/env bash
# `make demo`: runs avcrowdcount end to end with the bundled trained model
# (models/default/crowd-synth-slvit.safetensors) on a synthetic clip it has
# never seen, in about a minute: generates the clip (models/synth/scenes.py),
# counts it through the embedding example (one line per frame) against the
# ground truth, again under a tight deadline, and writes an annotated video
# and a strip of PNG frames.
# Usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-$build/demo}
mkdir -p "$out"
export GST_PLUGIN_PATH="$PWD/$build/gst"
export OMP_WAIT_POLICY=passive
model=${DEMO_MODEL:-models/default/crowd-synth-slvit.safetensors}
example="$build/pipelines/embed-example"
for f in "$model" "$example" "$build/gst/libgstearlyexit.so" "$build/models/earlyexit"; do
  [ -e "$f" ] || { echo "demo: $f is missing; build first (make build)" >&2; exit 1; }
done
py=$(scripts/find-python.sh)

# Prints the JSON lines of embed-example against truth.json: every
# second's frame (all) or only the summary, with MAE per exit and per light.
report() {
  "$py" - "$1" "$out/clip/truth.json" "$2" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
truth = {round(t["pts"], 3): t for t in json.load(open(sys.argv[2]))["frames"]}
every = sys.argv[3] == "all"
if every:
    print(f"{'time s':>6} {'light':<6} {'truth':>5} {'count':>7} {'error':>7}  {'exit':<5} "
          f"{'audio':>5} {'ms':>6}")
err = collections.defaultdict(list)
for r in rows:
    t = truth[round(r["pts"], 3)]
    e = r["count"] - t["count"]
    if r["fresh"]:
        err[r["exit"]].append(abs(e))
        err["light " + t["light"]].append(abs(e))
    if every and t["frame"] % 5 == 0:
        audio = f"{100 * r['audio_coverage']:.0f}%" if r["audio_used"] else "none"
        print(f"{r['pts']:>6.1f} {t['light']:<6} {t['count']:>5} {r['count']:>7.1f} "
              f"{e:>+7.1f}  {r['exit']:<5} {audio:>5} {r['inference_ms']:>6.1f}")
fresh = [r for r in rows if r["fresh"]]
lat = sorted(r["inference_ms"] for r in fresh)
print(f"  frames {len(rows)}, network runs {len(fresh)}, deadline "
      f"{rows[0]['deadline_ms']:.0f} ms, deadline misses "
      f"{sum(r['deadline_missed'] for r in fresh)}; latency ms: median "
      f"{lat[len(lat) // 2]:.1f}, max {lat[-1]:.1f}")
print("  mean absolute error by exit: " + ", ".join(
    f"{k} {sum(v) / len(v):.1f} ({len(v)} frames)" for k, v in sorted(err.items())
    if not k.startswith("light")))
print("  mean absolute error by light: " + ", ".join(
    f"{k[6:]} {sum(v) / len(v):.1f}" for k, v in sorted(err.items()) if k.startswith("light")))
PY
}

echo "== gst-earlyexit demo: avcrowdcount with the bundled trained model =="
"$build/models/earlyexit" info "$model" | sed -n '1,3p'
echo "      (no real crowd data can be had where this project is built: the model"
echo "      knows only these synthetic scenes; see docs/default-model.md)"
echo

echo "1. A 16 s clip it has never seen (models/synth/scenes.py clip --kind demo):"
echo "   people walk in and out of one place, the crowd grows to about 110 and thins"
echo "   out; the light goes down from 5.3 s to 10.7 s; 256x144 at 5 fps, raw RGB"
echo "   + FLAC in Matroska, with the true count of every frame in truth.json."
"$py" models/synth/scenes.py clip --kind demo --seed 1 --mkv --out "$out/clip" | cut -c1-200
echo

echo "2. avcrowdcount through decodebin, policy anytime, deadline one frame (200 ms);"
echo "   pipelines/embed-example.c reads the result meta of every buffer (JSON lines"
echo "   in $out/results.jsonl). One line per second:"
"$example" "$model" "$out/clip/clip.mkv" > "$out/results.jsonl" 2> "$out/stats.txt" || {
  cat "$out/stats.txt" >&2; exit 1; }
report "$out/results.jsonl" all
echo "  (one place, so the errors of its frames go together; the model's MAE over 600"
echo "  held-out scenes, per exit, is in docs/default-model.md)"
echo

# 1.25 x the mean time to the first exit measured above (from the element's
# stats): the first exits fit, the last ones do not.
tight=$("$py" -c '
import re, sys
m = re.search(r"mean-inference-time=\(guint64\)< ([0-9]+)", open(sys.argv[1]).read())
print(int(int(m.group(1)) * 1.25) if m else 10000000)' "$out/stats.txt")
echo "3. The same clip with a $((tight / 1000)) us deadline, 1.25 x the mean time to the first"
echo "   exit above: the element starts only the exits expected to finish in time and"
echo "   publishes the newest one finished (earlier exits, larger errors):"
"$example" --deadline "$tight" "$model" "$out/clip/clip.mkv" \
  > "$out/results-tight.jsonl" 2> "$out/stats-tight.txt" || {
  cat "$out/stats-tight.txt" >&2; exit 1; }
report "$out/results-tight.jsonl" summary
echo

regions="left: 0.02,0.28 0.45,0.28 0.45,0.62 0.02,0.62 alert=35; right: 0.55,0.28 0.98,0.28 0.98,0.62 0.55,0.62"
echo "4. An annotated copy, scaled to 768x432 after counting, and one PNG per second."
echo "   avcrowdcount attaches the density map and counts two regions of the scene,"
echo "   left and right of the middle, the left one alerting above 35 people"
echo "   (regions=\"$regions\");"
echo "   earlyexitoverlay draws the map as a heatmap, the regions with their counts (red"
echo "   while alerting), then count, exit, latency and audio coverage:"
rm -rf "$out/strip" && mkdir -p "$out/strip"
queue="queue max-size-buffers=0 max-size-bytes=0 max-size-time=2000000000"
# shellcheck disable=SC2086  # queue is a word list
gst-launch-1.0 -e -m \
  avcrowdcount name=c model-file="$model" density-map=true regions="$regions" ! videoscale ! video/x-raw,width=768,height=432 ! \
    earlyexitoverlay ! videoconvert ! tee name=t \
  t. ! $queue ! jpegenc ! matroskamux ! filesink location="$out/annotated.mkv" \
  t. ! $queue ! videorate drop-only=true ! video/x-raw,framerate=1/1 ! pngenc ! \
    multifilesink location="$out/strip/frame-%02d.png" \
  filesrc location="$out/clip/clip.mkv" ! decodebin name=d \
  d. ! $queue ! videoconvert ! c.video \
  d. ! $queue ! audioconvert ! audioresample ! audio/x-raw,format=F32LE,rate=16000,channels=1 ! c.audio \
  > "$out/annotated.log" 2>&1 || { cat "$out/annotated.log" >&2; exit 1; }
ls -l "$out/annotated.mkv"
echo "   alert messages (earlyexit/alert) posted on the way:"
grep -o 'earlyexit/alert, region=(string)[a-z]*, change=(string)[a-z]*, count=(double)[0-9.]*' \
  "$out/annotated.log" | sed -e 's/^earlyexit\/alert, /     /' -e 's/([a-z]*)//g' || echo "     none"
echo "   $(ls "$out/strip" | wc -l) PNG frames in $out/strip/ (frame-NN.png = second NN)"
echo
echo "Done. Other models: DEMO_MODEL=models/default/crowd-synth-cnn.safetensors make demo;"
echo "accuracy per exit: models/synth/report.py; retraining: models/synth/train.py."
