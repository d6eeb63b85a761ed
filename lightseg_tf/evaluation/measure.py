"""``lightseg measure``: biometry from a model's prediction or from a mask, with annotated PNGs."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lightseg_tf.anatomy.biometry import check_pixel_size, measure_mask
from lightseg_tf.core.io import read_class_mask, read_csv, read_gray, read_pil, staged_dir, write_csv_atomic
from lightseg_tf.core.palette import overlay
from lightseg_tf.data.phantom import CLASSES as PHANTOM_CLASSES
from lightseg_tf.data.readers.hc18 import filled_head_mask
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.predictor import Predictor


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


FIELDS = ("image", "units", "hc", "bpd", "ofd", "cephalic_index", "csp_width", "lv_width", "lv_flag", "flags")


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
    u = m["units"]
    text = [f"HC {m['hc']:.1f} {u}  BPD {m['bpd']:.1f}  OFD {m['ofd']:.1f}  CI {m['cephalic_index']:.0f}"
            if "hc" in m else "not measured"]
    if m.get("csp_width") is not None:
        text.append(f"CSP {m['csp_width']:.1f} {u}")
    if m.get("lv_width") is not None:
        text.append(f"LV {m['lv_width']:.1f} {u}" + (f" ({m['lv_flag']})" if m.get("lv_flag") else ""))
    text += [f"! {f}" for f in m["flags"]]
    draw.multiline_text((6, 6), "\n".join(text), fill=(255, 255, 255))
    return im


def measure_files(images: list[str], classes, *, model: Predictor | None = None, masks: list[str] | None = None,
                  pixel_size_mm: float | None = None, out_dir: str | Path | None = None,
                  pixel_sizes: dict[str, float] | None = None) -> list[dict]:
    """Measure each image (from ``model``'s prediction or the matching mask); write PNGs + CSV.

    Args:
        images: image paths.
        classes: class names (index = class id) the masks / model use.
        model: a Keras or TFLite :class:`Predictor`; used when ``masks`` is None.
        masks: one mask per image instead of a model.
        pixel_size_mm: mm per pixel for all images (None: measure in pixels).
        out_dir: where ``<stem>_measure.png`` and ``measurements.csv`` go (None: nothing written).
        pixel_sizes: file name -> mm, overriding ``pixel_size_mm`` per image.

    Returns:
        One :func:`~lightseg_tf.anatomy.biometry.measure_mask` dict per image, plus ``image``.
    """
    if masks is not None and len(masks) != len(images):
        raise LightsegError(f"{len(masks)} masks for {len(images)} images; give one mask per image")
    if model is not None:
        model.check_classes(classes, "the class list")
    rows = []
    with staged_dir(out_dir) if out_dir is not None else contextlib.nullcontext() as stage:
        for k, path in enumerate(images):
            image = read_gray(path)
            if masks is not None:
                mask = filled_head_mask(masks[k]) if len(classes) == 2 else read_class_mask(masks[k], len(classes))
                if mask.shape != image.shape[:2]:
                    raise LightsegError(f"{masks[k]}: mask is {mask.shape[1]}x{mask.shape[0]} but {path} is "
                                        f"{image.shape[1]}x{image.shape[0]}")
            else:
                mask = model.predict_mask(image)
            px = (pixel_sizes or {}).get(Path(path).name, pixel_size_mm)
            m = measure_mask(mask, classes, px)
            m["image"] = str(path)
            rows.append(m)
            if stage is not None:
                annotate(image, mask, m, len(classes)).save(stage / f"{Path(path).stem}_measure.png", format="PNG")
        if stage is not None:
            write_csv_atomic(stage / "measurements.csv", ({**r, "flags": "; ".join(r["flags"])} for r in rows),
                             FIELDS, ignore_extra=True)
    return rows


def measure_paths(images: list[str], *, model: str | None = None, masks: list[str] | None = None,
                  classes=None, pixel_size_mm: float | None = None, pixel_sizes_csv: str | None = None,
                  out_dir: str | Path | None = None) -> list[dict]:
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
        from lightseg_tf.deploy.runtime import load_predictor

        predictor = load_predictor(model)
    classes = tuple(classes) if classes else (mask_classes(masks[0]) if masks else predictor.classes)
    if classes is None:
        raise LightsegError(f"{model}: the model has no class names; pass --classes background Brain CSP LV")
    return measure_files(images, classes, model=predictor, masks=masks, pixel_size_mm=pixel_size_mm,
                         out_dir=out_dir, pixel_sizes=per_image)
