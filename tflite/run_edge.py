#!/usr/bin/env python3
"""Run an exported lightseg .tflite model on an edge board (Raspberry Pi, Coral, any ARM/x86).

Needs only numpy, Pillow and a TFLite interpreter (``ai-edge-litert`` or ``tflite-runtime``);
OpenCV only for video files. Reads ``model.json`` (the model card) beside the model, checks
the model's SHA-256 against it, letterboxes each image exactly as training did (bilinear at
half-pixel centres, no antialiasing, centred on black), runs the model and writes, per image,
an overlay PNG and the class map PNG at the ORIGINAL size, plus ``results.csv``; prints FPS.

    python3 run_edge.py model.tflite INPUT [INPUT...] --out results/ [--threads 2] [--edgetpu]

INPUT: image files, folders of images, or a video (.mp4/.avi/.mov with OpenCV; .gif without).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VIDEO_EXT = {".mp4", ".avi", ".mov", ".mkv", ".gif"}
EDGETPU_LIB = {"linux": "libedgetpu.so.1", "darwin": "libedgetpu.1.dylib", "win32": "edgetpu.dll"}


class EdgeError(Exception):
    """A problem the user can fix; printed as one line."""


def load_interpreter_module():
    """``(Interpreter, load_delegate)`` from ai-edge-litert, else tflite-runtime."""
    try:
        from ai_edge_litert.interpreter import Interpreter, load_delegate
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, load_delegate
        except ImportError:
            raise EdgeError("no TFLite interpreter: pip install ai-edge-litert (or tflite-runtime)") from None
    return Interpreter, load_delegate


def letterbox(gray: np.ndarray, size: int):
    """Letterbox a uint8 ``[H, W]`` image into ``[size, size]`` uint8; returns (image, box).

    Bilinear sampling at half-pixel centres without antialiasing (what OpenCV's INTER_LINEAR
    does), so the result matches the training pipeline. ``box`` = (pad_x, pad_y, new_w, new_h).
    """
    h, w = gray.shape
    scale = min(size / h, size / w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))

    def axis(n_out, n_in):
        src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (src - lo).astype(np.float32)

    y0, y1, wy = axis(nh, h)
    x0, x1, wx = axis(nw, w)
    g = gray.astype(np.float32)
    top = g[y0][:, x0] * (1 - wx) + g[y0][:, x1] * wx
    bottom = g[y1][:, x0] * (1 - wx) + g[y1][:, x1] * wx
    resized = top * (1 - wy[:, None]) + bottom * wy[:, None]
    out = np.zeros((size, size), np.uint8)
    px, py = (size - nw) // 2, (size - nh) // 2
    out[py:py + nh, px:px + nw] = np.clip(np.round(resized), 0, 255).astype(np.uint8)
    return out, (px, py, nw, nh)


def unletterbox_nearest(class_map: np.ndarray, box, h: int, w: int) -> np.ndarray:
    """Crop the padding and resize a class map back to ``[h, w]`` with nearest neighbour.

    Same float64 formula as ``lightseg_tf.data.letterbox.nearest_indices`` (this script must
    run without the package, so it carries its own copy).
    """
    px, py, nw, nh = box
    crop = class_map[py:py + nh, px:px + nw]
    rows = np.minimum(((np.arange(h) + 0.5) * (nh / h)).astype(np.int64), nh - 1)
    cols = np.minimum(((np.arange(w) + 0.5) * (nw / w)).astype(np.int64), nw - 1)
    return crop[rows][:, cols]


class Segmenter:
    """The model plus its card; ``__call__(gray uint8 [H,W]) -> class map [H,W]``."""

    def __init__(self, model: Path, threads: int, edgetpu: bool):
        card_path = model.with_suffix(".json")
        if not model.is_file():
            raise EdgeError(f"{model}: no such model file")
        if not card_path.is_file():
            raise EdgeError(f"{card_path}: model card missing; copy it beside the .tflite")
        self.card = json.loads(card_path.read_text())
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
        if digest != self.card.get("sha256"):
            raise EdgeError(f"{model}: SHA-256 does not match {card_path.name}; the file is corrupt "
                            "or belongs to another card")
        Interpreter, load_delegate = load_interpreter_module()
        delegates = []
        if edgetpu:
            lib = EDGETPU_LIB.get(sys.platform, "libedgetpu.so.1")
            try:
                delegates = [load_delegate(lib)]
            except (ValueError, OSError) as exc:
                raise EdgeError(
                    f"--edgetpu: cannot load the Edge TPU delegate {lib} ({exc}). Install the Edge "
                    "TPU runtime (Debian/Raspberry Pi OS: the libedgetpu1-std package from Coral's "
                    "apt repository), plug the Coral device in, and use a model compiled with "
                    "edgetpu_compiler (model_edgetpu.tflite + the same card)") from None
        self.interp = Interpreter(model_path=str(model), num_threads=threads,
                                  experimental_delegates=delegates or None)
        self.interp.allocate_tensors()
        self.runner = self.interp.get_signature_runner()
        self.size = int(self.card["input"]["size"])
        self.uint8_input = self.card["input"]["dtype"] == "uint8"

    def __call__(self, gray: np.ndarray):
        boxed, box = letterbox(gray, self.size)
        x = boxed[None, :, :, None]
        x = x if self.uint8_input else (x.astype(np.float32) / 255.0)
        t0 = time.perf_counter()
        out = self.runner(image=x)
        ms = (time.perf_counter() - t0) * 1000
        class_map = out["class_map"][0].astype(np.uint8)
        return unletterbox_nearest(class_map, box, *gray.shape), ms


def frames(inputs: list[str]):
    """Yield ``(name, gray uint8 [H,W])`` from image files, folders and videos."""
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXT)
            if not files:
                raise EdgeError(f"{path}: no images ({', '.join(sorted(IMAGE_EXT))}) in this folder")
            for f in files:
                yield f.stem, read_gray(f)
        elif path.suffix.lower() in VIDEO_EXT:
            yield from video_frames(path)
        elif path.is_file():
            yield path.stem, read_gray(path)
        else:
            raise EdgeError(f"{path}: no such file or folder")


def read_gray(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except OSError as exc:
        raise EdgeError(f"{path}: cannot read image ({exc})") from None


def video_frames(path: Path):
    if path.suffix.lower() == ".gif":
        with Image.open(path) as im:
            for k in range(getattr(im, "n_frames", 1)):
                im.seek(k)
                yield f"{path.stem}_{k:05d}", np.asarray(im.convert("L"))
        return
    try:
        import cv2
    except ImportError:
        raise EdgeError(f"{path}: reading video needs OpenCV (pip install opencv-python-headless); "
                        "or pass a folder of frames / a GIF") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise EdgeError(f"{path}: cannot open video")
    k = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield f"{path.stem}_{k:05d}", cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        k += 1


def overlay(gray: np.ndarray, class_map: np.ndarray, colors: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend class colours (background untouched) over the gray image; uint8 ``[H,W,3]``."""
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    fg = class_map > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colors[class_map[fg]]
    return rgb.astype(np.uint8)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run a lightseg .tflite model on images, folders or video.")
    ap.add_argument("model", type=Path, help="model.tflite (its model.json card beside it)")
    ap.add_argument("inputs", nargs="+", help="images, folders of images, or videos")
    ap.add_argument("--out", type=Path, default=Path("edge_results"), help="output folder")
    ap.add_argument("--threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--edgetpu", action="store_true", help="run on a Coral Edge TPU (libedgetpu)")
    ap.add_argument("--no-images", action="store_true", help="write only the CSV (fastest)")
    args = ap.parse_args(argv)
    try:
        seg = Segmenter(args.model, args.threads, args.edgetpu)
        classes = [c["name"] for c in seg.card["classes"]]
        colors = np.array([c["color"] for c in seg.card["classes"]], np.float32)
        args.out.mkdir(parents=True, exist_ok=True)
        rows, times, t_start = [], [], time.perf_counter()
        for name, gray in frames(args.inputs):
            class_map, ms = seg(gray)
            times.append(ms)
            counts = np.bincount(class_map.ravel(), minlength=len(classes))
            rows.append({"image": name, "height": gray.shape[0], "width": gray.shape[1],
                         "inference_ms": round(ms, 3),
                         **{f"pixels_{c}": int(n) for c, n in zip(classes, counts)}})
            if not args.no_images:
                Image.fromarray(class_map).save(args.out / f"{name}_classes.png")
                Image.fromarray(overlay(gray, class_map, colors)).save(args.out / f"{name}_overlay.png")
        total = time.perf_counter() - t_start
        with open(args.out / "results.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        med = float(np.median(times))
        print(f"{len(rows)} images; inference median {med:.2f} ms ({1000 / med:.1f} FPS), "
              f"end to end {len(rows) / total:.1f} FPS with {args.threads} thread(s); "
              f"results in {args.out}")
        return 0
    except EdgeError as exc:
        print(f"run_edge: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
