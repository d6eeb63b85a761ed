"""``lightseg train`` and ``lightseg evaluate``."""

from __future__ import annotations

import json

from lightseg_tf.cli import add_config_args, config_from_args


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
    p.add_argument("--size", type=int, default=None, help="input side (default: the model's)")
    p.add_argument("--tta", default="none", choices=["none", "hflip"], help="test-time augmentation")
    p.add_argument("--postprocess", action="store_true",
                   help="also score the post-processed predictions (largest head component, hole "
                        "filling, small-structure limits) to measure its effect")
    p.add_argument("--out", default=None, help="folder for the CSV/JSON (default: the run directory)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_evaluate)


def run_train(args) -> int:
    from lightseg_tf.training import train

    result = train(config_from_args(args), args.run_dir, overwrite=args.overwrite)
    print(result.run_dir)
    return 0


def run_evaluate(args) -> int:
    from pathlib import Path

    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import load_split
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.evaluate import evaluate_and_write, format_summary, load_predictor

    target = args.tflite or args.model
    if target is None:
        raise LightsegError("evaluate needs a RUN_OR_MODEL or --tflite model.tflite")
    model_path = Path(target)
    size, predict_fn = load_predictor(model_path, args.tta, args.size)
    dataset = read_dataset(args.data, args.format)
    if args.split != "all":
        split_file = args.split_file or (model_path / "split.json" if model_path.is_dir() else None)
        if split_file is None or not Path(split_file).exists():
            raise LightsegError(f"--split {args.split} needs --split-file (no split.json in {target})")
        ids = load_split(split_file, dataset)[args.split]
        dataset = dataset.subset(ids)
    out = Path(args.out) if args.out else (model_path if model_path.is_dir() else model_path.parent)
    tflite = model_path if model_path.suffix == ".tflite" else None
    result, csv_path, json_path = evaluate_and_write(predict_fn, size, dataset, out, args.split, args.tta, tflite,
                                                     args.postprocess)
    if args.json:
        print(json.dumps({"raw": result.summary, "postprocessed": result.post.summary} if result.post
                         else result.summary, indent=2))
    else:
        print(format_summary(result.summary))
        if result.post is not None:
            print("\nwith post-processing:")
            print(format_summary(result.post.summary))
        print(f"per image: {csv_path}\nsummary:   {json_path}")
    return 0
