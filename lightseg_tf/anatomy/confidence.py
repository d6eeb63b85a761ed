"""How far a head measurement can be trusted: one score in [0, 1] from the model's own
probabilities and the geometry of the head it drew, and the threshold rule that turns it into
a "low confidence: do not use" flag.

Pure numpy / SciPy. The probabilities ``[H, W, C]`` and the class map ``[H, W]`` are at the
image's ORIGINAL size; the class map is the one measured (for a .tflite the devices' nearest
un-letterboxed class map), the probabilities only feed the score.

The score (``SCORE_NAME``) is a product of six terms, each in [0, 1]::

    score = sqrt(margin_in * margin_band) * fit * border * fragments * area

- ``margin_in``: mean head-vs-rest probability margin ``|2 p_head - 1|`` (``p_head`` = the summed
  probability of the head-like classes; for two classes this is top1 - top2) over the measured
  head (the largest component, filled) deeper than ``band_px`` from its boundary;
- ``margin_band``: the same mean over the band of ``band_px`` on both sides of the head's
  boundary, where the ellipse is fitted: a confident model's outline is sharp;
- ``fit = falloff(residual, FIT_RESIDUAL_HALF)``: ``residual`` is the mean radial distance of the
  boundary points (the ones the ellipse was fitted to) to the fitted ellipse over its mean
  radius ``sqrt(a b)``; a head that is no ellipse gives an HC that means nothing;
- ``border = falloff(edge_share, BORDER_SHARE_HALF)``: ``edge_share`` is the share of those
  boundary points on the image's edge (a head cut by the frame is extrapolated);
- ``fragments``: the share of all head-class pixels that lie in the measured component (a head
  in pieces is a model that does not know where the head is);
- ``area``: 1 while the filled head covers ``AREA_RANGE`` of the image, falling linearly to 0 at
  half the lower and ``AREA_RANGE_ZERO`` above the upper limit.

``falloff(x, half) = 1 / (1 + (x / half)^2)``: 1 at 0, one half at ``half``, smooth (no ties at 0,
so bad images still rank among themselves). No head (no ellipse) scores 0. Per structure (every foreground class drawn) the confidence is
the mean top1 - top2 margin over its pixels, with a threshold of its own calibrated on VAL
(:func:`low_structures`; a small structure can fail while the head is fine: PSFHS's pubic
symphysis on unseen recordings, docs/BENCHMARKS.md).

The browser demo (``headConfidence`` in ``tflite/web/core.js``) and the Android app
(``core/Confidence.kt``) port :func:`head_confidence` and :func:`verdict` to flag their own
measurements; the golden vectors (:mod:`lightseg_tf.deploy.golden`) hold this module's numbers
for them to match, so a change here must be made there too (the golden tests then fail until it is).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from lightseg_tf.anatomy.biometry import (HEAD_CLASS_NAMES, Ellipse, boundary_points, fit_ellipse_direct,
                                          radial_distances)
from lightseg_tf.anatomy.precision import round_half_up

SCORE_NAME = "lightseg-confidence/1"
SCORE_FORMULA = ("sqrt(margin_in * margin_band) * fit * border * fragments * area "
                 "(lightseg_tf/anatomy/confidence.py)")
FIT_RESIDUAL_HALF = 0.03
BORDER_SHARE_HALF = 0.1
AREA_RANGE = (0.01, 0.6)
AREA_RANGE_ZERO = 0.95
LOW_CONFIDENCE = "low confidence: do not use"
BAND_MODEL_PX = 2.0  # the boundary band's half-width, in model (letterbox) pixels


def _clip01(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def falloff(x: float, half: float) -> float:
    """``1 / (1 + (x / half)^2)``: 1 at ``x = 0``, 0.5 at ``half``, towards 0 beyond."""
    return 1.0 / (1.0 + (x / half) ** 2)


def ellipse_residual(points: np.ndarray, ell: Ellipse) -> float:
    """Mean absolute radial distance (:func:`~lightseg_tf.anatomy.biometry.radial_distances`) of
    ``points`` ``[N, 2]`` to ``ell``, over its mean radius ``sqrt(a b)``."""
    if not len(np.asarray(points).reshape(-1, 2)):
        return float("inf")
    return float(np.abs(radial_distances(points, ell)).mean() / math.sqrt(ell.a * ell.b))


def area_term(fraction: float) -> float:
    """1 inside ``AREA_RANGE``; linear to 0 at half its lower limit and at ``AREA_RANGE_ZERO``."""
    lo, hi = AREA_RANGE
    if fraction < lo:
        return _clip01((fraction - lo / 2) / (lo / 2))
    if fraction > hi:
        return _clip01((AREA_RANGE_ZERO - fraction) / (AREA_RANGE_ZERO - hi))
    return 1.0


def band_width_px(height: int, width: int, size: int) -> float:
    """``band_px`` of :func:`head_confidence` for an ``height x width`` image measured by an ``size x size``
    model: ``BAND_MODEL_PX`` model pixels at the original size, ``2 max(H, W) / S`` (the letterbox
    scale is ``S / max(H, W)``). The browser and Android ports use the same rule."""
    return BAND_MODEL_PX * max(height, width) / size


def structure_margins(probs: np.ndarray, mask: np.ndarray, classes) -> dict[str, float]:
    """``{class name: mean top1 - top2 probability margin over its predicted pixels}``, per
    foreground class the class map holds."""
    probs = np.asarray(probs, np.float32)
    top2 = np.sort(probs, axis=-1)[..., -2:]
    margin = top2[..., 1] - top2[..., 0]
    out = {}
    for k, name in enumerate(classes):
        sel = mask == k
        if k > 0 and sel.any():
            out[str(name)] = float(margin[sel].mean())
    return out


def head_confidence(probs: np.ndarray, mask: np.ndarray, classes, band_px: float = 2.0) -> dict:
    """The confidence of one head measurement (see the module docstring for the formula).

    Args:
        probs: ``[H, W, C]`` class probabilities at the original size.
        mask: ``[H, W]`` the class map the head was measured on.
        classes: class names (index = class id); the head is the union of the head-like ones.
        band_px: half-width of the boundary band in ORIGINAL pixels (about two model pixels:
            ``2 * max(H, W) / S`` for an S x S letterbox).

    Returns:
        ``{"score", "components": {name: value}, "raw": {residual, edge_share, area_fraction,
        head_share}, "structures": {class: margin}}``; score 0 when there is no head.
    """
    probs = np.asarray(probs, np.float32)
    mask = np.asarray(mask)
    if probs.shape[:2] != mask.shape:
        raise ValueError(f"probabilities {probs.shape[:2]} and class map {mask.shape} differ in size")
    names = [str(c).lower() for c in classes]
    head_ids = [k for k, n in enumerate(names) if k > 0 and n in HEAD_CLASS_NAMES]
    out = {"score": 0.0, "components": {}, "raw": {}, "structures": structure_margins(probs, mask, classes)}
    any_head = np.isin(mask, head_ids)
    labels, n = ndimage.label(any_head, structure=np.ones((3, 3), bool))
    if n == 0:
        return out
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == 1 + int(np.argmax(sizes))
    head = ndimage.binary_fill_holes(largest)
    pts = boundary_points(head)
    ell = fit_ellipse_direct(pts)  # the head ellipse before its half-pixel growth: the points' own fit
    if ell is None:
        return out
    p_head = probs[..., head_ids].sum(-1)
    margin = np.abs(2.0 * p_head - 1.0)
    d_in = ndimage.distance_transform_edt(head)
    d_out = ndimage.distance_transform_edt(~head)
    band = (head & (d_in <= band_px)) | (~head & (d_out <= band_px))
    interior = head & (d_in > band_px)
    margin_in = float(margin[interior].mean()) if interior.any() else float(margin[head].mean())
    margin_band = float(margin[band].mean())
    h, w = mask.shape
    on_edge = (pts[:, 0] < 1) | (pts[:, 1] < 1) | (pts[:, 0] > w - 1) | (pts[:, 1] > h - 1)
    raw = {"residual": ellipse_residual(pts, ell), "edge_share": float(on_edge.mean()),
           "area_fraction": float(head.mean()), "head_share": float(largest.sum() / any_head.sum())}
    comp = {"margin_in": margin_in, "margin_band": margin_band,
            "fit": falloff(raw["residual"], FIT_RESIDUAL_HALF),
            "border": falloff(raw["edge_share"], BORDER_SHARE_HALF),
            "fragments": raw["head_share"], "area": area_term(raw["area_fraction"])}
    score = math.sqrt(margin_in * margin_band) * comp["fit"] * comp["border"] * comp["fragments"] * comp["area"]
    out.update(score=_clip01(score), components=comp, raw=raw)
    return out


THRESHOLD_RULE = ("the larger of (1) the highest cut below which more than half of the VAL images are bad "
                  "(HC error > hc_tolerance, head Dice < dice_min or no head found) and (2) the "
                  "good_quantile quantile of the scores of the good VAL images")


def choose_threshold(scores, bad, good_quantile: float = 0.02) -> float:
    """The "low confidence" threshold from VAL scores and which images were bad (see ``THRESHOLD_RULE``).

    (1) Sort the images by score; for every cut between two distinct scores (and above the
    highest) take the images below it: the highest cut where bad ones are more than half of
    them (they dominate), placed midway between the two scores (midway to 1 above the highest);
    0 when no cut qualifies. (2) The ``good_quantile`` quantile of the good images' scores: below it the model
    is outside what VAL showed it does well, which is what flags a model on data unlike its
    training data even when its VAL had no bad image. A flag is ``score < threshold``; the
    threshold is rounded half-up to 0.01, the precision scores are reported at.
    """
    scores = np.asarray(scores, np.float64)
    bad = np.asarray(bad, bool)
    if scores.shape != bad.shape or not len(scores):
        raise ValueError("choose_threshold needs one bad/good label per score, and at least one score")
    order = np.argsort(scores, kind="stable")
    s, b = scores[order], bad[order]
    t_bad = 0.0
    bad_share = np.cumsum(b) / np.arange(1, len(s) + 1)
    for k in range(len(s)):  # the cut after the k-th lowest image
        upper = s[k + 1] if k + 1 < len(s) else 1.0
        if upper > s[k] and bad_share[k] > 0.5:
            t_bad = (s[k] + upper) / 2
    good = scores[~bad]
    t_good = float(np.quantile(good, good_quantile)) if len(good) else 1.0
    return round_half_up(max(t_bad, t_good), 2)


STRUCTURE_DICE_MIN = 0.7  # a VAL image is bad for a structure below this Dice (small structures: PSFHS's PS)
STRUCTURE_RULE = ("per structure: choose_threshold on the structure's margin over the VAL images that hold it "
                  "(predicted or annotated), bad below structure_dice_min Dice of that structure")


def structure_flag(name: str) -> str:
    """The flag a structure below its threshold gets: "low confidence (pubic symphysis): do not use"."""
    return f"low confidence ({name}): do not use"


def structure_thresholds(calibration: dict | None) -> dict[str, float]:
    """``{class name: threshold}`` of a calibration (``confidence.json`` or a card's ``confidence``),
    whichever of the two shapes it holds (the run's ``{name: {threshold, val}}``, the card's
    ``{name: threshold}``); empty when it has none."""
    out = {}
    for name, v in ((calibration or {}).get("structures") or {}).items():
        t = v.get("threshold") if isinstance(v, dict) else v
        if t is not None:
            out[name] = float(t)
    return out


def low_structures(margins: dict[str, float], thresholds: dict[str, float] | None) -> list[str]:
    """The drawn structures whose margin is below their calibrated threshold (:func:`verdict`).

    Args:
        margins: :func:`structure_margins` of one image (drawn structures only).
        thresholds: ``{class name: threshold}`` from the card or ``confidence.json``
            (``structures``); None or a structure without one: never flagged.

    Returns:
        Their names, in the order of ``margins`` (class order).
    """
    thresholds = thresholds or {}
    return [name for name, m in margins.items() if verdict(m, thresholds.get(name)) == "low"]


def verdict(score: float, threshold: float | None) -> str:
    """``"low"`` (``score < threshold``: "low confidence: do not use"), ``"ok"``, or ``"uncalibrated"``
    when no threshold is known. Both at the reported precision (0.01)."""
    if threshold is None:
        return "uncalibrated"
    return "low" if round_half_up(score, 2) < round_half_up(threshold, 2) else "ok"
