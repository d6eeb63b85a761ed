"""``lightseg demo``: a small single-model demo on the synthetic phantom (the main job is ``lightseg pipeline``).

Makes a phantom dataset, trains a small U-Net for a few epochs, evaluates it on the held-out
test split at original resolution and prints per-class Dice.
"""

from __future__ import annotations

import sys

# The demo's overrides of the config defaults: small and quick on a 2-core CPU.
DEMO_OVERRIDES = (
    "name=demo",
    "data.image_size=128",
    "data.batch_size=8",
    "data.phantom_n=160",
    "model.name=unet",
    "model.options={base_filters: 16, depth: 4}",
    "train.epochs=20",
    "train.learning_rate=0.005",
)


def register(sub) -> None:
    p = sub.add_parser("demo", help="small demo: phantom data -> train a small U-Net -> evaluate")
    p.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides")
    p.add_argument("--run-root", default="runs", help="where the run directory goes (default runs/)")
    p.add_argument("--overwrite", action="store_true", help="retrain even if a finished demo run exists")
    p.set_defaults(func=run_demo)


def run_demo(args) -> int:
    from lightseg_tf.config import load_config
    from lightseg_tf.evaluation.evaluate import evaluate_run, format_summary
    from lightseg_tf.training.trainer import train

    cfg = load_config(None, [*DEMO_OVERRIDES, f"run_root={args.run_root}", *args.overrides])
    if not sys.stdout.isatty():
        cfg.train.verbose = 2
    result = train(cfg, overwrite=args.overwrite)
    ev = evaluate_run(result.run_dir, "test")
    print(f"\nTest split ({len(ev.rows)} images), Dice per class at original resolution:")
    print(format_summary(ev.summary))
    print(f"\nrun directory: {result.run_dir}")
    return 0
