"""earlyexit-train: early exits for a frozen backbone, trained classifier-wise on
your data, written as a gst-earlyexit model file (docs/your-own-model.md).

    earlyexit-train images DATA --out-dir OUT -- --arch resnet152 --checkpoint r152.pth
    earlyexit-train audio DATA --out-dir OUT -- --arch resnet152 --checkpoint sc.pth \\
        --audio-features sc --input-size 224x224
    earlyexit-train crowd DATA --out-dir OUT -- --checkpoint all_ep_274.pth --input-size 1024x576

Everything after `--` goes to the converter (models/convert/classifier.py for
images and audio, models/convert/audiocsrnet.py for crowds): the backbone's
checkpoint, its input size and preprocessing, the exits' placement and shape.
For each exit kind (--kinds), the converter writes the untrained model file;
the trainer reads the backbone back from it, computes every tap the exits read
once (cached in --work), trains each exit on its own, and writes
OUT/NAME-KIND.safetensors through the converter's writer, the exits checkpoint
OUT/NAME-KIND-exits.pth (what the converter's --exits reads) and the report
OUT/NAME-report.md and .json.
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "models", "convert"))
import audiocsrnet as crowd_conv  # noqa: E402
import backbones  # noqa: E402
import classifier as classifier_conv  # noqa: E402
import data as ds  # noqa: E402
import exits_ref  # noqa: E402
import fit  # noqa: E402

LAYOUTS = ("images", "audio", "crowd")


class TrainError(Exception):
    pass


def log(msg):
    print(msg, flush=True)


# ----------------------------------------------------------------- options

def parser():
    ap = argparse.ArgumentParser(
        prog="earlyexit-train",
        description="Train early exits for a frozen backbone on your data "
                    "(classifier-wise) and write a gst-earlyexit model file. Arguments "
                    "after `--` go to the converter (classifier.py for images and audio, "
                    "audiocsrnet.py for crowd).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("layout", choices=LAYOUTS, help="the data set's layout")
    ap.add_argument("data", help="the data folder")
    ap.add_argument("--out-dir", required=True, help="folder for the model files and report")
    ap.add_argument("--name", default="model", help="file name stem")
    ap.add_argument("--kinds", default="slvit,cnn",
                    help="exit kinds to train, one model file each (slvit, cnn)")
    ap.add_argument("--work", help="cache folder for the taps; OUT-DIR/cache if not given")
    g = ap.add_argument_group("schedule (the paper's section 4.3 by default)")
    g.add_argument("--epochs", type=int, default=100, help="at most this many epochs")
    g.add_argument("--batch", type=int, default=32, help="samples per optimiser step")
    g.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate")
    g.add_argument("--lr-factor", type=float, default=0.6,
                   help="learning rate factor on a plateau of the validation loss")
    g.add_argument("--lr-patience", type=int, default=2,
                   help="epochs without improvement before the factor applies")
    g.add_argument("--early-stop", type=int, default=5,
                   help="stop after this many epochs without improvement")
    g.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of each class (or of the crowd samples) held out when the "
                        "data has no train/val (density/test) split")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=1, help="torch threads")
    g = ap.add_argument_group("copycat fine-tuning (paper section 3.3)")
    g.add_argument("--copycat", metavar="DIR",
                   help="unlabelled samples (images, WAV clips, or a crowd layout's "
                        "imgs/ and auds/) labelled by the backbone and mixed in")
    g.add_argument("--copycat-ratio", type=float, default=2.0,
                   help="copycat samples per real sample in each epoch")
    g = ap.add_argument_group("report")
    g.add_argument("--earlyexit", help="the earlyexit program, for FLOPs to each exit "
                   "(default: on PATH, else the project's build/models/earlyexit)")
    return ap


def split_args(argv):
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _has(args, *opts):
    return any(a in opts or any(a.startswith(o + "=") for o in opts) for a in args)


# ----------------------------------------------------------------- data

def make_loaders(layout, o):
    """(train samples, val samples, labels or None, load(cfg) -> sample loader)."""
    if layout in ("images", "audio"):
        ext = ds.IMAGE_EXT if layout == "images" else ds.AUDIO_EXT
        classes, train, val = ds.class_folders(o.data, ext, o.val_fraction, o.seed)

        def loader(cfg):
            if layout == "images":
                return lambda s: (ds.preprocess_pixels(ds.load_image(s[0], cfg), cfg),
                                  None, s[1])
            return lambda s: (ds.audio_input(s[0], cfg), None, s[1])
        return train, val, classes, loader
    train, val = ds.crowd_folder(o.data, o.val_fraction, o.seed)

    def crowd_loader(cfg):
        return lambda s: (ds.preprocess_pixels(ds.load_image(s[1], cfg), cfg),
                          ds.logmel(s[2]), s[3])
    return train, val, None, crowd_loader


def copycat_samples(layout, folder):
    """Unlabelled samples of --copycat, shaped like the layout's samples."""
    if layout == "crowd":
        imgs = os.path.join(folder, "imgs")
        if not os.path.isdir(imgs):
            raise TrainError(f"--copycat {folder}: no imgs/ folder")
        ids = sorted(f[:-4] for f in os.listdir(imgs) if f.endswith(".jpg"))
        rows = []
        for i in ids:
            aud = os.path.join(folder, "auds", i + ".wav")
            if not os.path.exists(aud):
                raise TrainError(f"--copycat: {aud} is missing")
            rows.append((i, os.path.join(imgs, i + ".jpg"), aud, 0.0))
        return rows
    ext = ds.IMAGE_EXT if layout == "images" else ds.AUDIO_EXT
    rows = []
    for dirpath, _, files in sorted(os.walk(folder)):
        rows += [(os.path.join(dirpath, f), 0) for f in sorted(files) if f.lower().endswith(ext)]
    if not rows:
        raise TrainError(f"--copycat {folder}: no {'/'.join(ext)} files")
    return rows


def _data_key(samples, cfg_backbone, tensors):
    h = hashlib.sha256()
    h.update(json.dumps(cfg_backbone, sort_keys=True).encode())
    for k in sorted(tensors):
        if not k.startswith("exits."):
            h.update(k.encode())
            h.update(np.ascontiguousarray(tensors[k]).tobytes())
    for s in samples:
        h.update(repr(s).encode())
        for p in s:  # the files of a sample: their size and time
            if isinstance(p, str) and os.path.isfile(p):
                st = os.stat(p)
                h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def cached_taps(backbone, samples, load, taps, label, work, cfg, tensors):
    """The taps of `samples`, computed once and kept in WORK (keyed by the
    backbone's weights, its config and the files)."""
    cfg_backbone = {k: v for k, v in cfg.items() if k != "exits"}
    key = _data_key(samples, cfg_backbone, tensors)
    path = os.path.join(work, f"taps-{label}-{key}-{'-'.join(sorted(taps))}.pt")
    if os.path.exists(path):
        log(f"  {label}: taps from the cache {path}")
        return fit.TapSet.load(path)
    t0 = time.time()
    data = fit.compute_taps(backbone, samples, load, sorted(taps), label)
    data.save(path)
    log(f"  {label}: {len(samples)} samples through the backbone in {time.time() - t0:.1f} s "
        f"(cached in {path})")
    return data


# ----------------------------------------------------------------- report

def find_earlyexit(given):
    if given:
        return given
    found = shutil.which("earlyexit")
    if found:
        return found
    for build in sorted(os.listdir(ROOT)):
        cand = os.path.join(ROOT, build, "models", "earlyexit")
        if build.startswith("build") and os.access(cand, os.X_OK):
            return cand
    return None


def engine_costs(binary, model):
    """{exit: (params, flops to exit)} from `earlyexit info --json`, or None."""
    if not binary:
        return None
    r = subprocess.run([binary, "info", model, "--json"], capture_output=True, text=True)
    if r.returncode:
        raise TrainError(f"earlyexit info {model} failed: {r.stderr.strip()}")
    info = json.loads(r.stdout)
    return {e["name"]: (e["params"], e["flops_to_exit"]) for e in info["exits"]}


def report(rows, task, final_metric, costs):
    """Markdown table: per exit, the held-out accuracy or MAE, parameters, FLOPs
    to the exit and the acceleration against the full backbone."""
    what = "accuracy (%)" if task == "classify" else "MAE"
    lines = [f"| exit | kind | tap | val {what} | exit parameters | GFLOP to exit | "
             "acceleration |", "|---|---|---|---|---|---|---|"]

    def fmt(m):
        return f"{100 * m:.2f}" if task == "classify" else f"{m:.3f}"

    final_flops = None
    for r in rows:
        c = costs.get(r["file"]) if costs else None
        if c and "final" in c:
            final_flops = c["final"][1]
    for r in rows:
        c = costs.get(r["file"], {}).get(r["exit"]) if costs else None
        gf = f"{c[1] / 1e9:.3f}" if c else "-"
        acc = f"{final_flops / c[1]:.2f}x" if c and final_flops else "-"
        lines.append(f"| {r['exit']} | {r['kind']} | {r['tap']} | {fmt(r['metric'])} | "
                     f"{r['params']:,} | {gf} | {acc} |")
    gf = f"{final_flops / 1e9:.3f}" if final_flops else "-"
    lines.append(f"| final | backbone | - | {fmt(final_metric)} | - | {gf} | 1.00x |")
    return "\n".join(lines)


# ----------------------------------------------------------------- main

def backbone_metric(task, data):
    if task == "classify":
        return float((data.final.argmax(1) == data.y).float().mean())
    return float((data.final - data.y).abs().mean())


def run(argv):
    own, conv_args = split_args(argv)
    o = parser().parse_args(own)
    kinds = [k for k in o.kinds.split(",") if k]
    for k in kinds:
        if k not in ("slvit", "cnn"):
            raise TrainError(f"--kinds: unknown kind {k!r} (slvit, cnn)")
    if not kinds:
        raise TrainError("--kinds: name at least one kind")
    if o.copycat_ratio < 0:
        raise TrainError("--copycat-ratio must be >= 0")
    for opt, ok, what in (("epochs", o.epochs >= 1, ">= 1"), ("batch", o.batch >= 1, ">= 1"),
                          ("lr", o.lr > 0, "> 0"),
                          ("lr-factor", 0 < o.lr_factor < 1, "between 0 and 1"),
                          ("lr-patience", o.lr_patience >= 0, ">= 0"),
                          ("early-stop", o.early_stop >= 1, ">= 1"),
                          ("val-fraction", 0 < o.val_fraction < 1, "between 0 and 1"),
                          ("threads", o.threads >= 1, ">= 1")):
        if not ok:
            raise TrainError(f"--{opt} must be {what}")
    torch.set_num_threads(o.threads)
    os.makedirs(o.out_dir, exist_ok=True)
    work = o.work or os.path.join(o.out_dir, "cache")
    os.makedirs(work, exist_ok=True)
    task = "count" if o.layout == "crowd" else "classify"
    conv = crowd_conv if task == "count" else classifier_conv
    if not _has(conv_args, "--checkpoint", "--random"):
        raise TrainError("give the backbone after `--`: the converter's --checkpoint FILE "
                         "(or --random --seed N for a try-out)")
    if _has(conv_args, "--exits", "--out", "--exit-kind", "--random-exits"):
        raise TrainError("after `--`, leave --exits, --random-exits, --out and --exit-kind "
                         "to earlyexit-train (--kinds picks the exit kinds)")
    if o.layout == "audio" and not _has(conv_args, "--audio-features"):
        raise TrainError("audio clips need the converter's --audio-features sc|gtzan after `--`")
    if o.layout == "images" and _has(conv_args, "--audio-features"):
        raise TrainError("--audio-features makes an audio classifier: use the audio layout")

    log(f"data: {o.layout} in {o.data}")
    train_s, val_s, classes, loader = make_loaders(o.layout, o)
    log(f"  {len(train_s)} training and {len(val_s)} held-out samples"
        + (f", {len(classes)} classes: {', '.join(classes)}" if classes else ""))
    if not train_s or not val_s:
        raise TrainError("the training and the held-out split both need samples")
    extra = []
    if classes:
        labels_path = os.path.join(work, "labels.txt")
        with open(labels_path, "w", encoding="utf-8") as f:
            f.write("\n".join(classes) + "\n")
        extra += ["--classes", str(len(classes)), "--labels", labels_path]
    custom = _has(conv_args, "--exit")  # classifier.py's NAME:KIND:TAP exits
    runs = [None] if custom else kinds
    if custom:
        log("exits: as the converter's --exit options give them (one model file; "
            "--kinds does not apply)")
    if not _has(conv_args, "--random"):
        extra.append("--random-exits")

    rows, summary, costs = [], {"layout": o.layout, "data": o.data, "seed": o.seed,
                                "schedule": {k: getattr(o, k) for k in (
                                    "epochs", "batch", "lr", "lr_factor", "lr_patience",
                                    "early_stop")},
                                "copycat": o.copycat, "files": {}}, {}
    backbone = train = val = copycat = None
    scale = 1.0
    for kind in runs:
        suffix = "" if kind is None else f"-{kind}"
        init = os.path.join(work, f"init{suffix}.safetensors")
        args = conv_args + extra + ([] if kind is None else ["--exit-kind", kind]) \
            + ["--out", init]
        log(f"converter: {os.path.basename(conv.__file__)} {' '.join(args)}")
        if conv.main(args):
            raise TrainError("the converter refused the arguments after `--` (its message "
                             "is above)")
        loaded = conv.load_model(init)
        cfg, tensors = loaded[0], loaded[1]
        labels = loaded[2] if len(loaded) > 2 else None
        if not cfg["exits"]:
            raise TrainError("the converter's configuration has no exits to train")
        if backbone is None:
            log("backbone: taps of every sample, once")
            backbone = (backbones.CrowdBackbone if task == "count"
                        else backbones.ClassifierBackbone)(cfg, tensors)
            # the kinds share their placement: one pass serves them all
            all_taps = {e["tap"] for e in cfg["exits"]}
            load = loader(cfg)
            train = cached_taps(backbone, train_s, load, all_taps, "train", work, cfg, tensors)
            val = cached_taps(backbone, val_s, load, all_taps, "val", work, cfg, tensors)
            log("  backbone on the held-out split: "
                + (f"accuracy {100 * backbone_metric(task, val):.2f} %" if task == "classify"
                   else f"MAE {backbone_metric(task, val):.3f}"))
            if task == "count":
                # exits learn count / scale (scale folded into their last layer)
                scale = max(1.0, float(train.y.abs().mean()))
            if o.copycat:
                cc = copycat_samples(o.layout, o.copycat)
                copycat = cached_taps(backbone, cc, load, all_taps, "copycat", work, cfg,
                                      tensors)
                copycat.y = (copycat.final.argmax(1) if task == "classify"
                             else copycat.final.float())
                log(f"  copycat: {len(cc)} samples labelled by the backbone, "
                    f"{o.copycat_ratio:g} per real sample each epoch")
        if {e["tap"] for e in cfg["exits"]} - set(train.taps):
            raise TrainError("the exit kinds read different taps; train them in two runs")
        exits = exits_ref.ExitSet(cfg)
        log(f"exits ({kind or 'as given'}): classifier-wise, backbone frozen")
        results = {}
        for i, e in enumerate(cfg["exits"]):
            results[e["name"]] = fit.train_exit(exits[e["name"]], e, train, val, task, o,
                                                o.seed * 1000 + i, log, scale, copycat)
        sd = fit.fold_output_scale(exits.state_dict(), scale)
        exits_path = os.path.join(o.out_dir, f"{o.name}{suffix}-exits.pth")
        torch.save(sd, exits_path)
        et, _ = conv.from_exits_checkpoint(sd, cfg)
        out = dict((k, v) for k, v in tensors.items() if not k.startswith("exits."))
        out.update(et)
        model_path = os.path.join(o.out_dir, f"{o.name}{suffix}.safetensors")
        meta_source = (f"exits trained by earlyexit-train (seed {o.seed}) on "
                       f"{os.path.basename(os.path.normpath(o.data))} ({o.layout}, "
                       f"{len(train_s)} samples)")
        dtype = conv.parser().parse_known_args(conv_args)[0].dtype
        if task == "classify":
            conv.write_model(model_path, cfg, out, dtype, meta_source, labels)
        else:
            conv.write_model(model_path, cfg, out, dtype, meta_source)
        conv.load_model(model_path)  # what the converter reads back: checked
        log(f"wrote {model_path} and {exits_path}")
        summary["files"][model_path] = exits_path
        counts = conv.exit_param_counts(cfg)
        for e in cfg["exits"]:
            rows.append({"file": model_path, "exit": e["name"], "kind": e["kind"],
                         "tap": e["tap"], "metric": results[e["name"]]["metric"],
                         "params": counts[e["name"]],
                         "best_epoch": results[e["name"]]["best_epoch"]})
        try:
            c = engine_costs(find_earlyexit(o.earlyexit), model_path)
        except (OSError, TrainError) as exc:
            log(f"  no FLOPs: {exc}")
            c = None
        if c:
            costs[model_path] = c
    table = report(rows, task, backbone_metric(task, val), costs)
    summary["exits"] = rows
    summary["final_metric"] = backbone_metric(task, val)
    summary["metric"] = "accuracy" if task == "classify" else "MAE"
    summary["output_scale"] = scale
    summary["costs"] = {f: {k: list(v) for k, v in c.items()} for f, c in costs.items()}
    stem = os.path.join(o.out_dir, f"{o.name}-report")
    with open(stem + ".md", "w", encoding="utf-8") as f:
        f.write(table + "\n")
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1)
    log("\n" + table + f"\n\nreport: {stem}.md, {stem}.json")
    if not costs:
        log("(FLOPs need the earlyexit program: --earlyexit PATH)")
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        return run(argv)
    except (TrainError, ds.DataError, classifier_conv.ConvertError) as exc:
        print(f"earlyexit-train: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
