"""Golden vectors: what an exported model must do on a device, for the Kotlin and browser ports.

``write_golden(model.tflite, DIR)`` renders phantom images and records, per case, every
intermediate of the device path (:meth:`TFLitePredictor.predict_mask`, which ``lightseg measure``
uses for a .tflite too):

    image (uint8 H x W) -> letterbox (uint8 S x S, :func:`letterbox_uint8`) -> model class map
    (uint8 S x S) -> un-letterboxed class map (nearest, H x W) -> head ellipse, HC, BPD, OFD

    and from the same inference: model probabilities (S x S x C, the raw tensor) -> un-letterboxed
    (bilinear, H x W x C) -> head confidence (:func:`~lightseg_tf.anatomy.confidence.head_confidence`,
    what ``lightseg measure`` computes for a .tflite) -> its verdict at a few thresholds, and the
    structures flagged at thresholds around each structure's margin

as gzip-compressed raw files (``*.raw.gz``, uint8; the probabilities in the tensor's dtype, float32
little-endian for a float model; a plain ``*.raw`` of an older set is read as it is) plus a PNG of
the image, and ``golden.json`` describing them. ``golden.json`` also holds a table of
``(score, threshold, verdict)`` rows at the reported precision's half-up edges (0.295 is 0.30,
not 0.29 as ``Math.round(0.295 * 100)`` has it) that every port's ``verdict`` must reproduce.
Two kinds of case:

- small: 160 px phantoms cropped to H < W (the letterbox pads top and bottom);
- real-shaped: a 160 px phantom cropped to the aspect of an HC18 scan and enlarged five times
  (nearest, so the files stay small), 800 x 540 and 540 x 800 (W x H): long boundaries at the
  size a real image has, where the un-letterbox and the ellipse fit matter most;
- hard (:func:`hard_cases`): two heads side by side, a head enlarged past the frame and a
  blank image, where the confidence's fragments, border and area terms and "no head" are at
  work (on the clean phantoms they are all 1).

The Android unit tests (``android_demo/run_core_tests.sh``), the node check of the browser core
(``tflite/web/check_golden.mjs``) and the browser test read these same files; the confidence
ports must give Python's score within ``CONFIDENCE_ATOL`` on the same class map and probabilities.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Iterable

import numpy as np

from lightseg_tf.core.io import sha256_file, write_bytes_atomic, write_json_atomic, write_png_atomic

GOLDEN = "golden.json"
# The ports compute the score from the same class map and probabilities in float64 (Python sums
# float32 margins): only rounding differs, far below the 0.01 the score is reported at.
CONFIDENCE_ATOL = 1e-4
# (score, threshold) rows whose verdict depends on rounding half-up on the shortest decimal form.
VERDICT_EDGES = ((0.295, 0.3), (0.285, 0.29), (0.145, 0.15), (0.1449999, 0.15), (0.005, 0.01),
                 (0.0049999, 0.01), (0.3049999, 0.31), (0.305, 0.31), (1.0, 1.0), (0.0, 0.0), (0.5, None))
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


def hard_cases(seed: int = 7):
    """``(suffix, gray uint8 [H, W], pixel size mm or None)``: what a confident, clean phantom head
    never shows. ``twins``: two 120 x 160 phantom crops side by side (the measured head is about
    half the head pixels: fragments); ``zoomed``: the middle 80 x 80 of a phantom enlarged twice
    (the head runs off the frame and covers most of it: border, area); ``blank``: black, no head."""
    from lightseg_tf.data.phantom import make_phantom

    def gray(k):
        img, _, truth = make_phantom(160, np.random.default_rng([seed, 99, k]))
        return np.round(img[..., 0] * 255).astype(np.uint8), float(truth.pixel_size_mm)

    (a, px), (b, _) = gray(0), gray(1)
    zoomed = np.repeat(np.repeat(a[40:120, 40:120], 2, axis=0), 2, axis=1)
    return [("twins", np.concatenate([a[20:140], b[20:140]], axis=1), px), ("zoomed", zoomed, px / 2),
            ("blank", np.zeros((120, 160), np.uint8), None)]


def phantom_cases(n: int = 3, seed: int = 7, real_shapes: Iterable[tuple[int, int]] = REAL_SHAPES,
                  hard: bool = True):
    """``(name, gray uint8 [H, W], pixel size mm)`` of the committed golden set's cases: ``n`` small,
    the real-shaped ones, then (``hard``) :func:`hard_cases`."""
    cases = [(f"case_{k:02d}", *_phantom_case(k, seed)) for k in range(n)]
    for h, w in real_shapes:
        cases.append((f"case_{len(cases):02d}_{w}x{h}", *_real_shaped_case(h, w, seed)))
    for suffix, gray, px in hard_cases(seed) if hard else ():
        cases.append((f"case_{len(cases):02d}_{suffix}", gray, px))
    return cases


def read_raw(path: str | Path) -> bytes:
    """The bytes of a golden raw file, gunzipped when its name ends in ``.gz``."""
    data = Path(path).read_bytes()
    return gzip.decompress(data) if str(path).endswith(".gz") else data


def _write_raw(path: Path, arr: np.ndarray) -> None:
    """uint8 as it is, float32 little-endian; mtime=0: the same array always gives the same file."""
    arr = np.asarray(arr)
    if arr.dtype not in (np.uint8, np.float32):
        raise ValueError(f"{path.name}: golden raw files hold uint8 or float32, not {arr.dtype}")
    data = np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes()
    write_bytes_atomic(path, gzip.compress(data, 9, mtime=0))


def _case_thresholds(score: float, card_threshold: float | None) -> list:
    """The card's threshold, none, and the three 0.01 steps around the score as reported: a port
    whose score or rounding drifts by a step gets a different verdict at one of them."""
    from lightseg_tf.anatomy.precision import round_half_up

    r = round_half_up(score, 2)
    steps = [round_half_up(r + d, 2) for d in (-0.01, 0.0, 0.01)]
    return list(dict.fromkeys([card_threshold, None, *steps]))


def _structure_flag_cases(margins: dict[str, float]) -> list:
    """``[thresholds, flagged structures]`` rows: each structure alone at the three 0.01 steps
    around its margin as reported, then all at once one step above: a port whose margins or
    rounding drift by a step, or whose order differs, flags differently at one of them."""
    from lightseg_tf.anatomy.confidence import low_structures

    steps = {name: [t for t in _case_thresholds(m, None) if t is not None] for name, m in margins.items()}
    rows = [[{name: t}, low_structures(margins, {name: t})] for name, ts in steps.items() for t in ts]
    every = {name: ts[-1] for name, ts in steps.items()}
    return rows + ([[every, low_structures(margins, every)]] if margins else [])


def write_golden(model: str | Path, out: str | Path, n: int = 3, seed: int = 7,
                 real_shapes: Iterable[tuple[int, int]] = REAL_SHAPES,
                 cases: Iterable[tuple[str, np.ndarray, float | None]] | None = None, hard: bool = True) -> Path:
    """Write golden vectors for ``model`` (a .tflite with its card) into ``out``; returns golden.json.

    Args:
        model: the .tflite (its card beside it); copied into ``out``.
        out: the folder.
        n, seed, real_shapes, hard: the phantom cases (:func:`phantom_cases`), recorded in golden.json
            so a test can regenerate the set.
        cases: ``(name, gray uint8 [H, W], pixel size mm or None)`` to use instead of the
            phantoms, e.g. real scans for ``experiments/hc_parity.py`` (never commit those).
    """
    from lightseg_tf.anatomy.biometry import Ellipse, ellipse_lengths, measure_mask
    from lightseg_tf.anatomy.confidence import SCORE_NAME, band_width_px, head_confidence, verdict
    from lightseg_tf.data.letterbox import letterbox_uint8, unletterbox_mask, unletterbox_probs
    from lightseg_tf.deploy.runtime import load_tflite

    seg = load_tflite(model)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    real_shapes = [list(s) for s in real_shapes]
    generator = None if cases is not None else {"n": n, "seed": seed, "real_shapes": real_shapes, "hard": hard}
    card_threshold = (seg.card.get("confidence") or {}).get("threshold")
    entries = []
    for name, gray, px in (phantom_cases(n, seed, real_shapes, hard) if cases is None else cases):
        gray = np.asarray(gray, np.uint8)
        boxed, lb = letterbox_uint8(gray, seg.size)
        graph = seg.invoke_boxed(boxed)  # one inference: class map and probabilities, as on a device
        class_map = graph["class_map"]
        original = unletterbox_mask(class_map, lb).astype(np.uint8)
        band = band_width_px(*gray.shape, seg.size)
        conf = head_confidence(unletterbox_probs(seg.dequantize(graph["probs"]), lb), original, seg.classes, band)
        # Unrounded lengths of the fitted ellipse: the device ports are checked against the geometry,
        # not against the 0.1 mm the report prints.
        e = measure_mask(original, seg.classes, px).get("ellipse_px")
        mm, in_px = (ellipse_lengths(Ellipse(**e), scale) if e and scale else {} for scale in (px, 1.0))
        raw_files = (("image", gray), ("input", boxed), ("class_map", class_map),
                     ("class_map_original", original), ("probs", graph["probs"]))
        for suffix, arr in raw_files:
            _write_raw(out / f"{name}_{suffix}.raw.gz", arr)
        write_png_atomic(out / f"{name}_image.png", gray)
        entries.append({
            "name": name, "height": int(gray.shape[0]), "width": int(gray.shape[1]), "pixel_size_mm": px,
            "letterbox": {"pad_x": lb.pad_x, "pad_y": lb.pad_y, "new_w": lb.new_w, "new_h": lb.new_h},
            "files": {s: f"{name}_{s}.raw.gz" for s, _ in raw_files} | {"png": f"{name}_image.png"},
            "measurements": {"hc_mm": mm.get("hc"), "bpd_mm": mm.get("bpd"), "ofd_mm": mm.get("ofd"),
                             "hc_px": in_px.get("hc"), "bpd_px": in_px.get("bpd"), "ofd_px": in_px.get("ofd"),
                             "cx_px": e["cx"] if e else None, "cy_px": e["cy"] if e else None},
            "class_pixels": np.bincount(original.ravel(), minlength=len(seg.classes)).tolist(),
            # Unrounded, as the ports compute it; "verdicts" are [threshold, verdict] at the card's
            # threshold, none, and the 0.01 steps around the score.
            "confidence": {"band_px": band, "score": conf["score"], "components": conf["components"],
                           "raw": conf["raw"], "structures": conf["structures"],
                           "verdicts": [[t, verdict(conf["score"], t)]
                                        for t in _case_thresholds(conf["score"], card_threshold)],
                           "structure_flags": _structure_flag_cases(conf["structures"])},
        })
    model_copy = out / Path(model).name
    if Path(model).resolve() != model_copy.resolve():
        shutil.copyfile(model, model_copy)
        shutil.copyfile(Path(model).with_suffix(".json"), model_copy.with_suffix(".json"))
    manifest = {"model": model_copy.name, "sha256": sha256_file(model_copy), "size": seg.size,
                "classes": list(seg.classes), "colors": [c["color"] for c in seg.card["classes"]],
                "generator": generator, "cases": entries,
                "confidence": {"score": SCORE_NAME, "threshold": card_threshold,
                               "verdict_table": [[sc, t, verdict(sc, t)] for sc, t in VERDICT_EDGES]}}
    write_json_atomic(out / GOLDEN, manifest)
    return out / GOLDEN
