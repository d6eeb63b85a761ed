"""How segmentation degrades: Dice per class under graded image corruptions, models side by side.

Corruptions act on the ORIGINAL image before letterboxing (as a worse scanner or a saved JPEG
would), each at severity 0 (identity) and increasing levels: Gaussian blur (including the
LightSeg paper's 5x5 and 11x11 kernels), brightness x0.7 / x1.3, contrast, multiplicative
speckle, JPEG compression, and small rotations (image bilinear, mask nearest, so they stay
aligned).
"""

from __future__ import annotations

import copy
import io
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lightseg_tf.core.io import write_bytes_atomic, write_csv_atomic, write_json_atomic
from lightseg_tf.core.log import progress
from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.evaluation.evaluate import evaluate
from lightseg_tf.models.predictor import Predictor

# name -> severities (index 0 is the identity)
SEVERITIES: dict[str, tuple] = {
    "gaussian_blur": (0, 3, 5, 11),  # kernel size
    "brightness": (1.0, 0.7, 1.3),  # multiplier
    "contrast": (1.0, 0.75, 0.5, 0.25),  # contrast factor around the mean
    "speckle": (0.0, 0.1, 0.2, 0.4),  # std of the multiplicative noise
    "jpeg": (100, 50, 20, 10),  # quality (100 = untouched)
    "rotation": (0.0, 5.0, 10.0, 15.0),  # degrees
}
# name -> (title, what a severity level is): the curves' titles and x axes.
AXES: dict[str, tuple[str, str]] = {
    "gaussian_blur": ("Gaussian blur", "kernel size (px, 0 = none)"),
    "brightness": ("Brightness", "intensity multiplier (1 = none)"),
    "contrast": ("Contrast", "contrast factor around the mean (1 = none)"),
    "speckle": ("Speckle noise", "multiplicative noise std (0 = none)"),
    "jpeg": ("JPEG compression", "JPEG quality (100 = none)"),
    "rotation": ("Rotation", "rotation (degrees)"),
}


def corrupt(image: np.ndarray, mask: np.ndarray | None, name: str, level, seed: int = 0):
    """Apply corruption ``name`` at ``level`` to float ``[H,W,1]`` image (and its mask for rotation)."""
    x = image[..., 0].astype(np.float32)
    if name == "gaussian_blur":
        if level:
            x = cv2.GaussianBlur(x, (int(level), int(level)), 0)
    elif name == "brightness":
        x = x * float(level)
    elif name == "contrast":
        x = (x - x.mean()) * float(level) + x.mean()
    elif name == "speckle":
        if level:
            x = x * (1 + np.random.default_rng(seed).normal(0, float(level), x.shape).astype(np.float32))
    elif name == "jpeg":
        if level < 100:
            buf = io.BytesIO()
            Image.fromarray(np.clip(np.round(x * 255), 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(level))
            x = np.asarray(Image.open(io.BytesIO(buf.getvalue())), np.float32) / 255.0
    elif name == "rotation":
        if level:
            h, w = x.shape
            rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(level), 1.0)
            x = cv2.warpAffine(x, rot, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
            if mask is not None:
                mask = cv2.warpAffine(mask.astype(np.int32).astype(np.float32), rot, (w, h), flags=cv2.INTER_NEAREST,
                                      borderValue=0).astype(np.int32)
    else:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(SEVERITIES)}")
    return np.clip(x, 0, 1)[..., None].astype(np.float32), mask


class CorruptedDataset(SegDataset):
    """A view of a dataset whose images (and, for rotation, masks) are corrupted on load."""

    def __init__(self, base: SegDataset, name: str, level):
        self.__dict__.update(copy.copy(base.__dict__))
        self.base, self.name, self.level = base, name, level

    def load_pair(self, record: Record):
        image, mask = self.base.load_pair(record)
        return corrupt(image, mask, self.name, self.level, seed=zlib.crc32(record.id.encode()))


def robustness_table(predictors: dict[str, Predictor], dataset: SegDataset, corruptions=None) -> list[dict]:
    """Dice per class for every model x corruption x severity.

    Args:
        predictors: ``{model name: Predictor}`` (Keras or TFLite, each at its own input size).
        dataset: annotated records to corrupt.
        corruptions: names from :data:`SEVERITIES` (default: all).

    Returns:
        Rows ``{"model", "corruption", "level", "mean_fg_dice", "dice_<class>"...}``.
    """
    for predictor in predictors.values():  # before any work: a wrong model fails at once
        predictor.check_classes(dataset.classes, f"the data in {dataset.root}")
    rows = []
    cases = [(cname, level) for cname in corruptions or SEVERITIES for level in SEVERITIES[cname]]
    for cname, level in progress(cases, "robustness", unit="case"):
        view = CorruptedDataset(dataset, cname, level)
        for mname, predictor in predictors.items():
            s = evaluate(predictor, view, surface=False).summary
            rows.append({"model": mname, "corruption": cname, "level": level,
                         "mean_fg_dice": s["mean_fg_dice"],
                         **{f"dice_{c}": v["dice"] for c, v in s["per_class"].items()}})
    return rows


def write_robustness(rows: list[dict], out_dir: str | Path) -> Path:
    """Write ``robustness.json``, ``robustness.csv`` and the ``robustness.png`` curves into ``out_dir``."""
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "robustness.json", rows)
    write_csv_atomic(out_dir / "robustness.csv", rows)
    plot_robustness(rows, out_dir / "robustness.png")
    return out_dir


def plot_robustness(rows: list[dict], path) -> None:
    """Write :func:`robustness_png` of ``rows`` to ``path`` (atomically)."""
    write_bytes_atomic(path, robustness_png(rows))


def robustness_png(rows: list[dict]) -> bytes:
    """Dice-vs-severity curves as PNG bytes: one subplot per corruption (its unit on the x axis),
    one line per model, three subplots a row and the models' legend under them.

    Args:
        rows: :func:`robustness_table` rows (of one or more tables).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["corruption"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    ncols = min(3, len(names))
    nrows = -(-len(names) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.9 * ncols, 3.1 * nrows + 0.3 * len(models)), squeeze=False,
                             layout="constrained")
    for ax, cname in zip(axes.ravel(), names):
        for m in models:
            pts = [r for r in rows if r["corruption"] == cname and r["model"] == m]
            # Levels as categories in the table's order: brightness goes both ways from 1.
            ax.plot([f"{p['level']:g}" for p in pts], [p["mean_fg_dice"] or 0 for p in pts], marker="o", label=m)
        title, unit = AXES.get(cname, (cname, "severity"))
        ax.set_title(title)
        ax.set_xlabel(unit, fontsize=9)
        ax.set_ylim(0, 1)
        ax.set_ylabel("mean foreground Dice", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.legend(*axes[0][0].get_legend_handles_labels(), loc="outside lower center", ncols=min(len(models), 3),
               fontsize=9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
