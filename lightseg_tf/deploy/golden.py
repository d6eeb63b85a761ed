"""Golden vectors: what an exported model must do on a device, for the Kotlin and browser ports.

``write_golden(model.tflite, DIR)`` renders phantom images and records, per case, every
intermediate of the device path (:meth:`TFLitePredictor.predict_mask`, which ``lightseg measure``
uses for a .tflite too):

    image (uint8 H x W) -> letterbox (uint8 S x S, :func:`letterbox_uint8`) -> model class map
    (uint8 S x S) -> un-letterboxed class map (nearest, H x W) -> head ellipse, HC, BPD, OFD

as gzip-compressed raw uint8 files (``*.raw.gz``; a plain ``*.raw`` of an older set is read as
it is) plus a PNG of the image, and ``golden.json`` describing them. Two kinds of case:

- small: 160 px phantoms cropped to H < W (the letterbox pads top and bottom);
- real-shaped: a 160 px phantom cropped to the aspect of an HC18 scan and enlarged five times
  (nearest, so the files stay small), 800 x 540 and 540 x 800 (W x H): long boundaries at the
  size a real image has, where the un-letterbox and the ellipse fit matter most.

The Android unit tests (``android_demo/run_core_tests.sh``), the node check of the browser core
(``tflite/web/check_golden.mjs``) and the browser test read these same files.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from lightseg_tf.core.io import sha256_file, write_bytes_atomic, write_json_atomic, write_png_atomic

GOLDEN = "golden.json"
REAL_SHAPES = ((540, 800), (800, 540))  # (H, W): HC18's landscape scan and its portrait turn
ENLARGE = 5  # real-shaped cases: 108 x 160 phantom crops enlarged 5 times


def _phantom_case(k: int, seed: int):
    from lightseg_tf.data.phantom import make_phantom

    img, _, truth = make_phantom(160, np.random.default_rng([seed, k]))
    crop = slice(12 + 4 * k, 148 - 2 * k)  # H < W: the letterbox pads top and bottom
    gray = np.round(img[crop, :, 0] * 255).astype(np.uint8)
    return gray, float(truth.pixel_size_mm)


def _real_shaped_case(h: int, w: int, seed: int):
    """A phantom cut to ``h x w / ENLARGE`` around its centre and enlarged ``ENLARGE`` times."""
    from lightseg_tf.data.phantom import make_phantom

    img, _, truth = make_phantom(160, np.random.default_rng([seed, h, w]))
    ch, cw = h // ENLARGE, w // ENLARGE
    top, left = (160 - ch) // 2, (160 - cw) // 2
    small = np.round(img[top:top + ch, left:left + cw, 0] * 255).astype(np.uint8)
    gray = np.repeat(np.repeat(small, ENLARGE, axis=0), ENLARGE, axis=1)
    return gray, float(truth.pixel_size_mm) / ENLARGE


def phantom_cases(n: int = 3, seed: int = 7, real_shapes: Iterable[tuple[int, int]] = REAL_SHAPES):
    """``(name, gray uint8 [H, W], pixel size mm)`` of the committed golden set's cases."""
    cases = [(f"case_{k:02d}", *_phantom_case(k, seed)) for k in range(n)]
    for h, w in real_shapes:
        cases.append((f"case_{len(cases):02d}_{w}x{h}", *_real_shaped_case(h, w, seed)))
    return cases


def read_raw(path: str | Path) -> bytes:
    """The bytes of a golden raw file, gunzipped when its name ends in ``.gz``."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if str(path).endswith(".gz") else data


def _write_raw(path: Path, arr: np.ndarray) -> None:
    # mtime=0: the same array always gives the same file.
    write_bytes_atomic(path, gzip.compress(np.ascontiguousarray(arr, np.uint8).tobytes(), 9, mtime=0))


def write_golden(model: str | Path, out: str | Path, n: int = 3, seed: int = 7,
                 real_shapes: Iterable[tuple[int, int]] = REAL_SHAPES,
                 cases: Iterable[tuple[str, np.ndarray, float | None]] | None = None) -> Path:
    """Write golden vectors for ``model`` (a .tflite with its card) into ``out``; returns golden.json.

    Args:
        model: the .tflite (its card beside it); copied into ``out``.
        out: the folder.
        n, seed, real_shapes: the phantom cases (:func:`phantom_cases`), recorded in golden.json
            so a test can regenerate the set.
        cases: ``(name, gray uint8 [H, W], pixel size mm or None)`` to use instead of the
            phantoms, e.g. real scans for ``experiments/hc_parity.py`` (never commit those).
    """
    from lightseg_tf.anatomy.biometry import Ellipse, ellipse_lengths, measure_mask
    from lightseg_tf.data.letterbox import letterbox_uint8, unletterbox_mask
    from lightseg_tf.deploy.runtime import load_tflite

    seg = load_tflite(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    real_shapes = [list(s) for s in real_shapes]
    generator = None if cases is not None else {"n": n, "seed": seed, "real_shapes": real_shapes}
    entries = []
    for name, gray, px in (phantom_cases(n, seed, real_shapes) if cases is None else cases):
        gray = np.asarray(gray, np.uint8)
        boxed, lb = letterbox_uint8(gray, seg.size)
        class_map = seg.class_map(boxed)
        original = unletterbox_mask(class_map, lb).astype(np.uint8)
        # Unrounded lengths of the fitted ellipse: the device ports are checked against the geometry,
        # not against the 0.1 mm the report prints.
        e = measure_mask(original, seg.classes, px).get("ellipse_px")
        mm, in_px = (ellipse_lengths(Ellipse(**e), scale) if e and scale else {} for scale in (px, 1.0))
        for suffix, arr in (("image", gray), ("input", boxed), ("class_map", class_map),
                            ("class_map_original", original)):
            _write_raw(out / f"{name}_{suffix}.raw.gz", arr)
        write_png_atomic(out / f"{name}_image.png", gray)
        entries.append({
            "name": name, "height": int(gray.shape[0]), "width": int(gray.shape[1]), "pixel_size_mm": px,
            "letterbox": {"pad_x": lb.pad_x, "pad_y": lb.pad_y, "new_w": lb.new_w, "new_h": lb.new_h},
            "files": {s: f"{name}_{s}.raw.gz" for s in ("image", "input", "class_map", "class_map_original")}
                     | {"png": f"{name}_image.png"},
            "measurements": {"hc_mm": mm.get("hc"), "bpd_mm": mm.get("bpd"), "ofd_mm": mm.get("ofd"),
                             "hc_px": in_px.get("hc"), "bpd_px": in_px.get("bpd"), "ofd_px": in_px.get("ofd"),
                             "cx_px": e["cx"] if e else None, "cy_px": e["cy"] if e else None},
            "class_pixels": np.bincount(original.ravel(), minlength=len(seg.classes)).tolist(),
        })
    model_copy = out / Path(model).name
    if Path(model).resolve() != model_copy.resolve():
        shutil.copyfile(model, model_copy)
        shutil.copyfile(Path(model).with_suffix(".json"), model_copy.with_suffix(".json"))
    manifest = {"model": model_copy.name, "sha256": sha256_file(model_copy), "size": seg.size,
                "classes": list(seg.classes), "colors": [c["color"] for c in seg.card["classes"]],
                "generator": generator, "cases": entries}
    write_json_atomic(out / GOLDEN, manifest)
    return out / GOLDEN
