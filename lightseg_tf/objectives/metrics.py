"""Segmentation metrics: per-image per-class overlap and surface distances, their summaries,
and a streaming Keras Dice for training logs.

How an empty class counts (the same for every metric; README "How an empty class counts"):

==============================  =====  =====  ===========  ===========  =========  =============
case for one (image, class)     Dice   IoU    sensitivity  specificity  precision  HD95 / ASSD
==============================  =====  =====  ===========  ===========  =========  =============
both empty                      NaN    NaN    NaN          defined      NaN        NaN
prediction only (false alarm)   0      0      NaN          defined      0          NaN
ground truth only (missed)      0      0      0            defined      NaN        NaN
==============================  =====  =====  ===========  ===========  =========  =============

NaN means "undefined": that (image, class) pair is left out of the per-image average (nanmean)
and counted in the summary's ``undefined`` numbers, so a reader sees how many were skipped.
Dice and IoU are computed the same way (from the same tp/fp/fn), per image then averaged
("per_image"), and also pooled over all pixels of all images ("pooled").
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf
import tf_keras as keras
from scipy import ndimage

OVERLAP = ("dice", "iou", "sensitivity", "specificity", "precision")
SURFACE = ("hd95", "assd")


def confusion_counts(pred: np.ndarray, true: np.ndarray, num_classes: int):
    """Per-class (tp, fp, fn, tn) of one image; each an int64 array ``[C]``."""
    pred = np.asarray(pred).ravel().astype(np.int64)
    true = np.asarray(true).ravel().astype(np.int64)
    cm = np.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(np.int64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = true.size - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num, den):
    num, den = np.asarray(num, float), np.asarray(den, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def overlap_from_counts(tp, fp, fn, tn) -> dict[str, np.ndarray]:
    """Dice, IoU, sensitivity, specificity and precision from counts (see the table above)."""
    return {
        "dice": _ratio(2 * tp, 2 * tp + fp + fn),
        "iou": _ratio(tp, tp + fp + fn),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "precision": _ratio(tp, tp + fp),
    }


def dice_iou_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int):
    """Dice and IoU per class of one image (``[H, W]`` class ids); NaN where both are empty."""
    m = overlap_from_counts(*confusion_counts(pred, true, num_classes))
    return m["dice"], m["iou"]


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: the mask minus its erosion (8-connected structuring element)."""
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)


def surface_distances(pred: np.ndarray, true: np.ndarray, spacing: float = 1.0) -> tuple[float, float]:
    """HD95 and average symmetric surface distance between two binary masks, in ``spacing`` units.

    HD95 is the larger of the two directed 95th percentiles of boundary-to-boundary distances
    (as MONAI's ``compute_hausdorff_distance(percentile=95)``); ASSD is the mean of all
    boundary-to-boundary distances in both directions. NaN when either mask is empty.
    Work is limited to the bounding box of both masks (plus a margin) to stay fast.
    """
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    if not pred.any() or not true.any():
        return float("nan"), float("nan")
    rows = np.flatnonzero((pred | true).any(axis=1))
    cols = np.flatnonzero((pred | true).any(axis=0))
    sl = (slice(max(rows[0] - 1, 0), rows[-1] + 2), slice(max(cols[0] - 1, 0), cols[-1] + 2))
    ps, ts = _surface(pred[sl]), _surface(true[sl])
    d_to_t = ndimage.distance_transform_edt(~ts, sampling=(spacing, spacing))
    d_to_p = ndimage.distance_transform_edt(~ps, sampling=(spacing, spacing))
    a, b = d_to_t[ps], d_to_p[ts]
    hd95 = max(np.percentile(a, 95), np.percentile(b, 95))
    assd = (a.sum() + b.sum()) / (a.size + b.size)
    return float(hd95), float(assd)


def score_image(pred: np.ndarray, true: np.ndarray, num_classes: int, pixel_size_mm: float | None = None,
                surface: bool = True) -> dict[str, np.ndarray]:
    """Every metric for one image, per class.

    Args:
        pred, true: ``[H, W]`` class ids.
        pixel_size_mm: physical pixel size; HD95/ASSD are in mm when given, else in pixels.
        surface: also compute HD95 / ASSD (the slow part).

    Returns:
        ``{metric: [C] float array}`` plus ``tp``, ``fp``, ``fn``, ``tn`` counts ``[C]``.
    """
    tp, fp, fn, tn = confusion_counts(pred, true, num_classes)
    out = {**overlap_from_counts(tp, fp, fn, tn), "tp": tp, "fp": fp, "fn": fn, "tn": tn}
    if surface:
        spacing = 1.0 if pixel_size_mm is None else float(pixel_size_mm)
        hd, asd = zip(*(surface_distances(pred == c, true == c, spacing) for c in range(num_classes)))
        out["hd95"], out["assd"] = np.array(hd), np.array(asd)
    return out


def summarise(scores: list[dict[str, np.ndarray]], classes: tuple[str, ...] | list[str]) -> dict:
    """Summary of :func:`score_image` results over images.

    Returns:
        ``{"images": N, "per_class": {name: {metric: mean over images (NaN skipped),
        "<metric>_undefined": count, "pooled_dice": ..., "pooled_iou": ...}},
        "mean_fg_<metric>": mean over foreground classes, "mean_all_<metric>": incl. background,
        "pooled_mean_fg_dice": ..., "pooled_mean_fg_iou": ...}``; values None when undefined.
    """
    classes = list(classes)
    c = len(classes)

    def clean(v):
        return None if v is None or not np.isfinite(v) else float(v)

    metrics = [m for m in (*OVERLAP, *SURFACE) if scores and m in scores[0]]
    stacked = {m: np.array([s[m] for s in scores], float).reshape(-1, c) for m in metrics}
    counts = {k: np.sum([s[k] for s in scores], axis=0) if scores else np.zeros(c) for k in ("tp", "fp", "fn", "tn")}
    pooled = overlap_from_counts(counts["tp"], counts["fp"], counts["fn"], counts["tn"])
    out: dict = {"images": len(scores), "per_class": {}}
    means = {}
    for m in metrics:
        with warnings.catch_warnings():  # an all-NaN column is a legitimate "undefined"
            warnings.simplefilter("ignore", RuntimeWarning)
            means[m] = np.nanmean(stacked[m], axis=0) if len(scores) else np.full(c, np.nan)
    for k, name in enumerate(classes):
        entry = {m: clean(means[m][k]) for m in metrics}
        entry.update({f"{m}_undefined": int(np.isnan(stacked[m][:, k]).sum()) for m in metrics})
        entry["pooled_dice"], entry["pooled_iou"] = clean(pooled["dice"][k]), clean(pooled["iou"][k])
        out["per_class"][name] = entry
    for m in metrics:
        fg = [v for v in means[m][1:] if np.isfinite(v)]
        al = [v for v in means[m] if np.isfinite(v)]
        out[f"mean_fg_{m}"] = float(np.mean(fg)) if fg else None
        out[f"mean_all_{m}"] = float(np.mean(al)) if al else None
    for m in ("dice", "iou"):
        fg = [v for v in pooled[m][1:] if np.isfinite(v)]
        out[f"pooled_mean_fg_{m}"] = float(np.mean(fg)) if fg else None
    return out


def subject_bootstrap_ci(values, groups, n_boot: int = 2000, level: float = 0.95,
                         seed: int = 0) -> list[float] | None:
    """Percentile bootstrap interval of a mean over images, resampling whole subjects.

    Images of one subject (HC18's 2HC/3HC scans of one fetus, a PSFHS sweep) are not independent
    draws, so subjects are resampled with replacement (the cluster bootstrap; Davison & Hinkley,
    "Bootstrap Methods and their Application", 1997, section 3.8), each bringing all its images.

    Args:
        values: per-image values ``[N]``, or ``[N, K]`` whose statistic is the mean over columns of
            each column's mean over images (``mean_fg_dice`` from per-class Dice ``[N, C-1]``);
            NaN (an undefined score) is skipped as :func:`summarise` skips it.
        groups: ``N`` subject ids.
        n_boot: resamples.
        level: coverage of the interval.
        seed: the resampling's seed (the same data give the same interval).

    Returns:
        ``[low, high]``, or None with fewer than 2 subjects or no finite value.
    """
    v = np.asarray(values, float)
    v = v.reshape(len(v), -1)
    if len(v) != len(groups):
        raise ValueError(f"{len(v)} values but {len(groups)} group ids")
    _, g = np.unique(np.asarray(groups, str), return_inverse=True)
    n_groups = int(g.max()) + 1 if len(g) else 0
    finite = np.isfinite(v)
    if n_groups < 2 or not finite.any():
        return None
    sums = np.zeros((n_groups, v.shape[1]))
    counts = np.zeros((n_groups, v.shape[1]))
    np.add.at(sums, g, np.where(finite, v, 0.0))
    np.add.at(counts, g, finite)
    weights = np.random.default_rng(seed).multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        column_means = (weights @ sums) / (weights @ counts)  # [n_boot, K], NaN where a column drew nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stat = np.nanmean(column_means, axis=1)
    stat = stat[np.isfinite(stat)]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(stat, tail)), float(np.percentile(stat, 100 - tail))]


@keras.utils.register_keras_serializable(package="lightseg")
class MeanForegroundDice(keras.metrics.Metric):
    """Streaming mean over foreground classes of the per-image Dice (both-empty pairs skipped).

    Takes int ``y_true [B, H, W]`` and logits ``[B, H, W, C]``; the per-class means are
    averaged over the classes seen so far.
    """

    def __init__(self, num_classes: int, name: str = "mean_fg_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.total = self.add_weight(name="total", shape=(self.num_classes,), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(self.num_classes,), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        with tf.name_scope(self.name):  # so a profiler trace can attribute the metric's ops
            y_pred = tf.convert_to_tensor(y_pred)
            true = tf.cast(y_true, tf.int32)
            if true.shape.rank == y_pred.shape.rank:
                true = tf.squeeze(true, -1)
            pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
            p = tf.one_hot(pred, self.num_classes)
            t = tf.one_hot(true, self.num_classes)
            tp = tf.reduce_sum(p * t, axis=[1, 2])
            denom = tf.reduce_sum(p + t, axis=[1, 2])
            valid = tf.cast(denom > 0, tf.float32)
            dice = tf.math.divide_no_nan(2.0 * tp, denom)
            self.total.assign_add(tf.reduce_sum(dice * valid, axis=0))
            self.count.assign_add(tf.reduce_sum(valid, axis=0))

    def per_class(self):
        """Mean Dice per class so far ``[C]`` (0 where a class was never defined)."""
        return tf.math.divide_no_nan(self.total, self.count)

    def result(self):
        present = tf.cast(self.count[1:] > 0, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(self.per_class()[1:] * present), tf.reduce_sum(present))

    def reset_state(self):
        self.total.assign(tf.zeros_like(self.total))
        self.count.assign(tf.zeros_like(self.count))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
