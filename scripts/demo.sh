#!/usr/bin/env bash
# `make demo`: runs avcrowdcount end to end on generated media in well under a
# minute: makes a short audio+video clip, counts it with the demo model through
# the embedding example (one line per frame), summarises, and writes an
# annotated copy with pipelines/file-pipeline.sh.
# Usage: scripts/demo.sh [BUILD_DIR]
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
out=${DEMO_OUT:-$build/demo}
mkdir -p "$out"
export GST_PLUGIN_PATH="$PWD/$build/gst"
model="$build/pipelines/demo-model.safetensors"
example="$build/pipelines/embed-example"
for f in "$model" "$example" "$build/gst/libgstearlyexit.so"; do
  [ -e "$f" ] || { echo "demo: $f is missing; build first (make build)" >&2; exit 1; }
done

# Prints the JSON lines of embed-example as a table (all: every frame) and a
# summary.
report() {
  python3 - "$1" "$2" <<'PY'
import collections, json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
every = sys.argv[2] == "all"
if every:
    print(f"{'frame':>5} {'pts s':>6} {'count':>8}  {'exit':<5} {'fresh':<5} "
          f"{'audio':>5} {'latency ms':>10}  deadline")
    for r in rows:
        audio = f"{100 * r['audio_coverage']:.0f}%" if r["audio_used"] else "none"
        print(f"{r['frame']:>5} {r['pts']:>6.2f} {r['count']:>8.2f}  {r['exit']:<5} "
              f"{'yes' if r['fresh'] else 'no':<5} {audio:>5} "
              f"{r['inference_ms']:>10.1f}  {'MISSED' if r['deadline_missed'] else 'ok'}")
fresh = [r for r in rows if r["fresh"]]
exits = collections.Counter(r["exit"] for r in fresh)
lat = sorted(r["inference_ms"] for r in fresh)
print(f"  frames {len(rows)}, network runs {len(fresh)} "
      f"({len(rows) - len(fresh)} carried over), deadline "
      f"{rows[0]['deadline_ms']:.0f} ms")
print("  exits taken: " + ", ".join(f"{e} {n}" for e, n in sorted(exits.items())))
print(f"  latency ms: mean {sum(lat) / len(lat):.1f}, median {lat[len(lat) // 2]:.1f}, "
      f"max {lat[-1]:.1f}; deadline misses {sum(r['deadline_missed'] for r in fresh)}")
PY
}

echo "== gst-earlyexit demo: avcrowdcount =="
echo "NOTE: the model has RANDOM weights (models/convert/audiocsrnet.py --random --seed 2024,"
echo "      written at build time, 256x144 input, widths / 4). The counts it prints are"
echo "      meaningless; the demo shows the pipeline, the deadline scheduling and the results."
echo

echo "1. A 5 s clip: a moving ball and pink noise, 320x240 at 25 fps, MJPEG + FLAC in Matroska:"
gst-launch-1.0 -q -e \
  videotestsrc num-buffers=125 pattern=ball ! video/x-raw,width=320,height=240,framerate=25/1 ! \
    jpegenc ! queue ! mux. \
  audiotestsrc num-buffers=50 samplesperbuffer=1600 wave=pink-noise volume=0.3 ! \
    audio/x-raw,rate=16000,channels=1 ! audioconvert ! flacenc ! queue ! mux. \
  matroskamux name=mux ! filesink location="$out/sample.mkv"
ls -l "$out/sample.mkv"
echo

echo "2. avcrowdcount on it through decodebin, policy anytime, deadline one frame (40 ms);"
echo "   pipelines/embed-example.c reads the result meta of every buffer (JSON lines in"
echo "   $out/results.jsonl):"
"$example" "$model" "$out/sample.mkv" > "$out/results.jsonl" 2> "$out/stats.txt" || {
  cat "$out/stats.txt" >&2; exit 1; }
report "$out/results.jsonl" all
echo "  element stats: $(grep avcrowdcount-stats "$out/stats.txt" | cut -c1-400)"
echo

# 1.25 x the mean time to the first exit measured above (from the element's
# stats): the first exits fit, the last ones do not.
tight=$(python3 -c '
import re, sys
m = re.search(r"mean-inference-time=\(guint64\)< ([0-9]+)", open(sys.argv[1]).read())
print(int(int(m.group(1)) * 1.25) if m else 10000000)' "$out/stats.txt")
echo "3. The same clip with a $((tight / 1000)) us deadline, 1.25 x the mean time to the first exit"
echo "   above (the element starts only exits expected to finish in time and takes the"
echo "   newest one finished), and interval=2 (every other frame carries the last result):"
"$example" --deadline "$tight" --interval 2 "$model" "$out/sample.mkv" \
  > "$out/results-tight.jsonl" 2> "$out/stats-tight.txt" || {
  cat "$out/stats-tight.txt" >&2; exit 1; }
report "$out/results-tight.jsonl" summary
echo

echo "4. An annotated copy (earlyexitoverlay draws count, exit and latency) by"
echo "   pipelines/file-pipeline.sh:"
pipelines/file-pipeline.sh "$model" "$out/sample.mkv" "$out/annotated.mkv" > "$out/file-pipeline.log" 2>&1 || {
  cat "$out/file-pipeline.log" >&2; exit 1; }
ls -l "$out/annotated.mkv"
echo
echo "Done. Counts above are meaningless (random weights); train or convert a real model with"
echo "models/convert/audiocsrnet.py --checkpoint ... to count people."
