"""The confidence of a model's head measurement on one image, and its "do not use" threshold
calibrated on a run's VAL split (``lightseg calibrate RUN`` writes ``confidence.json``, which
``lightseg export`` copies into the model card).

The score itself is :func:`lightseg_tf.anatomy.confidence.head_confidence`; here the model
gives it its probabilities. The class map measured is the one :meth:`Predictor.predict_mask`
gives (for a .tflite the devices' path); the probabilities are only read for the score.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from lightseg_tf.anatomy.biometry import HEAD_CLASS_NAMES, measure_mask
from lightseg_tf.anatomy.confidence import (LOW_CONFIDENCE, SCORE_FORMULA, SCORE_NAME, STRUCTURE_DICE_MIN,
                                            STRUCTURE_RULE, THRESHOLD_RULE, band_width_px, choose_threshold,
                                            head_confidence, low_structures, structure_flag, structure_thresholds,
                                            verdict)
from lightseg_tf.anatomy.precision import round_half_up
from lightseg_tf.core.io import write_json_atomic
from lightseg_tf.core.log import LOG
from lightseg_tf.deploy.runtime import TFLitePredictor, load_predictor
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.predictor import Predictor
from lightseg_tf.models.saving import model_path
from lightseg_tf.models.tta import tta_mode
from lightseg_tf.objectives.metrics import dice_iou_per_class
from lightseg_tf.runs import CONFIDENCE_FILE, open_run


def predict_with_confidence(predictor: Predictor, image: np.ndarray, classes=None) -> tuple[np.ndarray, dict]:
    """The class map to measure (``[H, W]`` at the original size) and its head confidence.

    A Keras model's class map is the argmax of the same probabilities (one forward pass). A
    .tflite gives both from one inference on the devices' uint8 letterbox
    (:meth:`~lightseg_tf.deploy.runtime.TFLitePredictor.predict_device`: the graph's class map,
    nearest un-letterboxed, and its probabilities, bilinear), which is what the browser and
    Android demos feed their ports of the score (``headConfidence`` in ``tflite/web/core.js``,
    ``Confidence.head`` in the Android core; the golden vectors check all three agree). Another
    model with its own :meth:`~Predictor.predict_mask` keeps it, and its probabilities feed only
    the score. The boundary band is two model pixels wide at the original size (``2 max(H, W) / S``).
    """
    if isinstance(predictor, TFLitePredictor):
        mask, probs = predictor.predict_device(image)
    else:
        probs = predictor.predict_image(image)
        if type(predictor).predict_mask is Predictor.predict_mask:
            mask = probs.argmax(-1).astype(np.int32)
        else:
            mask = predictor.predict_mask(image)
    classes = classes or predictor.classes
    return mask, head_confidence(probs, mask, classes, band_px=band_width_px(*image.shape[:2], predictor.size))


def confidence_fields(conf: dict, calibration: dict | None) -> dict:
    """The fields a measurement row gets: ``confidence`` (0.01), ``confidence_threshold``,
    ``confidence_status`` (low / ok / uncalibrated), per-structure margins, the structures below
    their own thresholds (``confidence_low_structures``) and the components."""
    threshold = (calibration or {}).get("threshold")
    return {"confidence": round_half_up(conf["score"], 2), "confidence_threshold": threshold,
            "confidence_status": verdict(conf["score"], threshold),
            "confidence_structures": {k: round_half_up(v, 2) for k, v in conf["structures"].items()},
            "confidence_low_structures": low_structures(conf["structures"], structure_thresholds(calibration)),
            "confidence_components": {k: round_half_up(v, 3) for k, v in conf["components"].items()}}


def add_confidence(m: dict, conf: dict, calibration: dict | None) -> dict:
    """``m`` (a :func:`measure_mask` dict) with :func:`confidence_fields`; a low score puts
    "low confidence: do not use" first among its flags, each structure below its own threshold
    "low confidence (<structure>): do not use" after it, an unknown threshold a note."""
    m.update(confidence_fields(conf, calibration))
    for name in reversed(m["confidence_low_structures"]):
        m["flags"].insert(0, structure_flag(name))
    if m["confidence_status"] == "low":
        m["flags"].insert(0, LOW_CONFIDENCE)
    elif m["confidence_status"] == "uncalibrated":
        m.setdefault("notes", []).append("confidence uncalibrated: no threshold in the model card or run "
                                         "(lightseg calibrate RUN)")
    return m


def head_dice(pred: np.ndarray, pred_classes, truth: np.ndarray, truth_classes) -> float | None:
    """Dice of the head (union of the head-like classes) of two class maps; None when both are empty."""
    def head(mask, classes):
        return np.isin(mask, [k for k, n in enumerate(classes) if k > 0 and n.lower() in HEAD_CLASS_NAMES])

    p, t = head(pred, pred_classes), head(truth, truth_classes)
    total = int(p.sum() + t.sum())
    return None if total == 0 else 2.0 * float((p & t).sum()) / total


def _judge_on_val(scores, bad, good_quantile: float) -> tuple[float, dict]:
    """The threshold :func:`choose_threshold` sets on VAL ``scores`` (``bad``: one flag per score),
    and what it does there: ``{n, bad, flagged, flagged_bad, unflagged_bad, score_median_good,
    score_median_bad}``."""
    scores, bad = np.asarray(scores, np.float64), np.asarray(bad, bool)
    threshold = choose_threshold(scores, bad, good_quantile)
    flagged = np.array([verdict(s, threshold) == "low" for s in scores])
    return threshold, {
        "n": len(scores), "bad": int(bad.sum()), "flagged": int(flagged.sum()),
        "flagged_bad": int((flagged & bad).sum()), "unflagged_bad": int((~flagged & bad).sum()),
        "score_median_good": float(np.median(scores[~bad])) if (~bad).any() else None,
        "score_median_bad": float(np.median(scores[bad])) if bad.any() else None}


def calibrate_confidence(predictor: Predictor, val_dataset, out_dir: str | Path | None = None, *,
                         model: str | None = None, tta: str | None = None, hc_tolerance: float = 0.05,
                         dice_min: float = 0.9, good_quantile: float = 0.02,
                         structure_dice_min: float = STRUCTURE_DICE_MIN) -> dict:
    """Choose the "low confidence: do not use" threshold on VAL images and write ``confidence.json``.

    Each VAL image is measured as ``lightseg measure`` measures it (:func:`predict_with_confidence`)
    and is BAD when its head Dice against the mask is below ``dice_min`` (a head missed or drawn
    where there is none), its HC is off by more than ``hc_tolerance`` (relative; where the record
    has a reference HC and pixel size) or no head is found where the record has a reference HC. The threshold is :func:`~lightseg_tf.anatomy.confidence.choose_threshold`:
    the larger of (1) the highest score cut below which bad images are more than half (they
    dominate) and (2) the ``good_quantile`` quantile of the good images' scores (the model is
    outside what VAL showed it does well).

    Every foreground structure gets a threshold of its own on its probability margin
    (:func:`~lightseg_tf.anatomy.confidence.structure_margins`), by the same rule over the VAL
    images that hold it (predicted or annotated), bad below ``structure_dice_min`` Dice of that
    structure: a small structure can fail on an image whose head is fine.

    Args:
        predictor: the model, as it will be used to measure.
        val_dataset: the run's VAL split (records with masks; HC18 also gives reference HCs).
        out_dir: where ``confidence.json`` goes (None: not written).
        model: the model file calibrated (``best.keras``), recorded in ``calibrated_on``.
        tta: the test-time augmentation ``predictor`` runs with, recorded in ``calibrated_on``
            (a card takes the threshold only for the same TTA).

    Returns:
        ``{"score", "formula", "threshold", "rule", "calibrated_on", "val": {n, bad, flagged,
        flagged_bad, ...}, "structures": {class: {"threshold", "val": {the same counts}}},
        "rows": [per image]}`` (``rows`` is not written).
    """
    classes = predictor.classes or val_dataset.classes
    rows, per_structure = [], {name: [] for name in classes[1:]}
    for rec in val_dataset.records:
        image, truth = val_dataset.load_pair(rec)
        mask, conf = predict_with_confidence(predictor, image, classes)
        dice_k = dice_iou_per_class(mask, truth, len(classes))[0]
        for k, name in enumerate(classes[1:], start=1):
            if np.isfinite(dice_k[k]):  # the structure is predicted or annotated on this image
                per_structure[name].append((conf["structures"].get(name, 0.0), dice_k[k] < structure_dice_min))
        hc = measure_mask(mask, classes, rec.pixel_size_mm).get("hc")
        rel = (hc - rec.hc_mm) / rec.hc_mm if hc is not None and rec.hc_mm and rec.pixel_size_mm else None
        dice = head_dice(mask, classes, truth, val_dataset.classes)
        bad = ((dice is not None and dice < dice_min) or (rel is not None and abs(rel) > hc_tolerance)
               or (hc is None and bool(rec.hc_mm)))  # a head with a reference HC that was not found
        rows.append({"id": rec.id, "score": conf["score"], "hc_rel_error": rel, "head_dice": dice, "bad": bad})
    if not rows:
        raise LightsegError(f"{val_dataset.root}: the VAL split is empty; nothing to calibrate the confidence on")
    threshold, val = _judge_on_val([r["score"] for r in rows], [r["bad"] for r in rows], good_quantile)
    result = {
        "score": SCORE_NAME, "formula": SCORE_FORMULA, "threshold": threshold,
        "rule": f"{THRESHOLD_RULE}; hc_tolerance {hc_tolerance}, dice_min {dice_min}, good_quantile {good_quantile}",
        "calibrated_on": {"split": "val", "images": len(rows), "dataset": str(val_dataset.root),
                          "format": val_dataset.format, "model": model or predictor.name, "tta": tta_mode(tta),
                          "date": _dt.date.today().isoformat()},
        "val": val,
    }
    result["structures"] = {}
    for name, pairs in per_structure.items():
        if pairs:
            t, s_val = _judge_on_val([m for m, _ in pairs], [b for _, b in pairs], good_quantile)
            result["structures"][name] = {"threshold": t, "val": s_val}
    result["structure_rule"] = f"{STRUCTURE_RULE}; structure_dice_min {structure_dice_min}"
    if out_dir is not None:
        write_json_atomic(Path(out_dir) / CONFIDENCE_FILE, result)
    return {**result, "rows": rows}


def calibrate_run(run: str | Path, model_file: str | None = None, tta: str | None = None, **options) -> dict:
    """:func:`calibrate_confidence` of a training run's model (``best.keras`` or ``model_file``
    inside it, with test-time augmentation ``tta``) on the run's own VAL split; writes
    ``RUN/confidence.json``."""
    rd = open_run(run)
    path = rd.run_dir / model_file if model_file else rd.run_dir
    predictor = load_predictor(path, tta)
    predictor.classes = predictor.classes or tuple(rd.dataset.classes)
    result = calibrate_confidence(predictor, rd.part("val"), rd.run_dir, model=model_path(path).name, tta=tta,
                                  **options)
    LOG.info("confidence threshold %.2f on %d VAL images (%d bad, %d flagged)", result["threshold"],
             result["val"]["n"], result["val"]["bad"], result["val"]["flagged"])
    return result
