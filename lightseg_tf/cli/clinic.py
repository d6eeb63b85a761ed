"""``lightseg measure`` (biometry in mm), ``lightseg explain`` (GradCAM++), ``lightseg robustness``."""

from __future__ import annotations

import json

PHANTOM_CLASSES = ("background", "Brain", "CSP", "LV")


def register(sub) -> None:
    p = sub.add_parser("measure", help="head circumference, BPD, OFD, CSP and LV widths with flags")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="run directory, .keras model or .tflite (card beside it)")
    src.add_argument("--mask", action="append", help="mask file at the image's size; repeat it, one per IMAGE, in order")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--pixel-size", type=float, default=None,
                   help="mm per pixel (default: DICOM header; else values are in pixels)")
    p.add_argument("--pixel-sizes", default=None,
                   help="CSV whose first two columns are file name and mm per pixel (e.g. HC18's)")
    p.add_argument("--classes", nargs="+", default=None,
                   help="class names of the masks (default: from the model; 2-value masks = background head)")
    p.add_argument("--out", default=None, help="folder for annotated PNGs and measurements.csv")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_measure)

    p = sub.add_parser("explain", help="GradCAM++ (or GradCAM) heatmaps, one panel per class")
    p.add_argument("model", help="run directory or .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--class", dest="classes", nargs="+", default=None,
                   help="class names or ids to explain (default: every foreground class)")
    p.add_argument("--layer", default=None, help="feature layer (default: the last conv before the head)")
    p.add_argument("--method", default="gradcam++", choices=["gradcam++", "gradcam"])
    p.add_argument("--out", default="explain", help="output folder for the panels (default explain/)")
    p.set_defaults(func=run_explain)

    p = sub.add_parser("robustness", help="Dice per class under graded corruptions, models side by side")
    p.add_argument("models", nargs="+", metavar="MODEL", help="run directories, .keras or .tflite models")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--format", default=None, help="reader name (default: detect)")
    p.add_argument("--split-file", default=None, help="split JSON (default: the first run's split.json)")
    p.add_argument("--split", default="test", help="which side to use (default test)")
    p.add_argument("--corruptions", nargs="+", default=None, help="subset of the corruptions")
    p.add_argument("--out", default="robustness", help="folder for robustness.csv/.json/.png")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run_robustness)

    p = sub.add_parser("report", help="one self-contained HTML report of one or more runs")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--out", default="report.html", help="output HTML file (default report.html)")
    p.add_argument("--examples", type=int, default=3, help="test images in the qualitative panels")
    p.set_defaults(func=run_report)


def _model_and_classes(path: str):
    from pathlib import Path

    from lightseg_tf.training import load_trained_model, open_run

    p = Path(path)
    if p.suffix == ".tflite":
        from lightseg_tf.export import load_tflite

        seg = load_tflite(p)
        return seg, tuple(seg.classes)
    classes = open_run(p).dataset.classes if p.is_dir() else None
    return load_trained_model(p), classes


def _read_pixel_sizes(path: str) -> dict[str, float]:
    """``{file name: mm per pixel}`` from the first two columns of a CSV (header skipped)."""
    import csv
    from pathlib import Path

    from lightseg_tf.errors import LightsegError

    out = {}
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    for line, row in enumerate(rows[1:], 2):
        try:
            out[Path(row[0]).name] = float(row[1])
        except (IndexError, ValueError):
            raise LightsegError(f"{path}:{line}: expected 'file name, mm per pixel', got {row}") from None
    return out


def run_measure(args) -> int:
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.measure import measure_files

    pixel = args.pixel_size
    if pixel is None and len(args.images) == 1 and args.images[0].lower().endswith((".dcm", ".dicom")):
        from lightseg_tf.data.readers import read_dataset

        pixel = read_dataset(args.images[0], "dicom").records[0].pixel_size_mm
    model, classes = (None, None) if args.mask else _model_and_classes(args.model)
    if args.classes:
        classes = tuple(args.classes)
    if classes is None:
        if args.mask:
            from PIL import Image
            import numpy as np

            values = np.unique(np.asarray(Image.open(args.mask[0]).convert("L")))
            classes = ("background", "head") if set(values.tolist()) <= {0, 1, 255} else PHANTOM_CLASSES
        else:
            raise LightsegError("the model has no class names; pass --classes background Brain CSP LV")
    per_image = _read_pixel_sizes(args.pixel_sizes) if args.pixel_sizes else None
    rows = measure_files(args.images, classes, model=model, masks=args.mask, pixel_size_mm=pixel,
                         out_dir=args.out, pixel_sizes=per_image)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
        return 0
    for r in rows:
        if "hc" not in r:
            print(f"{r['image']}: no head found")
            continue
        u = r["units"]
        line = (f"{r['image']}: HC {r['hc']:.1f} {u}, BPD {r['bpd']:.1f} {u}, OFD {r['ofd']:.1f} {u}, "
                f"CI {r['cephalic_index']:.0f}")
        if r.get("csp_width") is not None:
            line += f", CSP {r['csp_width']:.1f} {u}"
        if r.get("lv_width") is not None:
            line += f", LV {r['lv_width']:.1f} {u}"
        print(line + ("  [" + "; ".join(r["flags"]) + "]" if r["flags"] else ""))
    if u == "px":
        print("(pixel size unknown: values in pixels; pass --pixel-size MM)")
    return 0


def run_explain(args) -> int:
    from pathlib import Path

    from lightseg_tf.data.letterbox import letterbox_image
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.explain import gradcam, gradcam_plus_plus, heatmap_panel
    from lightseg_tf.io_utils import read_gray

    model, names = _model_and_classes(args.model)
    num = int(model.output_shape[-1])
    names = list(names or [f"class{k}" for k in range(num)])
    wanted = args.classes or names[1:]
    ids = []
    for c in wanted:
        if c.isdigit() and int(c) < num:
            ids.append(int(c))
        elif c in names:
            ids.append(names.index(c))
        else:
            raise LightsegError(f"--class {c!r}: not one of {names}")
    method = gradcam_plus_plus if args.method == "gradcam++" else gradcam
    size = int(model.input_shape[1])
    for path in args.images:
        boxed, _ = letterbox_image(read_gray(path), size)
        cams = {f"{names[k]} ({args.method})": method(model, boxed, k, args.layer) for k in ids}
        out = Path(args.out) / f"{Path(path).stem}_{args.method.replace('+', 'pp')}.png"
        heatmap_panel(boxed, cams, out)
        print(out)
    return 0


def run_robustness(args) -> int:
    import csv
    import io
    from pathlib import Path

    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import load_split
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.io_utils import atomic_path, write_json_atomic
    from lightseg_tf.robustness import plot_robustness, robustness_table
    from lightseg_tf.training import predict_probs

    dataset = read_dataset(args.data, args.format)
    split_file = args.split_file or next((Path(m) / "split.json" for m in args.models
                                          if (Path(m) / "split.json").exists()), None)
    if args.split != "all":
        if split_file is None:
            raise LightsegError("--split needs --split-file (no split.json in the given runs)")
        dataset = dataset.subset(load_split(split_file, dataset)[args.split])
    predictors, size = {}, None
    for m in args.models:
        model, _ = _model_and_classes(m)
        msize = model.size if hasattr(model, "size") else int(model.input_shape[1])
        if size not in (None, msize):
            raise LightsegError(f"{m}: input size {msize} differs from the other models' {size}")
        size = msize
        predictors[Path(m).stem if Path(m).suffix else Path(m).name] = (
            model.predict if hasattr(model, "run") else (lambda x, mm=model: predict_probs(mm, x)))
    rows = robustness_table(predictors, dataset, size, args.corruptions)
    out = Path(args.out)
    write_json_atomic(out / "robustness.json", rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_path(out / "robustness.csv") as tmp:
        tmp.write_text(buf.getvalue())
    plot_robustness(rows, out / "robustness.png")
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':<20}{'corruption':<15}{'level':>7}{'mean fg Dice':>14}")
        for r in rows:
            print(f"{r['model']:<20}{r['corruption']:<15}{str(r['level']):>7}{(r['mean_fg_dice'] or 0):14.4f}")
        print(f"table and curves in {out}")
    return 0


def run_report(args) -> int:
    from lightseg_tf.report import build_report

    print(build_report(args.runs, args.out, args.examples))
    return 0
