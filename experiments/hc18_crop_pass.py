"""Does a second pass on a crop around the head help an HC18 model that was not trained on crops?

For each TEST image of a run's split: the model (the run's Keras ``best.keras``) segments the whole
image; the head's bounding box, grown ``k`` times around its centre and clipped to the image, is
cut from the ORIGINAL image, letterboxed to the model's side and segmented again; the crop's head
probability replaces the first pass's (outside the crop: background). HC and the Dice of the
fitted ellipse against the experts' mask, for the first pass and for each ``k``, as signed / abs
mean HC error (mm), abs median and mean Dice, then signed / abs / Dice per quartile of the
reference HC. Measured 2026-12-03 (docs/BENCHMARKS.md, HC18 section): every ``k`` is worse than
one pass, worst on the smallest heads: an enlarged small head is unlike any the model was
trained on, so a crop pass needs a crop-trained model.

    PYTHONPATH=. .venv/bin/python experiments/hc18_crop_pass.py RUN [--k 1.3 1.6 2.0]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from lightseg_tf.anatomy.biometry import ellipse_region, fit_head_ellipse
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.objectives.metrics import dice_iou_per_class
from lightseg_tf.runs import open_run


def score(prob_head: np.ndarray, head: np.ndarray, rec) -> tuple[float, float]:
    """(HC error mm, ellipse Dice) of the head probability cut at 0.5; NaNs when no head."""
    region = prob_head >= 0.5
    ell = fit_head_ellipse(region) if region.any() else None
    if ell is None:
        return np.nan, np.nan
    return (ell.perimeter * rec.pixel_size_mm - rec.hc_mm,
            float(dice_iou_per_class(ellipse_region(ell, head.shape), head, 2)[0][1]))


def measure(run: str, ks: list[float]) -> list[dict]:
    rd = open_run(run)
    predictor = load_predictor(run)
    ds = rd.part("test")
    rows = []
    for rec in ds.records:
        image, mask = ds.load_pair(rec)
        head = mask > 0
        first = predictor.predict_image(image)[..., 1]
        row = {"ref": rec.hc_mm, "one pass": score(first, head, rec)}
        ys, xs = np.nonzero(first >= 0.5)
        for k in ks:
            if not len(ys):
                row[f"crop k={k:g}"] = (np.nan, np.nan)
                continue
            cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
            half = max(ys.max() - ys.min(), xs.max() - xs.min()) * k / 2
            y0, y1 = int(max(0, cy - half)), int(min(first.shape[0], cy + half + 1))
            x0, x1 = int(max(0, cx - half)), int(min(first.shape[1], cx + half + 1))
            second = np.zeros_like(first)
            second[y0:y1, x0:x1] = predictor.predict_image(image[y0:y1, x0:x1])[..., 1]
            row[f"crop k={k:g}"] = score(second, head, rec)
        rows.append(row)
    return rows


def report(rows: list[dict]) -> None:
    ref = np.array([r["ref"] for r in rows])
    quart = np.searchsorted(np.quantile(ref, [0.25, 0.5, 0.75]), ref, side="right")
    print(f"{len(rows)} test images; HC quartile edges {np.round(np.quantile(ref, [0.25, 0.5, 0.75]), 1).tolist()} mm")
    print(f"{'HC from':<14}{'signed':>8}{'abs':>7}{'median':>8}{'Dice':>8}   quartiles signed/abs/Dice")
    for name in [k for k in rows[0] if k != "ref"]:
        err = np.array([r[name][0] for r in rows])
        dice = np.array([r[name][1] for r in rows])
        quarts = "  ".join(f"{np.nanmean(err[quart == q]):+.2f}/{np.nanmean(np.abs(err[quart == q])):.2f}/"
                           f"{np.nanmean(dice[quart == q]):.4f}" for q in range(4))
        print(f"{name:<14}{np.nanmean(err):+8.2f}{np.nanmean(np.abs(err)):7.2f}{np.nanmedian(np.abs(err)):8.2f}"
              f"{np.nanmean(dice):8.4f}   {quarts}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="an HC18 run directory (experiments/hc18_cpu.sh)")
    p.add_argument("--k", type=float, nargs="+", default=[1.3, 1.6, 2.0], help="crop side / head box side")
    args = p.parse_args()
    t0 = time.perf_counter()
    report(measure(args.run, args.k))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
