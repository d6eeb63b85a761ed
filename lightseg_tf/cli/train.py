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
    from lightseg_tf.evaluate import evaluate, format_summary, write_results
    from lightseg_tf.training import load_trained_model, predict_probs

    target = args.tflite or args.model
    if target is None:
        raise LightsegError("evaluate needs a RUN_OR_MODEL or --tflite model.tflite")
    model_path = Path(target)
    if model_path.suffix == ".tflite":
        from lightseg_tf.export import load_tflite

        seg = load_tflite(model_path)
        if args.tta != "none":
            raise LightsegError("--tta is for Keras models; the .tflite graph is fixed")
        size, predict_fn = seg.size, seg.predict
    else:
        model = load_trained_model(model_path)
        size = args.size or model.input_shape[1]
        predict_fn = lambda x: predict_probs(model, x, tta=args.tta)  # noqa: E731
    dataset = read_dataset(args.data, args.format)
    if args.split != "all":
        split_file = args.split_file or (model_path / "split.json" if model_path.is_dir() else None)
        if split_file is None or not Path(split_file).exists():
            raise LightsegError(f"--split {args.split} needs --split-file (no split.json in {target})")
        ids = load_split(split_file, dataset)[args.split]
        dataset = dataset.subset(ids)
    post = None
    if args.postprocess:
        from lightseg_tf.postprocess import make_postprocess

        post = make_postprocess(dataset.classes)
    result = evaluate(predict_fn, dataset, size, postprocess=post)
    out = Path(args.out) if args.out else (model_path if model_path.is_dir() else model_path.parent)
    stem = (f"eval_{args.split}" + ("_hflip" if args.tta == "hflip" else "")
            + (f"_{model_path.stem}" if model_path.suffix == ".tflite" else ""))
    csv_path, json_path = write_results(result, out, stem)
    if result.post is not None:
        write_results(result.post, out, stem + "_postprocessed")
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
