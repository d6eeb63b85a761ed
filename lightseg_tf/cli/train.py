"""``lightseg train`` and ``lightseg evaluate``."""

from __future__ import annotations

import json

from lightseg_tf.cli import add_config_args, config_from_args
from lightseg_tf.models.tta import TTA_CHOICES, TTA_HELP


def register(sub) -> None:
    p = sub.add_parser("train", help="train a registered model from a config")
    add_config_args(p)
    p.add_argument("--overwrite", action="store_true", help="retrain even if the run finished")
    p.set_defaults(func=run_train)

    p = sub.add_parser("evaluate", help="score a trained model at original resolution")
    p.add_argument("model", metavar="RUN_OR_MODEL", nargs="?", default=None,
                   help="run directory, .keras model file, or .tflite (its model.json beside it)")
    p.add_argument("--tflite", default=None, help="evaluate this .tflite model instead")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--format", default=None, help="reader name (default: detect)")
    p.add_argument("--split", default="test", help="test|val|train|all (default test)")
    p.add_argument("--split-file", default=None,
                   help="split JSON (default: the run's split.json; 'all' ignores it)")
    p.add_argument("--tta", default="none", choices=TTA_CHOICES, help=TTA_HELP)
    p.add_argument("--postprocess", action="store_true",
                   help="also score the post-processed predictions (largest head component, hole "
                        "filling, small-structure limits) to measure its effect")
    p.add_argument("--biometry", action="store_true",
                   help="also the head-circumference error against the data's reference HC (HC18), signed "
                        "and by HC quartile: eval_<split>_hc_per_image.csv / _hc_summary.json")
    p.add_argument("--blocks", type=int, default=None, metavar="N",
                   help="also Dice per block of N consecutive numeric ids (PSFHS: recordings drift with "
                        "id; 50 shows it), in the summary as by_id_block")
    p.add_argument("--out", default=None, help="folder for the CSV/JSON (default: the run directory)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_evaluate)

    p = sub.add_parser("calibrate", help="choose the 'low confidence: do not use' threshold on the run's VAL split "
                                         "(RUN/confidence.json, copied into the card by lightseg export)")
    p.add_argument("run", metavar="RUN", help="run directory made by lightseg train")
    p.add_argument("--model-file", default=None, help="model inside the run (default best.keras)")
    p.add_argument("--tta", default="none", choices=TTA_CHOICES,
                   help="calibrate the model as it will be exported (lightseg export --tta): " + TTA_HELP)
    p.add_argument("--hc-tolerance", type=float, default=0.05,
                   help="an image is bad above this relative HC error (default 0.05)")
    p.add_argument("--dice-min", type=float, default=0.9, help="... or below this head Dice (default 0.9)")
    p.add_argument("--structure-dice-min", type=float, default=0.7,
                   help="per structure, an image is bad below this Dice of the structure; each structure's "
                        "margin threshold is chosen by the same rule (default 0.7)")
    p.add_argument("--good-quantile", type=float, default=0.02,
                   help="the threshold is at least this quantile of the good VAL images' scores (default 0.02)")
    p.add_argument("--json", action="store_true", help="print confidence.json")
    p.set_defaults(func=run_calibrate)


def run_train(args) -> int:
    from lightseg_tf.training.trainer import train

    result = train(config_from_args(args), args.run_dir, overwrite=args.overwrite)
    print(result.run_dir)
    return 0


def run_evaluate(args) -> int:
    from pathlib import Path

    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import split_side
    from lightseg_tf.deploy.runtime import load_predictor
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.evaluation.evaluate import (evaluate_and_write, format_blocks, format_structure_flags,
                                                 format_summary)
    from lightseg_tf.runs import run_split_file

    target = args.tflite or args.model
    if target is None:
        raise LightsegError("evaluate needs a RUN_OR_MODEL or --tflite model.tflite")
    model_path = Path(target)
    predictor = load_predictor(model_path, args.tta)
    split_file = args.split_file or run_split_file(model_path)
    dataset = split_side(read_dataset(args.data, args.format), args.split, split_file)
    out = Path(args.out) if args.out else (model_path if model_path.is_dir() else model_path.parent)
    tflite = model_path if model_path.suffix == ".tflite" else None
    result, csv_path, json_path = evaluate_and_write(predictor, dataset, out, args.split, args.tta, tflite,
                                                     args.postprocess, args.blocks)
    hc = None
    if args.biometry:
        from lightseg_tf.evaluation.measure import format_hc_errors, hc_errors

        hc = hc_errors(predictor, dataset, out, csv_path.name.replace("_per_image.csv", "_hc"))
        hc.pop("rows")
    if args.json:
        summary = {"raw": result.summary, "postprocessed": result.post.summary} if result.post else result.summary
        print(json.dumps({"segmentation": summary, "hc_error_mm": hc} if hc else summary, indent=2))
    else:
        print(format_summary(result.summary))
        if args.blocks:
            print(f"\nDice by block of {args.blocks} ids:\n" + format_blocks(result.summary["by_id_block"]))
        if result.summary.get("structure_confidence"):
            print("\nconfidence per structure:\n" + format_structure_flags(result.summary["structure_confidence"]))
        if result.post is not None:
            print("\nwith post-processing:")
            print(format_summary(result.post.summary))
        if hc:
            print("\n" + format_hc_errors(hc))
        print(f"per image: {csv_path}\nsummary:   {json_path}")
    return 0


def run_calibrate(args) -> int:
    from lightseg_tf.evaluation.confidence import calibrate_run

    result = calibrate_run(args.run, args.model_file, tta=args.tta, hc_tolerance=args.hc_tolerance,
                           dice_min=args.dice_min, good_quantile=args.good_quantile,
                           structure_dice_min=args.structure_dice_min)
    result.pop("rows")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    v = result["val"]
    print(f"confidence threshold {result['threshold']:.2f} ({result['score']}), on {v['n']} VAL images: "
          f"{v['bad']} bad, {v['flagged']} flagged ({v['flagged_bad']} of them bad)")
    print(f"rule: {result['rule']}")
    for name, st in result["structures"].items():
        sv = st["val"]
        print(f"  {name}: margin threshold {st['threshold']:.2f} on {sv['n']} VAL images holding it: "
              f"{sv['bad']} bad, {sv['flagged']} flagged ({sv['flagged_bad']} of them bad)")
    print(f"structure rule: {result['structure_rule']}")
    print(f"written to {args.run}/confidence.json; lightseg export copies it into the model card")
    return 0
