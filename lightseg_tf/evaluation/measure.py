"""``lightseg measure``: biometry from a model's prediction or from a mask, with annotated PNGs."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lightseg_tf.anatomy.biometry import check_pixel_size, measure_mask
from lightseg_tf.anatomy.confidence import LOW_CONFIDENCE, structure_flag
from lightseg_tf.anatomy.gestational_age import format_ga
from lightseg_tf.core.io import (read_class_mask, read_csv, read_gray, read_pil, staged_dir, write_csv_atomic,
                                 write_json_atomic)
from lightseg_tf.core.palette import overlay
from lightseg_tf.data.phantom import CLASSES as PHANTOM_CLASSES
from lightseg_tf.data.readers.hc18 import filled_head_mask
from lightseg_tf.deploy.runtime import UNKNOWN_TRAINING_DOMAIN, load_predictor, training_domain_text
from lightseg_tf.evaluation.confidence import add_confidence, predict_with_confidence
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.predictor import Predictor
from lightseg_tf.objectives.metrics import subject_bootstrap_ci


def read_pixel_sizes(path: str | Path) -> dict[str, float]:
    """``{file name: mm per pixel}`` from the first two columns of a CSV (header skipped), e.g. HC18's.

    Every value must be finite and > 0 (a LightsegError names the line otherwise).
    """
    out = {}
    for line, row in enumerate(read_csv(path, "pixel-size CSV")[1:], 2):
        try:
            name, value = Path(row[0]).name, float(row[1])
        except (IndexError, ValueError):
            raise LightsegError(f"{path}:{line}: expected 'file name, mm per pixel', got {row}") from None
        out[name] = check_pixel_size(value, f"{path}:{line}")
    return out


def mask_classes(mask_path: str | Path) -> tuple[str, ...]:
    """Class names a mask file implies: 0/1/255 masks are ``background, head``, others the phantom's."""
    values = np.unique(np.asarray(read_pil(mask_path).convert("L")))
    return ("background", "head") if set(values.tolist()) <= {0, 1, 255} else PHANTOM_CLASSES


FIELDS = ("image", "units", "hc", "bpd", "ofd", "cephalic_index", "csp_width", "lv_width", "lv_flag",
          "ga_weeks_hadlock", "ga_weeks_intergrowth", "ga_weeks", "hc_z", "hc_centile", "bpd_z", "bpd_centile",
          "confidence", "confidence_threshold", "confidence_status", "confidence_structures",
          "flags", "notes", "training_domain")


def report_lines(m: dict, notes: bool = True) -> list[str]:
    """One image's measurements as printed (console and annotated PNG), at their reported precision.

    Lengths to 0.1 (mm or px), GA to 0.1 week, centiles to 0.1, z-scores to 0.01: the values the
    flags were decided on. Flags follow as ``! ...``; ``notes`` (why a value is missing) as ``(...)``.
    """
    if "hc" not in m:
        low = {LOW_CONFIDENCE, *map(structure_flag, m.get("confidence_low_structures", []))}
        return (["; ".join(f for f in m["flags"] if f not in low) or "no head found"] + _confidence(m)
                + [f"! {f}" for f in m["flags"] if f in low]
                + [f"({n})" for n in m.get("notes", []) if notes] + _domain(m))
    u = m["units"]
    lines = [f"HC {m['hc']:.1f} {u}, BPD {m['bpd']:.1f} {u}, OFD {m['ofd']:.1f} {u}, CI {m['cephalic_index']:.1f}"]
    widths = [f"{name} {m[key]:.1f} {u}" for key, name in (("csp_width", "CSP"), ("lv_width", "LV"))
              if m.get(key) is not None]
    if widths:
        lines.append(", ".join(widths) + (f" (LV {m['lv_flag']})" if m.get("lv_flag") else ""))
    ga = [f"{m[key]:.1f} weeks ({name})" for key, name in (("ga_weeks_hadlock", "Hadlock 1984"),
                                                           ("ga_weeks_intergrowth", "INTERGROWTH-21st"))
          if m.get(key) is not None]
    if ga:
        lines.append("GA from HC: " + ", ".join(ga))
    if m.get("ga_weeks") is not None:
        sizes = [f"{k.upper()} centile {m[k + '_centile']:.1f} (z {m[k + '_z']:+.2f})" for k in ("hc", "bpd")
                 if m.get(k + "_centile") is not None]
        lines.append(f"at GA {format_ga(m['ga_weeks'])} weeks: " + (", ".join(sizes) or "no centiles"))
    return (lines + _confidence(m) + [f"! {f}" for f in m["flags"]] + [f"({n})" for n in m.get("notes", []) if notes]
            + _domain(m))


def _confidence(m: dict) -> list[str]:
    """The model's confidence in this measurement and the threshold it is judged against."""
    if m.get("confidence") is None:
        return []
    if m.get("confidence_threshold") is None:
        return [f"confidence {m['confidence']:.2f} (uncalibrated: no threshold known)"]
    return [f"confidence {m['confidence']:.2f} (threshold {m['confidence_threshold']:.2f})"]


def _domain(m: dict) -> list[str]:
    """The model card's training domain, shown next to every measurement made with a carded model."""
    if "training_domain" not in m:
        return []
    return [f"model trained on: {m['training_domain'] or UNKNOWN_TRAINING_DOMAIN}"]


def annotate(image: np.ndarray, mask: np.ndarray, m: dict, num_classes: int) -> Image.Image:
    """Overlay, fitted ellipse, its axes and the values, as an RGB image."""
    im = Image.fromarray(overlay(image, mask, num_classes=num_classes))
    draw = ImageDraw.Draw(im)
    e = m.get("ellipse_px")
    if e:
        t = math.radians(e["angle_deg"])
        pts = [(e["cx"] + e["a"] * math.cos(s) * math.cos(t) - e["b"] * math.sin(s) * math.sin(t),
                e["cy"] + e["a"] * math.cos(s) * math.sin(t) + e["b"] * math.sin(s) * math.cos(t))
               for s in np.linspace(0, 2 * math.pi, 180)]
        draw.line(pts + [pts[0]], fill=(255, 255, 0), width=2)
        for length, ang in ((e["a"], t), (e["b"], t + math.pi / 2)):
            dx, dy = length * math.cos(ang), length * math.sin(ang)
            draw.line([(e["cx"] - dx, e["cy"] - dy), (e["cx"] + dx, e["cy"] + dy)], fill=(0, 255, 255), width=1)
    draw.multiline_text((6, 6), "\n".join(report_lines(m, notes=False)), fill=(255, 255, 255))
    return im


def measure_files(images: list[str], classes, *, model: Predictor | None = None, masks: list[str] | None = None,
                  pixel_size_mm: float | None = None, out_dir: str | Path | None = None,
                  pixel_sizes: dict[str, float] | None = None, ga_weeks: float | None = None,
                  calibration: dict | None = None) -> list[dict]:
    """Measure each image (from ``model``'s prediction or the matching mask); write PNGs + CSV.

    Args:
        images: image paths.
        classes: class names (index = class id) the masks / model use.
        model: a Keras or TFLite :class:`Predictor`; used when ``masks`` is None.
        masks: one mask per image instead of a model.
        pixel_size_mm: mm per pixel for all images (None: measure in pixels).
        out_dir: where ``<stem>_measure.png`` and ``measurements.csv`` go (None: nothing written).
        pixel_sizes: file name -> mm, overriding ``pixel_size_mm`` per image.
        ga_weeks: the GA known from dating, for HC / BPD centiles and z-scores (None: GA from HC only).
        calibration: the confidence threshold to judge by (``{threshold, ...}``); None: the
            model's own (its card's or run's, :attr:`Predictor.calibration`).

    A model's measurement gets its confidence (:func:`~lightseg_tf.evaluation.confidence.add_confidence`):
    ``confidence`` in [0, 1], ``confidence_threshold``, ``confidence_status`` (low / ok /
    uncalibrated), per-structure margins; a low score is flagged "low confidence: do not use".
    A .tflite model segments as the devices do (:meth:`TFLitePredictor.predict_mask`), so the
    HC here is the browser's and the Android app's; its card's training domain goes into each
    row (``training_domain``) and onto the PNG.

    Returns:
        One :func:`~lightseg_tf.anatomy.biometry.measure_mask` dict per image, plus ``image``
        (and ``training_domain`` for a carded model).
    """
    if masks is not None and len(masks) != len(images):
        raise LightsegError(f"{len(masks)} masks for {len(images)} images; give one mask per image")
    if model is not None:
        model.check_classes(classes, "the class list")
    card = getattr(model, "card", None) if masks is None else None
    domain = training_domain_text(card) if card else None
    calibration = calibration or (model.calibration if model is not None else None)
    rows = []
    with staged_dir(out_dir) if out_dir is not None else contextlib.nullcontext() as stage:
        for k, path in enumerate(images):
            image = read_gray(path)
            if masks is not None:
                # A user's mask is measured as drawn (no HC18 outline trim).
                mask = (filled_head_mask(masks[k], trim_px=0) if len(classes) == 2
                        else read_class_mask(masks[k], len(classes)))
                if mask.shape != image.shape[:2]:
                    raise LightsegError(f"{masks[k]}: mask is {mask.shape[1]}x{mask.shape[0]} but {path} is "
                                        f"{image.shape[1]}x{image.shape[0]}")
                conf = None
            else:
                mask, conf = predict_with_confidence(model, image, classes)
            px = (pixel_sizes or {}).get(Path(path).name, pixel_size_mm)
            m = measure_mask(mask, classes, px, ga_weeks)
            if conf is not None:
                add_confidence(m, conf, calibration)
            m["image"] = str(path)
            if card:
                m["training_domain"] = domain
            rows.append(m)
            if stage is not None:
                annotate(image, mask, m, len(classes)).save(stage / f"{Path(path).stem}_measure.png", format="PNG")
        if stage is not None:
            joined = ({**r, "flags": "; ".join(r["flags"]), "notes": "; ".join(r.get("notes", [])),
                       "confidence_structures": "; ".join(f"{k} {v:.2f}" for k, v in
                                                          r.get("confidence_structures", {}).items())} for r in rows)
            write_csv_atomic(stage / "measurements.csv", joined, FIELDS, ignore_extra=True)
    return rows


def measure_paths(images: list[str], *, model: str | None = None, masks: list[str] | None = None,
                  classes=None, pixel_size_mm: float | None = None, pixel_sizes_csv: str | None = None,
                  out_dir: str | Path | None = None, ga_weeks: float | None = None) -> list[dict]:
    """``lightseg measure``: check every input, then :func:`measure_files`.

    Args:
        images: image paths.
        model: a run directory, .keras / .h5 model or .tflite (card beside it); or ``masks``.
        masks: one mask per image instead of a model.
        classes: class names (default: the model's, or what the first mask implies).
        pixel_size_mm: mm per pixel for all images (default: a single DICOM image's header).
        pixel_sizes_csv: a CSV of file name, mm per pixel (overrides ``pixel_size_mm`` per image).
        out_dir: where the annotated PNGs and ``measurements.csv`` go; nothing is written there
            unless every image is measured.
        ga_weeks: the GA known from dating, for HC / BPD centiles (None: GA from HC only).

    Raises:
        LightsegError: a missing file, a pixel size that is not finite and > 0, classes that are
            not the model's, an unreadable image, mask or CSV.
    """
    for path in [*images, *(masks or [])]:
        if not Path(path).is_file():
            raise LightsegError(f"{path}: no such file; check the path")
    if pixel_size_mm is not None:
        pixel_size_mm = check_pixel_size(pixel_size_mm, "--pixel-size")
    elif len(images) == 1 and images[0].lower().endswith((".dcm", ".dicom")):
        from lightseg_tf.data.readers import read_dataset

        header = read_dataset(images[0], "dicom").records[0].pixel_size_mm
        pixel_size_mm = None if header is None else check_pixel_size(header, f"{images[0]} (DICOM header)")
    per_image = read_pixel_sizes(pixel_sizes_csv) if pixel_sizes_csv else None
    predictor = None
    if masks is None:
        predictor = load_predictor(model)
    classes = tuple(classes) if classes else (mask_classes(masks[0]) if masks else predictor.classes)
    if classes is None:
        raise LightsegError(f"{model}: the model has no class names; pass --classes background Brain CSP LV")
    return measure_files(images, classes, model=predictor, masks=masks, pixel_size_mm=pixel_size_mm,
                         out_dir=out_dir, pixel_sizes=per_image, ga_weeks=ga_weeks)


def hc_errors(predictor: Predictor, dataset, out_dir: str | Path | None = None, stem: str = "hc",
              calibration: dict | None = None) -> dict:
    """Head-circumference error of ``predictor`` against each record's reference HC, with its sign.

    The error is predicted minus reference, in mm (each record's own pixel size), so a positive
    mean is a model that draws heads too large. Records without a reference HC or pixel size are
    skipped; an image where no head is found counts in ``no_head_found``. Each image also gets
    its confidence (as ``lightseg measure`` gives it) and, against the threshold, its status; the
    summary's ``confidence`` splits the errors into flagged ("low confidence: do not use") and
    unflagged images.

    Args:
        predictor: the model (Keras or TFLite) measured at each image's original resolution.
        dataset: records with ``hc_mm`` and ``pixel_size_mm`` (HC18).
        out_dir: when given, ``<stem>_per_image.csv`` and ``<stem>_summary.json`` are written there.
        calibration: the confidence threshold to judge by; None: the model's own
            (:attr:`Predictor.calibration`), uncalibrated when it has none.

    Returns:
        ``{"n", "no_head_found", "mean_abs", "mean_abs_ci95" (a 95 % interval of the mean absolute
        error, bootstrap over subjects), "median_abs", "mean_signed", "by_hc_quartile": [{"hc_range",
        "n", "mean_signed", "mean_abs", "median_abs", "mean_rel_signed_pct"}], "confidence": {"threshold",
        "share_flagged", "flagged": {n, ..., "no_head_found"}, "unflagged": {...}}, "rows": [...]}``.
    """
    calibration = calibration or predictor.calibration
    classes = predictor.classes or dataset.classes  # the model's own (a phantom model's Brain, CSP, LV on HC18)
    rows = []
    for rec in dataset.records:
        if not rec.hc_mm or not rec.pixel_size_mm:
            continue
        mask, conf = predict_with_confidence(predictor, dataset.load_image(rec), classes)
        m = add_confidence(measure_mask(mask, classes, rec.pixel_size_mm), conf, calibration)
        hc = m.get("hc")
        rows.append({"id": rec.id, "subject": rec.subject, "reference_hc_mm": rec.hc_mm, "hc_mm": hc,
                     "error_mm": None if hc is None else hc - rec.hc_mm, "confidence": m["confidence"],
                     "confidence_status": m["confidence_status"], "flags": "; ".join(m["flags"])})
    if not rows:
        raise LightsegError(f"{dataset.root}: no record has a reference HC and a pixel size; HC errors need both")
    found = [r for r in rows if r["error_mm"] is not None]

    def stats(part: list[dict]) -> dict:
        e = np.array([r["error_mm"] for r in part], float)
        ref = np.array([r["reference_hc_mm"] for r in part], float)
        if not len(e):
            return {"n": 0, "mean_signed": None, "mean_abs": None, "median_abs": None, "mean_rel_signed_pct": None}
        return {"n": len(e), "mean_signed": float(e.mean()), "mean_abs": float(np.abs(e).mean()),
                "median_abs": float(np.median(np.abs(e))), "mean_rel_signed_pct": float((e / ref).mean() * 100)}

    summary = {**stats(found), "no_head_found": len(rows) - len(found), "by_hc_quartile": []}
    summary["mean_abs_ci95"] = subject_bootstrap_ci([abs(r["error_mm"]) for r in found],
                                                    [r["subject"] for r in found])
    for lo, hi, part in hc_quartiles(found):
        summary["by_hc_quartile"].append({"hc_range": [lo, hi], **stats(part)})
    flagged = [r for r in rows if r["confidence_status"] == "low"]
    unflagged = [r for r in rows if r["confidence_status"] != "low"]
    summary["confidence"] = {"threshold": (calibration or {}).get("threshold"),
                             "share_flagged": len(flagged) / len(rows)}
    for side, part in (("flagged", flagged), ("unflagged", unflagged)):
        summary["confidence"][side] = {**stats([r for r in part if r["error_mm"] is not None]),
                                       "no_head_found": sum(r["error_mm"] is None for r in part)}
    if out_dir is not None:
        write_csv_atomic(Path(out_dir) / f"{stem}_per_image.csv", rows)
        write_json_atomic(Path(out_dir) / f"{stem}_summary.json", summary)
    return {**summary, "rows": rows}


def hc_quartiles(rows: list[dict]) -> list[tuple[float, float, list[dict]]]:
    """``rows`` (dicts with ``reference_hc_mm``) split by quartile of the reference HC, as every HC
    table reports them: ``[(low mm, high mm, rows in [low, high), the last also holding high)]``;
    empty for no rows."""
    if not rows:
        return []
    edges = np.quantile([r["reference_hc_mm"] for r in rows], [0, 0.25, 0.5, 0.75, 1.0])
    return [(float(lo), float(hi), [r for r in rows if lo <= r["reference_hc_mm"] and (r["reference_hc_mm"] < hi
                                                                                    or k == 3)])
            for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:]))]


def format_hc_errors(summary: dict) -> str:
    """The HC error table: all images, then by quartile of the reference HC (signed = predicted - reference)."""
    def line(label, s):
        if not s["n"]:
            return f"{label:<22}{0:>5}"
        return (f"{label:<22}{s['n']:>5}{s['mean_signed']:>+10.2f}{s['mean_abs']:>10.2f}{s['median_abs']:>10.2f}"
                f"{s['mean_rel_signed_pct']:>+9.2f}%")

    out = [f"{'HC error (mm)':<22}{'n':>5}{'signed':>10}{'abs mean':>10}{'abs med':>10}{'rel':>10}",
           line("all", summary)]
    out += [line(f"HC {q['hc_range'][0]:.0f}-{q['hc_range'][1]:.0f} mm", q) for q in summary["by_hc_quartile"]]
    conf = summary.get("confidence")
    if conf and conf["threshold"] is not None:
        out += [line(f"conf < {conf['threshold']:.2f} (flagged)", conf["flagged"]),
                line(f"conf >= {conf['threshold']:.2f}", conf["unflagged"]),
                f"low confidence, do not use: {conf['share_flagged']:.1%} of the images"]
    elif conf:
        out.append("confidence uncalibrated (no threshold in the model card or run: lightseg calibrate RUN); "
                   "scores per image in the CSV")
    if summary.get("mean_abs_ci95"):
        lo, hi = summary["mean_abs_ci95"]
        out.append(f"abs mean 95 % interval over subjects (bootstrap): {lo:.2f}-{hi:.2f} mm")
    if summary["no_head_found"]:
        out.append(f"no head found: {summary['no_head_found']} image(s)")
    return "\n".join(out)
