"""Evaluation at ORIGINAL resolution: predictions are un-letterboxed before scoring.

Scores are per image and class (CSV) and summarised (JSON); Dice and IoU follow the
empty-class convention of :mod:`lightseg_tf.metrics`.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.data.letterbox import letterbox_image, letterbox_params, unletterbox_probs
from lightseg_tf.io_utils import atomic_path, write_json_atomic
from lightseg_tf.metrics import dice_iou_per_class


@dataclass
class EvalResult:
    rows: list[dict]  # one per image
    summary: dict


def predict_dataset(predict_fn, dataset: SegDataset, size: int, batch_size: int = 8):
    """Yield ``(record, image, mask, probs)`` at original resolution for every record.

    Args:
        predict_fn: ``[N, S, S, 1] float32 -> [N, S, S, C]`` class probabilities.
        dataset: the records to run.
        size: the model's square input side.
    """
    records = dataset.records
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        pairs = [dataset.load_pair(r) for r in chunk]
        batch = np.stack([letterbox_image(img, size)[0] for img, _ in pairs])
        probs = predict_fn(batch)
        for rec, (img, mask), p in zip(chunk, pairs, probs):
            lb = letterbox_params(img.shape[0], img.shape[1], size)
            yield rec, img, mask, unletterbox_probs(p, lb)


def summarise(rows: list[dict], classes: tuple[str, ...]) -> dict:
    """Per-class mean Dice/IoU over images (empty pairs skipped) and the foreground mean."""
    out: dict = {"images": len(rows), "per_class": {}}
    for metric in ("dice", "iou"):
        for k, name in enumerate(classes):
            vals = np.array([r[f"{metric}_{name}"] for r in rows], float)
            out["per_class"].setdefault(name, {})[metric] = (
                float(np.nanmean(vals)) if np.isfinite(vals).any() else None
            )
        fg = [out["per_class"][c][metric] for c in classes[1:] if out["per_class"][c][metric] is not None]
        out[f"mean_fg_{metric}"] = float(np.mean(fg)) if fg else None
    return out


def evaluate(predict_fn, dataset: SegDataset, size: int, batch_size: int = 8,
             postprocess=None) -> EvalResult:
    """Score ``predict_fn`` on every annotated record of ``dataset`` at original resolution.

    Args:
        postprocess: optional ``(class_map [H,W], probs [H,W,C]) -> class_map``.
    """
    rows = []
    for rec, _, mask, probs in predict_dataset(predict_fn, dataset, size, batch_size):
        pred = probs.argmax(-1).astype(np.int32)
        if postprocess is not None:
            pred = postprocess(pred, probs)
        dice, iou = dice_iou_per_class(pred, mask, dataset.num_classes)
        row = {"id": rec.id, "subject": rec.subject}
        row.update({f"dice_{c}": float(d) for c, d in zip(dataset.classes, dice)})
        row.update({f"iou_{c}": float(v) for c, v in zip(dataset.classes, iou)})
        rows.append(row)
    return EvalResult(rows, summarise(rows, dataset.classes))


def write_results(result: EvalResult, out_dir: str | Path, stem: str = "eval") -> tuple[Path, Path]:
    """Write ``{stem}_per_image.csv`` and ``{stem}_summary.json`` atomically."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / f"{stem}_per_image.csv", out_dir / f"{stem}_summary.json"
    buf = io.StringIO()
    if result.rows:
        w = csv.DictWriter(buf, fieldnames=list(result.rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(result.rows)
    with atomic_path(csv_path) as tmp:
        tmp.write_text(buf.getvalue())
    write_json_atomic(json_path, result.summary)
    return csv_path, json_path


def format_summary(summary: dict) -> str:
    """A small text table of per-class Dice / IoU."""
    lines = [f"{'class':<14}{'Dice':>8}{'IoU':>8}"]
    for name, m in summary["per_class"].items():
        fmt = lambda v: f"{v:8.4f}" if v is not None else f"{'n/a':>8}"  # noqa: E731
        lines.append(f"{name:<14}{fmt(m['dice'])}{fmt(m['iou'])}")
    lines.append(f"{'mean (fg)':<14}{summary['mean_fg_dice'] or float('nan'):8.4f}"
                 f"{summary['mean_fg_iou'] or float('nan'):8.4f}")
    return "\n".join(lines)
