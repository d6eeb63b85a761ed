"""Dataset statistics and a contact sheet of overlays in the project palette."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.errors import LightsegError
from lightseg_tf.data.letterbox import letterbox_image, letterbox_mask
from lightseg_tf.core.io import write_png_atomic
from lightseg_tf.core.log import progress as progress_bar
from lightseg_tf.core.palette import contact_sheet, overlay


def _size(record) -> tuple[int, int] | None:
    """(width, height) read from the file header only (no decoding), when it is an image file."""
    try:
        with Image.open(record.image) as im:
            return im.size
    except OSError:
        return None


def check_dataset(dataset: SegDataset, progress: bool = False) -> list[str]:
    """Decode every image and mask once; one line per problem found (empty when all are usable).

    Catches what training would otherwise meet inside ``tf.data`` (where an error becomes a
    TensorFlow traceback): unreadable or truncated files, missing masks, a mask of another size,
    class ids outside the dataset's classes, pixel sizes that are not finite and positive.
    """
    problems = []
    records = dataset.records
    if progress:
        records = progress_bar(records, "check")
    for rec in records:
        px = rec.pixel_size_mm
        if px is not None and not (math.isfinite(px) and px > 0):
            problems.append(f"{rec.image}: pixel size {px} mm is not a finite positive number")
        if rec.mask is None:
            if not rec.unlabelled:  # a flagged one is a transfer image for distillation, by design
                problems.append(f"{rec.image}: no mask; training and evaluation need one per image")
            continue
        try:
            dataset.load_pair(rec)
        except LightsegError as exc:
            problems.append(str(exc))
    return problems


def require_valid(dataset: SegDataset) -> None:
    """Raise one LightsegError naming the first bad file (and how many there are)."""
    problems = check_dataset(dataset)
    if problems:
        more = f" (and {len(problems) - 1} more: lightseg data inspect --check {dataset.root})" if len(problems) > 1 else ""
        raise LightsegError(problems[0] + more)


def dataset_stats(dataset: SegDataset, progress: bool = False) -> dict:
    """Images, subjects, planes, classes, per-class pixel fraction and presence, sizes, pixel sizes."""
    counts = np.zeros(dataset.num_classes, np.int64)
    present = np.zeros(dataset.num_classes, np.int64)
    sizes: Counter = Counter()
    annotated = 0
    records = dataset.records
    if progress:
        records = progress_bar(records, "inspect")
    for rec in records:
        if rec.mask is not None:
            mask = dataset.load_mask(rec)
            hist = np.bincount(mask.ravel(), minlength=dataset.num_classes)[:dataset.num_classes]
            counts += hist
            present += hist > 0
            annotated += 1
            sizes[f"{mask.shape[1]}x{mask.shape[0]}"] += 1
        else:
            wh = _size(rec)
            sizes[f"{wh[0]}x{wh[1]}" if wh else "unknown"] += 1
    px = [r.pixel_size_mm for r in dataset.records if r.pixel_size_mm]
    total = max(int(counts.sum()), 1)
    return {
        "path": str(dataset.root),
        "format": dataset.format,
        "images": len(dataset),
        "annotated": annotated,
        "subjects": len({r.subject for r in dataset.records}),
        "planes": dict(Counter(r.plane or "unknown" for r in dataset.records)),
        "classes": {i: name for i, name in enumerate(dataset.classes)},
        "class_ids_present": [int(k) for k in np.flatnonzero(present)],
        "pixel_fraction": {name: float(counts[i] / total) for i, name in enumerate(dataset.classes)},
        "images_with_class": {name: int(present[i]) for i, name in enumerate(dataset.classes)},
        "image_sizes": dict(sizes.most_common()),
        "pixel_size_mm": ({"min": min(px), "max": max(px), "median": float(np.median(px)), "known": len(px)}
                          if px else None),
    }


def write_contact_sheet(dataset: SegDataset, out: str | Path, n: int = 16, tile: int = 160,
                        columns: int = 8) -> Path:
    """Overlays of ``n`` images spread evenly over the dataset, letterboxed to ``tile`` px."""
    picks = np.unique(np.linspace(0, len(dataset) - 1, min(n, len(dataset))).astype(int))
    tiles = []
    for i in picks:
        rec = dataset.records[i]
        image = dataset.load_image(rec)
        mask = dataset.load_mask(rec) if rec.mask is not None else np.zeros(image.shape[:2], np.int32)
        small, _ = letterbox_image(image, tile)
        tiles.append(overlay(small, letterbox_mask(mask, tile), num_classes=dataset.num_classes))
    write_png_atomic(out, contact_sheet(tiles, columns=min(columns, len(tiles))))
    return Path(out)


def format_stats(stats: dict) -> str:
    lines = [f"{stats['path']} ({stats['format']}): {stats['images']} images "
             f"({stats['annotated']} annotated), {stats['subjects']} subjects",
             f"planes: {stats['planes']}", f"image sizes: {stats['image_sizes']}"]
    px = stats["pixel_size_mm"]
    lines.append("pixel size: unknown" if px is None else
                 f"pixel size: {px['min']:.4f}-{px['max']:.4f} mm (median {px['median']:.4f}, known for {px['known']})")
    lines.append(f"{'class':<18}{'pixels %':>10}{'images':>8}")
    for name, frac in stats["pixel_fraction"].items():
        lines.append(f"{name:<18}{100 * frac:10.2f}{stats['images_with_class'][name]:8d}")
    return "\n".join(lines)
