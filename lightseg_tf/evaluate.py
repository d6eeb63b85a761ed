"""Evaluation at ORIGINAL resolution: predictions are un-letterboxed before scoring.

Scores are per image and class (CSV) and summarised (JSON); every metric follows the
empty-class convention of :mod:`lightseg_tf.metrics`. Surface distances are in mm with each
image's own pixel size, in pixels where it is unknown (the summary says which).
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
from lightseg_tf.metrics import OVERLAP, SURFACE, score_image, summarise


@dataclass
class EvalResult:
    rows: list[dict]  # one per image
    summary: dict
    post: "EvalResult | None" = None  # the same predictions after post-processing


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


def evaluate(predict_fn, dataset: SegDataset, size: int, batch_size: int = 8,
             postprocess=None, surface: bool = True) -> EvalResult:
    """Score ``predict_fn`` on every annotated record of ``dataset`` at original resolution.

    Args:
        predict_fn: ``[N, S, S, 1] -> [N, S, S, C]`` probabilities of letterboxed images.
        size: the model's input side S.
        postprocess: optional ``(class_map [H,W], probs [H,W,C]) -> class_map``; when given,
            the same predictions are scored with and without it (``result.post``).
        surface: also compute HD95 / ASSD.

    Returns:
        One CSV-ready row per image and the :func:`lightseg_tf.metrics.summarise` summary.
    """
    variants = {"raw": ([], [])} | ({"post": ([], [])} if postprocess is not None else {})
    units = set()
    for rec, _, mask, probs in predict_dataset(predict_fn, dataset, size, batch_size):
        raw = probs.argmax(-1).astype(np.int32)
        units.add("mm" if rec.pixel_size_mm else "px")
        for name, (rows, scores) in variants.items():
            pred = raw if name == "raw" else postprocess(raw, probs)
            s = score_image(pred, mask, dataset.num_classes, rec.pixel_size_mm, surface=surface)
            scores.append(s)
            row = {"id": rec.id, "subject": rec.subject, "pixel_size_mm": rec.pixel_size_mm}
            for m in (*OVERLAP, *(SURFACE if surface else ())):
                row.update({f"{m}_{c}": float(v) for c, v in zip(dataset.classes, s[m])})
            rows.append(row)
    results = {}
    for name, (rows, scores) in variants.items():
        summary = summarise(scores, dataset.classes)
        summary["surface_distance_units"] = "/".join(sorted(units)) if surface else None
        summary["postprocessed"] = name == "post"
        results[name] = EvalResult(rows, summary)
    result = results["raw"]
    result.post = results.get("post")
    return result


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
    """A small text table of per-class Dice / IoU (and HD95 / ASSD when computed)."""
    surface = "hd95" in next(iter(summary["per_class"].values()))
    unit = summary.get("surface_distance_units") or ""
    head = f"{'class':<14}{'Dice':>8}{'IoU':>8}" + (f"{'HD95 ' + unit:>12}{'ASSD ' + unit:>12}" if surface else "")

    def fmt(v, w=8, d=4):
        return f"{v:{w}.{d}f}" if v is not None else f"{'n/a':>{w}}"

    lines = [head]
    for name, m in summary["per_class"].items():
        extra = fmt(m["hd95"], 12, 2) + fmt(m["assd"], 12, 2) if surface else ""
        lines.append(f"{name:<14}{fmt(m['dice'])}{fmt(m['iou'])}{extra}")
    extra = fmt(summary["mean_fg_hd95"], 12, 2) + fmt(summary["mean_fg_assd"], 12, 2) if surface else ""
    lines.append(f"{'mean (fg)':<14}{fmt(summary['mean_fg_dice'])}{fmt(summary['mean_fg_iou'])}{extra}")
    return "\n".join(lines)


def load_predictor(model: str | Path, tta: str | None = None, size: int | None = None):
    """``(input side, predict_fn)`` of a ``.tflite`` (its card beside it) or a run / Keras model file.

    ``predict_fn`` maps letterboxed images ``[N, S, S, 1]`` to probabilities ``[N, S, S, C]``;
    ``tta="hflip"`` is for Keras models only (a .tflite graph is fixed).
    """
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.training import load_trained_model, predict_probs

    if Path(model).suffix == ".tflite":
        from lightseg_tf.export import load_tflite

        if tta not in (None, "", "none"):
            raise LightsegError("--tta is for Keras models; the .tflite graph is fixed")
        seg = load_tflite(model)
        return seg.size, seg.predict
    keras_model = load_trained_model(model)
    return int(size or keras_model.input_shape[1]), lambda x: predict_probs(keras_model, x, tta=tta)


def evaluate_and_write(predict_fn, size: int, dataset: SegDataset, out: str | Path, split: str,
                       tta: str | None = None, tflite: str | Path | None = None, postprocess: bool = False):
    """Score ``dataset`` (one split) and write ``eval_<split>[_hflip][_<tflite stem>]`` CSV/JSON into ``out``.

    With ``postprocess``, the post-processed scores go to the ``_postprocessed`` pair too.

    Returns:
        ``(result, csv path, json path)``.
    """
    post = None
    if postprocess:
        from lightseg_tf.postprocess import make_postprocess

        post = make_postprocess(dataset.classes)
    result = evaluate(predict_fn, dataset, size, postprocess=post)
    stem = f"eval_{split}" + ("_hflip" if tta == "hflip" else "") + (f"_{Path(tflite).stem}" if tflite else "")
    csv_path, json_path = write_results(result, out, stem)
    if result.post is not None:
        write_results(result.post, out, stem + "_postprocessed")
    return result, csv_path, json_path


def evaluate_run(run: str | Path, split: str = "test", tflite: str | Path | None = None, postprocess: bool = False,
                 out: str | Path | None = None, tta: str | None = None) -> EvalResult:
    """Score a run's best Keras model (or ``tflite``) on one side of the run's own split.

    Writes ``eval_<split>[_hflip][_<tflite stem>]_{per_image.csv,summary.json}`` (and the
    ``_postprocessed`` pair) into ``out`` (default: the run directory).
    """
    from lightseg_tf.training import open_run

    rd = open_run(run)
    size, predict_fn = load_predictor(tflite if tflite is not None else rd.run_dir, tta)
    return evaluate_and_write(predict_fn, size, rd.part(split), Path(out) if out else rd.run_dir, split, tta,
                              tflite, postprocess)[0]
