"""Evaluation at ORIGINAL resolution: predictions are un-letterboxed before scoring.

Scores are per image and class (CSV) and summarised (JSON); every metric follows the
empty-class convention of :mod:`lightseg_tf.objectives.metrics`. Surface distances are in mm with each
image's own pixel size, in pixels where it is unknown (the summary says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightseg_tf.anatomy.confidence import low_structures, structure_margins, structure_thresholds
from lightseg_tf.core.io import write_csv_atomic, write_json_atomic
from lightseg_tf.core.log import progress
from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.data.letterbox import letterbox_image, letterbox_params, unletterbox_probs
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.predictor import Predictor
from lightseg_tf.models.tta import tta_mode
from lightseg_tf.objectives.metrics import OVERLAP, SURFACE, score_image, subject_bootstrap_ci, summarise
from lightseg_tf.runs import open_run


@dataclass
class EvalResult:
    rows: list[dict]  # one per image
    summary: dict
    post: "EvalResult | None" = None  # the same predictions after post-processing


def predict_dataset(predictor: Predictor, dataset: SegDataset, batch_size: int = 8, bar: str | None = None):
    """Yield ``(record, image, mask, probs)`` at original resolution for every record.

    Args:
        predictor: the model (Keras or TFLite); its input side sets the letterbox.
        dataset: the records to run.
        batch_size: images letterboxed and predicted together.
        bar: label of a progress bar over the batches (shown on a terminal only), or None.
    """
    size = predictor.size
    records = dataset.records
    starts = range(0, len(records), batch_size)
    for start in progress(starts, bar, unit="batch") if bar else starts:
        chunk = records[start:start + batch_size]
        pairs = [dataset.load_pair(r) for r in chunk]
        batch = np.stack([letterbox_image(img, size)[0] for img, _ in pairs])
        probs = predictor.predict_probs(batch)
        for rec, (img, mask), p in zip(chunk, pairs, probs):
            lb = letterbox_params(img.shape[0], img.shape[1], size)
            yield rec, img, mask, unletterbox_probs(p, lb)


def evaluate(predictor: Predictor, dataset: SegDataset, batch_size: int = 8,
             postprocess=None, surface: bool = True, bar: str | None = None) -> EvalResult:
    """Score ``predictor`` on every annotated record of ``dataset`` at original resolution.

    Args:
        predictor: the model (Keras or TFLite) behind the one Predictor interface.
        dataset: annotated records; its class list names the score columns.
        batch_size: images predicted together.
        postprocess: optional ``(class_map [H,W], probs [H,W,C]) -> class_map``; when given,
            the same predictions are scored with and without it (``result.post``).
        surface: also compute HD95 / ASSD.
        bar: label of a progress bar (shown on a terminal only), or None.

    Returns:
        One CSV-ready row per image and the :func:`lightseg_tf.objectives.metrics.summarise` summary.

    Raises:
        LightsegError: the model's output channels are not the dataset's classes.
    """
    predictor.check_classes(dataset.classes, f"the data in {dataset.root}")
    variants = {"raw": ([], [])} | ({"post": ([], [])} if postprocess is not None else {})
    units = set()
    thresholds = structure_thresholds(predictor.calibration)
    for rec, _, mask, probs in predict_dataset(predictor, dataset, batch_size, bar):
        raw = probs.argmax(-1).astype(np.int32)
        units.add("mm" if rec.pixel_size_mm else "px")
        margins = structure_margins(probs, raw, dataset.classes)
        for name, (rows, scores) in variants.items():
            pred = raw if name == "raw" else postprocess(raw, probs)
            s = score_image(pred, mask, dataset.num_classes, rec.pixel_size_mm, surface=surface)
            scores.append(s)
            row = {"id": rec.id, "subject": rec.subject, "pixel_size_mm": rec.pixel_size_mm}
            for m in (*OVERLAP, *(SURFACE if surface else ())):
                row.update({f"{m}_{c}": float(v) for c, v in zip(dataset.classes, s[m])})
            # The raw prediction's margin per drawn structure, and whether it is below its threshold.
            row.update({f"margin_{c}": margins.get(c, float("nan")) for c in dataset.classes[1:]})
            if thresholds:
                low = low_structures(margins, thresholds)
                row.update({f"low_confidence_{c}": c in low for c in dataset.classes[1:] if c in thresholds})
            rows.append(row)
    results = {}
    for name, (rows, scores) in variants.items():
        summary = summarise(scores, dataset.classes)
        if scores:  # how far the mean could move on other subjects like these
            fg_dice = np.array([s["dice"] for s in scores], float).reshape(len(scores), -1)[:, 1:]
            summary["mean_fg_dice_ci95"] = subject_bootstrap_ci(fg_dice, [r["subject"] for r in rows])
        summary["surface_distance_units"] = "/".join(sorted(units)) if surface else None
        summary["postprocessed"] = name == "post"
        if thresholds:
            summary["structure_confidence"] = structure_flag_summary(rows, thresholds)
        results[name] = EvalResult(rows, summary)
    result = results["raw"]
    result.post = results.get("post")
    return result


def structure_flag_summary(rows: list[dict], thresholds: dict[str, float]) -> dict:
    """Per structure with a calibrated margin threshold: how many images were flagged "low
    confidence (<structure>): do not use" and the structure's mean Dice on flagged vs unflagged
    images (does the flag catch the bad segmentations?).

    Args:
        rows: :func:`evaluate`'s per-image rows (``dice_<class>``, ``low_confidence_<class>``).
        thresholds: ``{class: margin threshold}``.

    Returns:
        ``{class: {"threshold", "n", "flagged", "share_flagged", "dice_flagged", "dice_unflagged"}}``
        over the images where the structure's Dice is defined (None for an empty side).
    """
    out = {}
    for c, t in thresholds.items():
        part = [r for r in rows if f"low_confidence_{c}" in r and np.isfinite(r[f"dice_{c}"])]
        flagged = [r[f"dice_{c}"] for r in part if r[f"low_confidence_{c}"]]
        unflagged = [r[f"dice_{c}"] for r in part if not r[f"low_confidence_{c}"]]
        out[c] = {"threshold": t, "n": len(part), "flagged": len(flagged),
                  "share_flagged": len(flagged) / len(part) if part else None,
                  "dice_flagged": float(np.mean(flagged)) if flagged else None,
                  "dice_unflagged": float(np.mean(unflagged)) if unflagged else None}
    return out


def format_structure_flags(summary: dict) -> str:
    """Text lines of :func:`structure_flag_summary`: flagged share and Dice flagged vs unflagged."""
    def fmt(v):
        return "n/a" if v is None else f"{v:.4f}"

    lines = []
    for c, s in summary.items():
        share = "n/a" if s["share_flagged"] is None else f"{s['share_flagged']:.1%}"
        lines.append(f"{c}: margin < {s['threshold']:.2f} flagged 'low confidence ({c}): do not use' on "
                     f"{s['flagged']} of {s['n']} images ({share}); Dice flagged {fmt(s['dice_flagged'])} "
                     f"vs unflagged {fmt(s['dice_unflagged'])}")
    return "\n".join(lines)


def write_results(result: EvalResult, out_dir: str | Path, stem: str = "eval") -> tuple[Path, Path]:
    """Write ``{stem}_per_image.csv`` and ``{stem}_summary.json`` atomically."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / f"{stem}_per_image.csv", out_dir / f"{stem}_summary.json"
    write_csv_atomic(csv_path, result.rows)
    write_json_atomic(json_path, result.summary)
    return csv_path, json_path


def by_id_block(rows: list[dict], classes, block: int) -> list[dict]:
    """Mean Dice per class over images grouped in blocks of ``block`` consecutive numeric ids.

    Recordings drift with time (PSFHS: later ids, later recordings, lower Dice; issue 19), which a
    mean over the whole test side hides.

    Args:
        rows: :func:`evaluate`'s per-image rows (``id`` and ``dice_<class>``).
        classes: class names, background first.
        block: ids per block (``int(id) // block`` names the block).

    Returns:
        One ``{"ids": [first, last], "n", "dice": {class: mean}, "mean_fg_dice"}`` per block, in id
        order; a class absent from every image of a block has Dice None there.

    Raises:
        LightsegError: ``block`` < 1 or an id is not a number.
    """
    if block < 1:
        raise LightsegError(f"--blocks {block}: give the number of ids per block (>= 1)")
    groups: dict[int, list[dict]] = {}
    for row in rows:
        if not str(row["id"]).isdigit():
            raise LightsegError(f"--blocks needs numeric image ids (PSFHS names its images NNNNN.png); "
                                f"image {row['id']!r} is not one")
        groups.setdefault(int(row["id"]) // block, []).append(row)
    out = []
    for key in sorted(groups):
        part = groups[key]
        with np.errstate(all="ignore"):
            dice = {c: np.nanmean([r[f"dice_{c}"] for r in part]) if any(np.isfinite(r[f"dice_{c}"]) for r in part)
                    else None for c in classes}
        fg = [dice[c] for c in classes[1:] if dice[c] is not None]
        out.append({"ids": [key * block, key * block + block - 1], "n": len(part),
                    "dice": {c: None if v is None else float(v) for c, v in dice.items()},
                    "mean_fg_dice": float(np.mean(fg)) if fg else None})
    return out


def format_blocks(blocks: list[dict]) -> str:
    """A text table of :func:`by_id_block`: one row per id block, Dice per foreground class."""
    classes = list(blocks[0]["dice"])[1:] if blocks else []
    lines = [f"{'ids':<14}{'n':>5}" + "".join(f"{c[:12]:>14}" for c in classes) + f"{'mean (fg)':>12}"]
    for b in blocks:
        cells = "".join(f"{v:14.4f}" if v is not None else f"{'n/a':>14}" for v in (b["dice"][c] for c in classes))
        mean = f"{b['mean_fg_dice']:12.4f}" if b["mean_fg_dice"] is not None else f"{'n/a':>12}"
        lines.append(f"{b['ids'][0]:05d}-{b['ids'][1]:05d}  {b['n']:>5}{cells}{mean}")
    return "\n".join(lines)


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
    ci = summary.get("mean_fg_dice_ci95")
    if ci:
        lines.append(f"mean (fg) Dice 95 % interval over subjects (bootstrap): {ci[0]:.4f}-{ci[1]:.4f}")
    return "\n".join(lines)


def evaluate_and_write(predictor: Predictor, dataset: SegDataset, out: str | Path, split: str,
                       tta: str | None = None, tflite: str | Path | None = None, postprocess: bool = False,
                       blocks: int | None = None):
    """Score ``dataset`` (one split) and write ``eval_<split>[_<tta>][_<tflite stem>]`` CSV/JSON into ``out``.

    With ``postprocess``, the post-processed scores go to the ``_postprocessed`` pair too; with
    ``blocks``, each summary holds ``by_id_block`` (:func:`by_id_block`).

    Returns:
        ``(result, csv path, json path)``.
    """
    post = None
    if postprocess:
        from lightseg_tf.anatomy.postprocess import make_postprocess

        post = make_postprocess(dataset.classes)
    stem = f"eval_{split}" + (f"_{tta}" if tta_mode(tta) != "none" else "") + (
        f"_{Path(tflite).stem}" if tflite else "")
    result = evaluate(predictor, dataset, postprocess=post, bar=f"evaluate {predictor.name} on {split}")
    if blocks:
        for r in (result, result.post):
            if r is not None:
                r.summary["by_id_block"] = by_id_block(r.rows, dataset.classes, blocks)
    csv_path, json_path = write_results(result, out, stem)
    if result.post is not None:
        write_results(result.post, out, stem + "_postprocessed")
    return result, csv_path, json_path


def evaluate_run(run: str | Path, split: str = "test", tflite: str | Path | None = None, postprocess: bool = False,
                 out: str | Path | None = None, tta: str | None = None) -> EvalResult:
    """Score a run's best Keras model (or ``tflite``) on one side of the run's own split.

    Writes ``eval_<split>[_<tta>][_<tflite stem>]_{per_image.csv,summary.json}`` (and the
    ``_postprocessed`` pair) into ``out`` (default: the run directory).
    """
    rd = open_run(run)
    predictor = load_predictor(tflite if tflite is not None else rd.run_dir, tta)
    return evaluate_and_write(predictor, rd.part(split), Path(out) if out else rd.run_dir, split, tta,
                              tflite, postprocess)[0]
