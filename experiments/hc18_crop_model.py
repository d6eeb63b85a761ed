"""Does a second model trained on head crops make HC18's head boundary more precise?

HC18's remaining Dice gap is the smallest heads (issue 19): letterboxed to 256 px, an
early-pregnancy head is ~45 px across, so a one-pixel boundary step is ~4 % of its Dice. A model
that sees the head cropped and enlarged to fill its input gets every head at ~170 px; the same
model applied to crops without having been trained on them was worse (hc18_crop_pass.py).

``build``: a native lightseg dataset of head crops cut from a run's HC18 images, around the
experts' head mask: TRAIN images give ``--per-image`` crops each, side ``k`` times the head box
(``k`` uniform in ``--k-range``, centre jittered by up to ``--jitter`` of the side) so the model
meets the offsets a predicted head box will have; VAL and TEST images one crop at ``--k``. The
split file keeps every crop on its source image's side (subjects never cross). Pixel size and
reference HC are the source image's: a crop is not resampled.

``eval``: for each TEST image of the first run's split, the first model segments the whole image,
the fitted head ellipse's box grown ``k`` times is cut from the ORIGINAL image, the crop model
segments it, and its head probability replaces the first pass's (outside the crop: background).
HC (fitted ellipse x pixel size) and Dice of the fitted ellipse against the experts' mask for one
pass and the crop pass, as signed / abs mean HC error (mm), abs median, mean Dice, then per
quartile of the reference HC.

    PYTHONPATH=. .venv/bin/python experiments/hc18_crop_model.py build RUN OUT
    .venv/bin/lightseg train data.path=OUT data.split_file=OUT/split.json ...
    PYTHONPATH=. .venv/bin/python experiments/hc18_crop_model.py eval FIRST CROP [--k 1.3 1.45 1.6]

FIRST and CROP are run directories or .tflite files (a .tflite's test split comes from
``--split-file``).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from lightseg_tf.anatomy.biometry import Ellipse, fit_head_ellipse
from lightseg_tf.core.io import staged_dir
from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.readers.native import write_native_index, write_native_pair
from lightseg_tf.data.split import load_split, save_split
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.runs import open_run

# The same HC / Dice scoring and quartile table as the same-model crop pass (run as a script, this
# folder is on sys.path).
from hc18_crop_pass import report, score


def crop_box(cy: float, cx: float, half_h: float, half_w: float, k: float,
             shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the square of side ``k`` x the box's longer side, centred, clipped."""
    half = k * max(half_h, half_w)
    return (int(max(0, math.floor(cy - half))), int(min(shape[0], math.ceil(cy + half))),
            int(max(0, math.floor(cx - half))), int(min(shape[1], math.ceil(cx + half))))


def ellipse_half_extent(ell: Ellipse) -> tuple[float, float]:
    """Half height and half width of the ellipse's axis-aligned bounding box (pixels)."""
    t = math.radians(ell.angle_deg)
    return (math.hypot(ell.a * math.sin(t), ell.b * math.cos(t)),
            math.hypot(ell.a * math.cos(t), ell.b * math.sin(t)))


def build(run: str, out: str, per_image: int, k_range: tuple[float, float], k: float, jitter: float,
          seed: int) -> None:
    """Write the crop dataset of ``run``'s split to ``out`` (see the module docstring for the sides);
    nothing is left in ``out`` unless every crop is written."""
    rd = open_run(run)
    rng = np.random.default_rng(seed)
    rows, split = [], {"train": [], "val": [], "test": []}
    with staged_dir(out) as stage:
        for side in split:
            ds = rd.part(side)
            for rec in ds.records:
                image, mask = ds.load_pair(rec)
                ys, xs = np.nonzero(mask > 0)
                cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
                half_h, half_w = (ys.max() - ys.min() + 1) / 2, (xs.max() - xs.min() + 1) / 2
                for j in range(per_image if side == "train" else 1):
                    kk = rng.uniform(*k_range) if side == "train" else k
                    side_px = 2 * kk * max(half_h, half_w)
                    dy, dx = (rng.uniform(-jitter, jitter, 2) * side_px) if side == "train" else (0.0, 0.0)
                    y0, y1, x0, x1 = crop_box(cy + dy, cx + dx, half_h, half_w, kk, mask.shape)
                    rows.append(write_native_pair(stage, f"{rec.id}_c{j}", image[y0:y1, x0:x1],
                                                  mask[y0:y1, x0:x1], rec))
                    split[side].append(rows[-1]["id"])
        save_split(split, stage / "split.json", source_run=str(run), per_image=per_image,
                   k_range=list(k_range), k=k, jitter=jitter, seed=seed)
        write_native_index(stage, rows, rd.dataset.classes, crops_of=str(run))
    print(f"{out}: " + ", ".join(f"{s} {len(v)} crops" for s, v in split.items()))


def test_side(first: str, split_file: str | None, data: str | None) -> SegDataset:
    """The TEST images of the first model's run, or of ``split_file`` over the HC18 copy at ``data``."""
    if split_file is None:
        return open_run(first).part("test")
    ds = read_dataset(data, "hc18")
    return ds.subset(load_split(split_file, ds)["test"])


def evaluate(first: str, crop: str, ks: list[float], split_file: str | None, data: str | None) -> list[dict]:
    """Per TEST image: the reference HC and (HC error mm, ellipse Dice) of one pass, the crop pass
    and the mean of both passes for each ``k``."""
    one, two = load_predictor(first), load_predictor(crop)
    ds = test_side(first, split_file, data)
    rows = []
    for rec in ds.records:
        image, mask = ds.load_pair(rec)
        head = mask > 0
        p1 = one.predict_image(image)[..., 1]
        row = {"ref": rec.hc_mm, "one pass": score(p1, head, rec)}
        region = p1 >= 0.5
        ell = fit_head_ellipse(region) if region.any() else None
        for k in ks:
            if ell is None:
                row[f"crop k={k:g}"] = row[f"mean k={k:g}"] = (np.nan, np.nan)
                continue
            y0, y1, x0, x1 = crop_box(ell.cy, ell.cx, *ellipse_half_extent(ell), k, p1.shape)
            p2 = np.zeros_like(p1)
            p2[y0:y1, x0:x1] = two.predict_image(image[y0:y1, x0:x1])[..., 1]
            row[f"crop k={k:g}"] = score(p2, head, rec)
            both = np.zeros_like(p1)
            both[y0:y1, x0:x1] = (p1[y0:y1, x0:x1] + p2[y0:y1, x0:x1]) / 2
            row[f"mean k={k:g}"] = score(both, head, rec)
        rows.append(row)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="a native dataset of head crops from a run's HC18 split")
    b.add_argument("run", help="an HC18 run directory (its split.json and dataset)")
    b.add_argument("out", help="output folder (native lightseg dataset with split.json)")
    b.add_argument("--per-image", type=int, default=2, help="crops per TRAIN image")
    b.add_argument("--k-range", type=float, nargs=2, default=[1.2, 1.7], help="TRAIN crop side / head box side")
    b.add_argument("--k", type=float, default=1.45, help="VAL/TEST crop side / head box side")
    b.add_argument("--jitter", type=float, default=0.05, help="TRAIN centre offset, fraction of the side")
    b.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval", help="one pass vs crop pass on the TEST split")
    e.add_argument("first", help="whole-image model: run directory or .tflite")
    e.add_argument("crop", help="crop model: run directory or .tflite")
    e.add_argument("--k", type=float, nargs="+", default=[1.3, 1.45, 1.6])
    e.add_argument("--split-file", help="the first run's split.json (when FIRST is a .tflite)")
    e.add_argument("--data", default="../shared/datasets/hc18")
    args = p.parse_args()
    t0 = time.perf_counter()
    if args.cmd == "build":
        build(args.run, args.out, args.per_image, tuple(args.k_range), args.k, args.jitter, args.seed)
    else:
        report(evaluate(args.first, args.crop, args.k, args.split_file, args.data))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
