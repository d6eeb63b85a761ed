"""``lightseg export`` (a run's model as .tflite + model card) and ``lightseg benchmark``."""

from __future__ import annotations

from lightseg_tf.models.tta import TTA_CHOICES


def register(sub) -> None:
    p = sub.add_parser("export", help="export a run's model to TFLite with a model card")
    p.add_argument("run", metavar="RUN", help="run directory made by lightseg train")
    p.add_argument("--quant", default="int8", choices=["int8", "float16", "dynamic", "float32"],
                   help="int8 = full integer (uint8 image in, uint8 class map / probs out)")
    p.add_argument("--out", required=True, help="output .tflite path (model.json card written beside it)")
    p.add_argument("--calib-n", type=int, default=64, help="TRAIN images used to calibrate int8 (default 64)")
    p.add_argument("--model-file", default=None, help="model inside the run (default best.keras)")
    p.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="build mirroring test-time augmentation into the graph (the model runs once per view: "
                        "2 for hflip, 4 for flips); calibrate with the same --tta first")
    p.add_argument("--mediapipe", action="store_true",
                   help="also write OUT_mediapipe.tflite for MediaPipe Tasks' ImageSegmenter: uint8 RGB in, "
                        "float32 probabilities out, TFLite Model Metadata with the labels (named in the card)")
    p.add_argument("--golden", default=None, metavar="DIR",
                   help="also write golden vectors (phantom inputs, letterboxes, class maps, HC/BPD) and a "
                        "copy of the model into DIR, for the Android and browser demos' tests")
    p.set_defaults(func=run_export)

    p = sub.add_parser("benchmark", help="parameters, GFLOPs, size, Keras and TFLite latency side by side")
    p.add_argument("models", nargs="+", metavar="MODEL_OR_RUN", help="registry names or run directories")
    p.add_argument("--size", type=int, default=256, help="input side for registry models (default 256)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per variant (median; default 50)")
    p.add_argument("--out", default="runs/bench", help="folder for the converted models")
    p.add_argument("--json", action="store_true", help="print JSON instead of a markdown table")
    p.add_argument("--doc", default=None, metavar="MD",
                   help="also write the table, date, machine and command into this markdown file "
                        "(e.g. docs/BENCHMARKS.md), replacing the section the last --doc run wrote")
    p.set_defaults(func=run_benchmark)


def run_benchmark(args) -> int:
    import json
    import shlex
    import sys

    from lightseg_tf.evaluation.benchmark import benchmark, to_markdown, write_doc_section

    result = benchmark(args.models, size=args.size, runs=args.runs, out_dir=args.out)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['date']}, {result['machine']}, medians of {result['runs']} runs")
        print(to_markdown(result))
    if args.doc:
        command = "lightseg benchmark " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["benchmark"] else sys.argv[1:])
        print(f"table written into {write_doc_section(args.doc, result, command)}")
    return 0


def run_export(args) -> int:
    import json

    from lightseg_tf.deploy.convert import export_run
    from lightseg_tf.deploy.runtime import read_card

    path, card_path = export_run(args.run, args.out, args.quant, args.calib_n, args.model_file,
                                 mediapipe=args.mediapipe, tta=args.tta)
    card = read_card(card_path)
    tpu = card["edgetpu"]
    print(f"{path}  ({card['bytes'] / 1024:.0f} KiB, sha256 {card['sha256'][:12]}...)")
    print(f"card: {card_path}")
    if "mediapipe" in card:
        mp = card["mediapipe"]
        print(f"mediapipe: {path.with_name(mp['file'])}  ({mp['bytes'] / 1024:.0f} KiB, sha256 {mp['sha256'][:12]}...)")
    print("edge TPU: " + ("compatible" if tpu["compatible"] else "NOT compatible: " + json.dumps(
        {k: tpu[k] for k in ("unsupported_ops", "float_tensors", "dynamic_shapes")})))
    if args.golden:
        from lightseg_tf.deploy.golden import write_golden

        print(f"golden vectors: {write_golden(path, args.golden)}")
    for note in tpu["notes"]:
        print(f"  note: {note}")
    return 0
