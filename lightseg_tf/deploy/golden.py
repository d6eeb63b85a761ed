"""Golden vectors: what an exported model must do on a device, for the Kotlin and browser ports.

``write_golden(model.tflite, DIR)`` renders a few phantom images (non-square, so the letterbox
pads) and records, per case, every intermediate of the device path:

    image (uint8 H x W) -> letterbox (uint8 S x S, :func:`letterbox_uint8`) -> model class map
    (uint8 S x S) -> un-letterboxed class map (nearest, H x W) -> head ellipse, HC, BPD

as raw little-endian uint8 files plus PNGs, and ``golden.json`` describing them. The Android
unit tests and the browser test read these same files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from lightseg_tf.core.io import sha256_file, write_bytes_atomic, write_json_atomic, write_png_atomic

GOLDEN = "golden.json"


def _phantom_case(k: int, seed: int):
    from lightseg_tf.data.phantom import make_phantom

    img, _, truth = make_phantom(160, np.random.default_rng([seed, k]))
    crop = slice(12 + 4 * k, 148 - 2 * k)  # H < W: the letterbox pads top and bottom
    gray = np.round(img[crop, :, 0] * 255).astype(np.uint8)
    return gray, float(truth.pixel_size_mm)


def write_golden(model: str | Path, out: str | Path, n: int = 3, seed: int = 7) -> Path:
    """Write ``n`` golden cases for ``model`` (a .tflite with its card) into ``out``; returns golden.json."""
    from lightseg_tf.anatomy.biometry import Ellipse, ellipse_lengths, measure_mask
    from lightseg_tf.data.letterbox import letterbox_uint8, unletterbox_mask
    from lightseg_tf.deploy.runtime import load_tflite

    seg = load_tflite(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runner = seg.interpreter.get_signature_runner()
    uint8_in = seg.card["input"]["dtype"] == "uint8"
    cases = []
    for k in range(n):
        gray, px = _phantom_case(k, seed)
        boxed, lb = letterbox_uint8(gray, seg.size)
        x = boxed[None, :, :, None]
        class_map = runner(image=x if uint8_in else x.astype(np.float32) / 255.0)["class_map"][0]
        class_map = np.asarray(class_map, np.uint8).reshape(seg.size, seg.size)
        original = unletterbox_mask(class_map, lb).astype(np.uint8)
        # Unrounded lengths of the fitted ellipse: the device ports are checked against the geometry, not
        # against the 0.1 mm the report prints.
        e = measure_mask(original, seg.classes, px).get("ellipse_px")
        mm, in_px = (ellipse_lengths(Ellipse(**e), scale) if e else {} for scale in (px, 1.0))
        name = f"case_{k:02d}"
        for suffix, arr in (("image", gray), ("input", boxed), ("class_map", class_map),
                            ("class_map_original", original)):
            write_bytes_atomic(out / f"{name}_{suffix}.raw", np.ascontiguousarray(arr, np.uint8).tobytes())
        write_png_atomic(out / f"{name}_image.png", gray)
        cases.append({
            "name": name, "height": int(gray.shape[0]), "width": int(gray.shape[1]), "pixel_size_mm": px,
            "letterbox": {"pad_x": lb.pad_x, "pad_y": lb.pad_y, "new_w": lb.new_w, "new_h": lb.new_h},
            "files": {s: f"{name}_{s}.raw" for s in ("image", "input", "class_map", "class_map_original")}
                     | {"png": f"{name}_image.png"},
            "measurements": {"hc_mm": mm.get("hc"), "bpd_mm": mm.get("bpd"), "ofd_mm": mm.get("ofd"),
                             "hc_px": in_px.get("hc"), "bpd_px": in_px.get("bpd")},
            "class_pixels": np.bincount(original.ravel(), minlength=len(seg.classes)).tolist(),
        })
    model_copy = out / Path(model).name
    if Path(model).resolve() != model_copy.resolve():
        shutil.copyfile(model, model_copy)
        shutil.copyfile(Path(model).with_suffix(".json"), model_copy.with_suffix(".json"))
    manifest = {"model": model_copy.name, "sha256": sha256_file(model_copy), "size": seg.size,
                "classes": list(seg.classes), "colors": [c["color"] for c in seg.card["classes"]], "cases": cases}
    write_json_atomic(out / GOLDEN, manifest)
    return out / GOLDEN
