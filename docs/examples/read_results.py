#!/usr/bin/python3
"""Read the results of the earlyexit elements from Python.

Runs a pipeline, reads the result meta of every buffer leaving each earlyexit
element (avcrowdcount, exitclassify, audioexitclassify) in a pad probe, and
the element messages from the bus, then prints one line per result. Works on
GStreamer 1.22 (Debian 12: python3-gi, python3-gst-1.0).

    GST_PLUGIN_PATH=build/gst python3 docs/examples/read_results.py \\
        --launch "PIPELINE"         # any gst-launch-1.0 description
    GST_PLUGIN_PATH=build/gst python3 docs/examples/read_results.py \\
        --sc-model build/pipelines/demo-sc-classifier.safetensors
                                    # 3 s of a tone in 1 s buffers into
                                    # audioexitclassify with a 250 ms hop

--json prints one JSON object a line instead (what the project's test reads).
docs/python.md explains it.
"""
import argparse
import base64
import json
import signal
import sys
import threading

import gi
import numpy as np

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

META = "EarlyExitResultMeta"  # the custom meta of every result
MORE = "more-results"  # the meta's later results of the same buffer
ELEMENTS = ("avcrowdcount", "exitclassify", "audioexitclassify")
ALERT = "earlyexit/alert"  # avcrowdcount's alert crossings (element messages)


def to_python(value):
    """A field's value as plain Python (arrays as lists, structures as dicts)."""
    if isinstance(value, Gst.Structure):
        return {value.nth_field_name(i): to_python(value.get_value(value.nth_field_name(i)))
                for i in range(value.n_fields())}
    if isinstance(value, (Gst.ValueArray, Gst.ValueList, list, tuple)):
        return [to_python(v) for v in value]
    return value


def buffer_results(buf):
    """Every result the buffer carries, oldest first, as dicts.

    A buffer has at most one EarlyExitResultMeta: its fields are the first
    result and its "more-results" field (when the buffer has several: several
    audio windows completed by one buffer) lists the later ones."""
    meta = buf.get_custom_meta(META)
    if meta is None:
        return []
    first = to_python(meta.get_structure())  # copies: the buffer owns the meta
    later = first.pop(MORE, [])
    return [first] + later


def probe(pad, info, emit):
    """Buffer probe on an earlyexit element's src pad (streaming thread)."""
    buf = info.get_buffer()
    results = buffer_results(buf)
    for i, r in enumerate(results):
        emit({"source": "meta", "element": pad.get_parent_element().get_name(),
              "buffer-pts": buf.pts, "buffer-duration": buf.duration,
              "index": i, "of": len(results), **r})
    return Gst.PadProbeReturn.OK


PRINT_LOCK = threading.Lock()  # probes run in streaming threads


def json_value(v):
    """JSON for what json cannot write: the density map as earlyexitpublish
    writes it (base64 of its float32 bytes), anything else as text."""
    if isinstance(v, GLib.Bytes):
        return base64.b64encode(v.get_data()).decode()
    return str(v)


def density_map(r):
    """avcrowdcount with density-map=true: the map as a (height, width) array, a
    copy (the structure's memory goes with the buffer); None without a map."""
    if "density-map" not in r:
        return None
    m = np.frombuffer(r["density-map"].get_data(), np.float32).reshape(r["density-map-height"], r["density-map-width"])
    return m.copy()


def print_result(r, as_json):
    if as_json:
        line = json.dumps(r, default=json_value)
    elif r["source"] == "meta":
        line = (f"meta    {r['element']} buffer {r['buffer-pts'] / Gst.SECOND:8.3f} s "
                f"result {r['index'] + 1}/{r['of']}: {describe(r)}")
    else:
        line = (f"message {r['element']} at {r['timestamp'] / Gst.SECOND:8.3f} s: "
                f"{describe(r)}")
    with PRINT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def describe(r):
    task = r.get("task")
    if r.get("valid") is False:  # the network's output was not finite
        what = f"{task} invalid"
    elif task == "count":
        what = f"count {r['count']:.1f}"
        m = density_map(r)
        if m is not None:
            what += f" map {m.shape[1]}x{m.shape[0]} sum {m.sum():.1f}"
        elif r.get("has-map") is False:
            what += " (this exit has no map)"
        for region in to_python(r).get("regions", []):
            count = region.get("count")
            what += f" {region['name']} {'-' if count is None else f'{count:.1f}'}"
            what += " ALERT" if region.get("alert") else ""
    elif task == "label":
        what = f"label {r.get('label')} ({r.get('confidence', float('nan')):.2f})"
        if r.get("window-start") is not None:  # audioexitclassify
            what += f" window from {r['window-start'] / Gst.SECOND:.3f} s"
    else:
        what = f"task {task}"
    fresh = "" if r.get("fresh") else " carried"
    missed = " missed" if r.get("deadline-missed") else ""
    return f"{what} exit {r.get('exit')}{fresh}{missed}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--launch", help="a pipeline description (gst-launch-1.0 syntax)")
    src.add_argument("--sc-model", help="a Speech Commands classifier: run the tone example")
    ap.add_argument("--hop", type=float, default=0.25,
                    help="--sc-model: seconds between windows (default 0.25)")
    ap.add_argument("--json", action="store_true", help="one JSON object per line")
    args = ap.parse_args()

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet end under `| head`
    Gst.init(None)
    if args.sc_model:
        # 1 s buffers, 1 s windows every hop: after the first, each buffer
        # completes 1 / hop windows, so it carries that many results.
        description = (
            "audiotestsrc num-buffers=3 samplesperbuffer=16000 freq=440 ! "
            "audio/x-raw,format=F32LE,rate=16000,channels=1 ! "
            f"audioexitclassify model-file=\"{args.sc_model}\" device=cpu "
            f"hop={int(args.hop * Gst.SECOND)} ! fakesink")
    else:
        description = args.launch
    try:
        pipeline = Gst.parse_launch(description)
    except GLib.Error as e:
        sys.exit(f"read_results.py: bad pipeline: {e.message}")

    def emit(r):
        print_result(r, args.json)

    ours = [e for e in pipeline.iterate_recurse() if e.get_factory()
            and e.get_factory().get_name() in ELEMENTS]
    if not ours:
        sys.exit("read_results.py: the pipeline has no avcrowdcount, exitclassify "
                 "or audioexitclassify element")
    for element in ours:
        element.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe, emit)

    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    failed = None
    try:
        while True:
            # a short wait, so that Ctrl-C (a live source never ends) is seen
            msg = bus.timed_pop_filtered(
                100 * Gst.MSECOND,
                Gst.MessageType.ELEMENT | Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if msg is None:
                continue
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                failed = f"{msg.src.get_name()}: {err.message} ({debug})"
                break
            if msg.type == Gst.MessageType.EOS:
                break
            s = msg.get_structure()
            if s is not None and s.get_name() in ELEMENTS:
                emit({"source": "message", "element": msg.src.get_name(), **to_python(s)})
            elif s is not None and s.get_name() == ALERT:
                a = to_python(s)
                with PRINT_LOCK:
                    print(json.dumps(a) if args.json else
                          f"alert   {msg.src.get_name()} {a['region']} {a['change']}: count "
                          f"{a['count']:.1f} (above {a['alert-threshold']:g}, clears below "
                          f"{a['alert-clear']:g})", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        pipeline.set_state(Gst.State.NULL)

    if failed:
        sys.exit(f"read_results.py: error from {failed}")


if __name__ == "__main__":
    main()
