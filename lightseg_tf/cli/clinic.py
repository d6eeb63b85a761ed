"""``lightseg measure`` (biometry in mm), ``lightseg explain`` (GradCAM++), ``lightseg robustness``."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("measure", help="head circumference, BPD, OFD, CSP and LV widths, GA and centiles, with flags")
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
    p.add_argument("--ga-weeks", default=None, metavar="W",
                   help="GA known from dating (20.5 or weeks+days 20+3): adds INTERGROWTH-21st HC and BPD centiles "
                        "and z-scores, flagged outside the 3rd-97th centile")
    p.add_argument("--out", default=None, help="folder for annotated PNGs and measurements.csv")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_measure)

    p = sub.add_parser("explain", help="GradCAM++ (or GradCAM) heatmaps, one panel per class")
    p.add_argument("model", help="run directory or .keras model")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--class", dest="classes", nargs="+", default=None,
                   help="class names or ids to explain (default: every foreground class)")
    p.add_argument("--layer", default=None, help="feature layer (default: the features the logits head reads)")
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
    p.add_argument("--examples", type=int, default=3, help="test images in the sample and GradCAM++ panels")
    p.add_argument("--tflite", default=None, metavar="MODEL.tflite",
                   help="the exported model (card beside it): its card, size, latency, predictions and the "
                        "biometry (default: biometry from the first run's Keras model)")
    p.set_defaults(func=run_report)


def run_measure(args) -> int:
    from lightseg_tf.anatomy.gestational_age import parse_ga
    from lightseg_tf.evaluation.measure import measure_paths, report_lines

    rows = measure_paths(args.images, model=args.model, masks=args.mask, classes=args.classes,
                         pixel_size_mm=args.pixel_size, pixel_sizes_csv=args.pixel_sizes, out_dir=args.out,
                         ga_weeks=parse_ga(args.ga_weeks) if args.ga_weeks is not None else None)
    if args.json:
        print(json.dumps(rows, indent=2, default=float))
        return 0
    for r in rows:
        first, *rest = report_lines(r)
        print(f"{r['image']}: {first}")
        for line in rest:
            print(f"  {line}")
    if any(r.get("units") == "px" for r in rows):
        print("(pixel size unknown: values in pixels; pass --pixel-size MM)")
    return 0


def run_explain(args) -> int:
    from pathlib import Path

    from lightseg_tf.deploy.runtime import load_predictor
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.evaluation.explain import explain_files
    from lightseg_tf.models.predictor import KerasPredictor
    from lightseg_tf.runs import is_pipeline_run, pipeline_run_message

    if is_pipeline_run(args.model):  # its shipped model is a .tflite: no gradients
        raise LightsegError(pipeline_run_message(Path(args.model)) + " (GradCAM needs a Keras model)")
    predictor = load_predictor(args.model)
    if not isinstance(predictor, KerasPredictor):
        raise LightsegError(f"{args.model}: GradCAM needs gradients; explain the run directory or .keras model "
                            "the .tflite was exported from")
    for path in explain_files(predictor.model, args.images, predictor.classes, args.classes, args.method,
                              args.layer, args.out):
        print(path)
    return 0


def run_robustness(args) -> int:
    from pathlib import Path

    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import split_side
    from lightseg_tf.deploy.runtime import load_predictor
    from lightseg_tf.evaluation.robustness import robustness_table, write_robustness
    from lightseg_tf.runs import run_split_file

    split_file = args.split_file or next((f for m in args.models if (f := run_split_file(m)) and f.exists()), None)
    dataset = split_side(read_dataset(args.data, args.format), args.split, split_file)
    predictors = {Path(m).stem if Path(m).suffix else Path(m).name: load_predictor(m) for m in args.models}
    rows = robustness_table(predictors, dataset, args.corruptions)
    out = write_robustness(rows, args.out)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'model':<20}{'corruption':<15}{'level':>7}{'mean fg Dice':>14}")
        for r in rows:
            print(f"{r['model']:<20}{r['corruption']:<15}{str(r['level']):>7}{(r['mean_fg_dice'] or 0):14.4f}")
        print(f"table and curves in {out}")
    return 0


def run_report(args) -> int:
    from lightseg_tf.evaluation.report import build_report

    print(build_report(args.runs, args.out, args.examples, shipped=args.tflite))
    return 0
