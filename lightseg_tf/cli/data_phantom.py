"""``lightseg data synth`` and ``lightseg data augment``."""

from __future__ import annotations

from pathlib import Path


def register(data_sub) -> None:
    p = data_sub.add_parser("synth", help="write a synthetic fetal-head phantom dataset")
    p.add_argument("out", help="output folder (images/, masks/, meta.csv, dataset.json)")
    p.add_argument("--n", type=int, default=64, help="number of images (default 64)")
    p.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed; same seed, same bytes")
    p.add_argument("--unlabelled", type=int, default=0,
                   help="more images without masks (the split's unlabelled side, for distillation; default 0)")
    p.set_defaults(func=run_synth)

    p = data_sub.add_parser(
        "augment", help="materialise N augmented copies of the TRAIN images of a split (offline)"
    )
    p.add_argument("src", help="dataset folder")
    p.add_argument("--format", default=None, help="reader name (default: detect)")
    p.add_argument("--split", required=True, help="split JSON (train/val/test ids) made BEFORE augmenting")
    p.add_argument("--out", required=True, help="output folder (native lightseg layout + split.json)")
    p.add_argument("--copies", type=int, default=2, help="augmented copies per train image")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_augment)


def run_synth(args) -> int:
    from lightseg_tf.data.phantom import write_phantom_dataset
    from lightseg_tf.errors import LightsegError

    if args.n < 1 or args.size < 32 or args.unlabelled < 0:
        raise LightsegError("--n must be >= 1, --size >= 32 and --unlabelled >= 0")
    out = write_phantom_dataset(args.out, args.n, args.size, args.seed, progress=True, unlabelled=args.unlabelled)
    print(out)
    return 0


def run_augment(args) -> int:
    from lightseg_tf.data.offline_augment import augment_offline

    out = augment_offline(args.src, args.format, args.split, args.out, args.copies, args.seed)
    print(Path(out))
    return 0
