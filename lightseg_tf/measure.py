"""``lightseg measure``: biometry from a model's prediction or from a mask, with annotated PNGs."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lightseg_tf.biometry import measure_mask
from lightseg_tf.io_utils import atomic_path, read_gray
from lightseg_tf.palette import overlay

FIELDS = ("image", "units", "hc", "bpd", "ofd", "cephalic_index", "csp_width", "lv_width", "lv_flag", "flags")


def predict_mask(model_or_tflite, image: np.ndarray) -> np.ndarray:
    """Class map ``[H, W]`` at the image's ORIGINAL size from a Keras model or a TFLite segmenter."""
    from lightseg_tf.data.letterbox import letterbox_image, unletterbox_probs

    size = model_or_tflite.size if hasattr(model_or_tflite, "size") else int(model_or_tflite.input_shape[1])
    boxed, lb = letterbox_image(image, size)
    if hasattr(model_or_tflite, "run"):
        probs = model_or_tflite.run(boxed)[1]
    else:
        from lightseg_tf.training import predict_probs

        probs = predict_probs(model_or_tflite, boxed[None])[0]
    return unletterbox_probs(probs, lb).argmax(-1).astype(np.int32)


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
            if "hc" in m else "no head found"]
    if m.get("csp_width") is not None:
        text.append(f"CSP {m['csp_width']:.1f} {u}")
    if m.get("lv_width") is not None:
        text.append(f"LV {m['lv_width']:.1f} {u}" + (f" ({m['lv_flag']})" if m.get("lv_flag") else ""))
    text += [f"! {f}" for f in m["flags"]]
    draw.multiline_text((6, 6), "\n".join(text), fill=(255, 255, 255))
    return im


def measure_files(images: list[str], classes, *, model=None, masks: list[str] | None = None,
                  pixel_size_mm: float | None = None, out_dir: str | Path | None = None,
                  pixel_sizes: dict[str, float] | None = None) -> list[dict]:
    """Measure each image (from ``model``'s prediction or the matching mask); write PNGs + CSV.

    ``pixel_sizes`` (file name -> mm) overrides ``pixel_size_mm`` per image.
    """
    from lightseg_tf.data.readers.hc18 import filled_head_mask
    from lightseg_tf.errors import LightsegError
    from lightseg_tf.io_utils import read_class_mask

    if masks is not None and len(masks) != len(images):
        raise LightsegError(f"{len(masks)} masks for {len(images)} images; give one mask per image")
    rows = []
    for k, path in enumerate(images):
        image = read_gray(path)
        if masks is not None:
            mask = filled_head_mask(masks[k]) if len(classes) == 2 else read_class_mask(masks[k], len(classes))
            if mask.shape != image.shape[:2]:
                raise LightsegError(f"{masks[k]}: mask is {mask.shape[1]}x{mask.shape[0]} but {path} is "
                                    f"{image.shape[1]}x{image.shape[0]}")
        else:
            mask = predict_mask(model, image)
        px = (pixel_sizes or {}).get(Path(path).name, pixel_size_mm)
        m = measure_mask(mask, classes, px)
        m["image"] = str(path)
        rows.append(m)
        if out_dir is not None:
            target = Path(out_dir) / f"{Path(path).stem}_measure.png"
            with atomic_path(target) as tmp:
                annotate(image, mask, m, len(classes)).save(tmp, format="PNG")
    if out_dir is not None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(FIELDS), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "flags": "; ".join(r["flags"])})
        with atomic_path(Path(out_dir) / "measurements.csv") as tmp:
            tmp.write_text(buf.getvalue())
    return rows
