"""Where a trained HC18 model's head-circumference error comes from: the contour or the model.

For one run's int8 export (``RUN/model_int8.tflite``), on the VAL and TEST sides of the run's own
split, HC is measured from
- ``device``: the graph's class map un-letterboxed nearest (what ``lightseg measure``, the browser
  and the Android app measure);
- ``level t``: the head probability un-letterboxed bilinearly to the original size and cut at
  ``t`` (t = 0.5 is the argmax of a two-class model: the "upsampled probability" contour at
  original-pixel resolution; other t move the boundary outward (t < 0.5) or inward);
- ``expert->letterbox``: the experts' own mask letterboxed to the model's side and back (the
  quantisation floor of the model's resolution, no model at all),
each with the same direct ellipse fit; and, on the device class map, two other fits of its
boundary: ``robust c`` (Tukey-biweight reweighted direct fit, cut at c robust SDs of the radial
residual: boundary stretches where the skull fades and the map leaks or dents stop pulling the
ellipse) and ``edge-weighted`` (each boundary point weighted by the probability map's gradient
there: sharp transitions count more than soft ones). Printed per side: signed mean (predicted - reference),
mean and median absolute error in mm, the mean Dice of the fitted ellipse against the mask, and
signed / absolute mean per quartile of the reference HC; then the test images with the largest
errors.

    PYTHONPATH=. .venv/bin/python experiments/hc18_contour_check.py RUN [--levels 0.3 0.4 0.5 0.6]
        [--robust 2.5 4.685]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scipy import ndimage

from lightseg_tf.anatomy.biometry import (Ellipse, boundary_points, ellipse_region, fit_ellipse_direct,
                                          fit_head_ellipse, grown_half_pixel, largest_component, radial_distances)
from lightseg_tf.data.letterbox import letterbox_mask, unletterbox_mask, unletterbox_probs
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.objectives.metrics import dice_iou_per_class
from lightseg_tf.runs import open_run


def fit_robust(region: np.ndarray, c: float, iters: int = 8) -> Ellipse | None:
    """Tukey-biweight IRLS of the direct fit on ``region``'s boundary (scale: 1.4826 MAD, >= 0.5 px)."""
    pts = boundary_points(largest_component(region))
    ell = fit_ellipse_direct(pts)
    for _ in range(iters):
        if ell is None:
            return None
        r = radial_distances(pts, ell)
        s = max(1.4826 * float(np.median(np.abs(r - np.median(r)))), 0.5)
        z = r / (c * s)
        nxt = fit_ellipse_direct(pts, np.where(np.abs(z) < 1, (1 - z * z) ** 2, 0.0))
        if nxt is None:
            break
        ell = nxt
    return grown_half_pixel(ell)


def fit_edge_weighted(region: np.ndarray, prob: np.ndarray) -> Ellipse | None:
    """Direct fit on ``region``'s boundary, each point weighted by |grad prob| at its pixel."""
    pts = boundary_points(largest_component(region))
    g = np.hypot(ndimage.sobel(prob, 0), ndimage.sobel(prob, 1))
    w = g[(pts[:, 1] - 0.5).astype(int), (pts[:, 0] - 0.5).astype(int)]
    return grown_half_pixel(fit_ellipse_direct(pts, w + 1e-6))


def measure(run: str, levels: list[float], robust: list[float]) -> list[dict]:
    rd = open_run(run)
    model = load_predictor(f"{run}/model_int8.tflite")
    rows = []
    for side in ("val", "test"):
        ds = rd.part(side)
        for rec in ds.records:
            image, mask = ds.load_pair(rec)
            head = mask > 0
            boxed, lb = model.device_letterbox(image)
            out = model.invoke_boxed(boxed)
            prob = unletterbox_probs(model.dequantize(out["probs"]), lb)[..., 1]
            regions = {"device": unletterbox_mask(out["class_map"], lb) > 0,
                       **{f"level {t:g}": prob >= t for t in levels},
                       "expert->letterbox": unletterbox_mask(letterbox_mask(head.astype(np.int32), model.size), lb) > 0}
            fits = {name: (fit_head_ellipse(region) if region.any() else None) for name, region in regions.items()}
            if regions["device"].any():
                fits |= {f"robust {c:g}": fit_robust(regions["device"], c) for c in robust}
                fits["edge-weighted"] = fit_edge_weighted(regions["device"], prob)
            row = {"side": side, "id": rec.id, "ref": rec.hc_mm}
            for name, ell in fits.items():
                row[name] = (np.nan, np.nan) if ell is None else (
                    ell.perimeter * rec.pixel_size_mm - rec.hc_mm,
                    float(dice_iou_per_class(ellipse_region(ell, head.shape), head, 2)[0][1]))
            rows.append(row)
    return rows


def report(rows: list[dict]) -> None:
    methods = [k for k in rows[0] if k not in ("side", "id", "ref")]
    for side in ("val", "test"):
        part = [r for r in rows if r["side"] == side]
        ref = np.array([r["ref"] for r in part])
        quart = np.searchsorted(np.quantile(ref, [0.25, 0.5, 0.75]), ref, side="right")
        edges = np.quantile(ref, [0, 0.25, 0.5, 0.75, 1])
        print(f"\n{side}: {len(part)} images; quartiles (mm) " + ", ".join(
            f"{edges[k]:.0f}-{edges[k + 1]:.0f}" for k in range(4)))
        print(f"{'HC from':<20}{'signed':>8}{'abs':>7}{'median':>8}{'Dice':>8}   quartiles signed/abs")
        for name in methods:
            err = np.array([r[name][0] for r in part])
            d = np.array([r[name][1] for r in part])
            quarts = "  ".join(f"{np.nanmean(err[quart == q]):+.2f}/{np.nanmean(np.abs(err[quart == q])):.2f}"
                               for q in range(4))
            print(f"{name:<20}{np.nanmean(err):+8.2f}{np.nanmean(np.abs(err)):7.2f}{np.nanmedian(np.abs(err)):8.2f}"
                  f"{np.nanmean(d):8.4f}   {quarts}")
    test = sorted((r for r in rows if r["side"] == "test"), key=lambda r: -abs(r["device"][0]))
    print("\nlargest device errors on test: " + ", ".join(
        f"{r['id']} ({r['ref']:.0f} mm: {r['device'][0]:+.1f}, Dice {r['device'][1]:.3f})" for r in test[:5]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="an HC18 run directory holding model_int8.tflite (experiments/hc18_cpu.sh)")
    p.add_argument("--levels", type=float, nargs="+", default=[0.3, 0.4, 0.5, 0.6])
    p.add_argument("--robust", type=float, nargs="*", default=[2.5, 4.685], help="Tukey cut-offs c (robust SDs)")
    args = p.parse_args()
    t0 = time.perf_counter()
    report(measure(args.run, args.levels, args.robust))
    print(f"\nwall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
