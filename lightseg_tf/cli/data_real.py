"""``lightseg data split``, ``lightseg data inspect`` and ``lightseg data fetch``."""

from __future__ import annotations

import json
from pathlib import Path


def register(data_sub) -> None:
    p = data_sub.add_parser("split", help="write a subject-grouped train/val/test split file")
    p.add_argument("path", help="dataset folder or file")
    p.add_argument("--format", default=None, help="reader name (default: detect)")
    p.add_argument("--out", required=True, help="split JSON to write (an existing one is kept)")
    p.add_argument("--val", type=float, default=0.15, help="validation share of images (default 0.15)")
    p.add_argument("--test", type=float, default=0.15, help="test share of images (default 0.15)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test-holdout", choices=("random", "last"), default="random",
                   help="last: the test side is the last subjects in id order (PSFHS: the latest "
                        "recordings, unseen drift) instead of subjects dealt at random (default random)")
    p.add_argument("--native", action="store_true",
                   help="use the dataset's own split where it has one (MedSegBench npz)")
    p.add_argument("--force", action="store_true", help="overwrite an existing split file")
    p.set_defaults(func=run_split)

    p = data_sub.add_parser("inspect", help="images, subjects, classes, pixel fractions, sizes; contact sheet")
    p.add_argument("path", help="dataset folder or file")
    p.add_argument("--format", default=None, help="reader name (default: detect)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.add_argument("--sheet", default=None, help="write a contact sheet PNG of overlays here")
    p.add_argument("--check", action="store_true",
                   help="decode every image and mask: list unreadable files, size mismatches, unknown class "
                        "ids, bad pixel sizes (exit 2 when any)")
    p.set_defaults(func=run_inspect)

    p = data_sub.add_parser("fetch", help="download a public release (resumable, checked, unpacked)")
    p.add_argument("name", help="hc18 | psfhs | fetal-head-biometry | medsegbench-abdomenus")
    p.add_argument("dest", help="destination folder")
    p.add_argument("--sha256", default=None, help="expected SHA-256 of the download")
    p.add_argument("--force", action="store_true",
                   help="unpack even where DEST holds a same-named file or folder (kept as NAME.before-fetch)")
    p.set_defaults(func=run_fetch)


def run_split(args) -> int:
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.readers.medsegbench import npz_split
    from lightseg_tf.data.split import check_split, load_split, make_split, save_split

    dataset = read_dataset(args.path, args.format)
    out = Path(args.out)
    if out.exists() and not args.force:
        split = load_split(out, dataset)
        print(f"{out}: kept (existing split honoured; --force to remake it)")
    else:
        if args.native and dataset.format == "medsegbench-npz":
            split = npz_split(dataset)
            check_split(split, dataset, str(out))
        else:
            split = make_split(dataset, args.val, args.test, args.seed, args.test_holdout)
        save_split(split, out, dataset=str(dataset.root), format=dataset.format, seed=args.seed,
                   val_fraction=args.val, test_fraction=args.test, native=args.native,
                   test_holdout=args.test_holdout)
        print(f"{out}: written")
    subjects = {k: len({dataset.record(i).subject for i in v}) for k, v in split.items()}
    print(" ".join(f"{k} {len(v)} images / {subjects[k]} subjects" for k, v in split.items()))
    return 0


def run_inspect(args) -> int:
    from lightseg_tf.data.inspect import dataset_stats, format_stats, write_contact_sheet
    from lightseg_tf.data.readers import read_dataset

    dataset = read_dataset(args.path, args.format)
    if args.check:
        from lightseg_tf.data.inspect import check_dataset

        problems = check_dataset(dataset, progress=not args.json)
        for line in problems:
            print(line)
        print(f"{len(dataset)} images checked: {len(problems) or 'no'} problem{'s' if len(problems) != 1 else ''}")
        return 2 if problems else 0
    stats = dataset_stats(dataset, progress=not args.json)
    if args.sheet:
        stats["contact_sheet"] = str(write_contact_sheet(dataset, args.sheet))
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def run_fetch(args) -> int:
    from lightseg_tf.data.fetch import RELEASES, fetch

    dest = fetch(args.name, args.dest, sha256=args.sha256, force=args.force)
    rel = RELEASES[args.name]
    print(f"{dest}  (read it with --format {rel.reader}; cite: {rel.citation})")
    return 0
