"""The project's own layout, written by ``lightseg data synth`` and ``lightseg data augment``.

``ROOT/dataset.json`` (``{"format": "lightseg", "classes": [...]}``), ``ROOT/images/*.png``,
``ROOT/masks/*.png`` (class ids, same stem) and ``ROOT/meta.csv`` with columns
``id,subject,plane,pixel_size_mm,hc_mm`` (empty cell = unknown) and an optional ``unlabelled``
column (``1``: the image has no mask on purpose; the teachers label it for distillation).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lightseg_tf.core.io import read_csv, read_json_file, write_csv_atomic, write_json_atomic, write_png_atomic
from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.errors import LightsegError

META_COLUMNS = ("id", "subject", "plane", "pixel_size_mm", "hc_mm")


def write_native_pair(root: str | Path, image_id: str, image: np.ndarray, mask: np.ndarray, source: Record) -> dict:
    """Write one image ``[H, W, 1]`` in [0, 1] and its mask ``[H, W]`` under ``root`` in this layout.

    Returns:
        Its ``meta.csv`` row: ``image_id`` with the subject, plane, pixel size and HC of ``source``
        (the record it was made from; empty cells where unknown).
    """
    root = Path(root)
    write_png_atomic(root / "images" / f"{image_id}.png", np.round(image[..., 0] * 255).astype(np.uint8))
    write_png_atomic(root / "masks" / f"{image_id}.png", mask.astype(np.uint8))
    return {"id": image_id, "subject": source.subject, "plane": source.plane or "",
            "pixel_size_mm": "" if source.pixel_size_mm is None else source.pixel_size_mm,
            "hc_mm": "" if source.hc_mm is None else source.hc_mm}


def write_native_index(root: str | Path, rows: list[dict], classes, **info) -> None:
    """Write ``meta.csv`` (the rows of :func:`write_native_pair`) and ``dataset.json`` (``classes``
    plus ``info``, e.g. where the images came from) under ``root``."""
    root = Path(root)
    write_csv_atomic(root / "meta.csv", rows, META_COLUMNS)
    write_json_atomic(root / "dataset.json", {"format": "lightseg", "classes": list(classes), **info})


def _detect(path: Path) -> bool:
    info = path / "dataset.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("format") == "lightseg"
    except (ValueError, OSError, AttributeError):  # not JSON, not UTF-8, not an object: not ours
        return False


def _float_or_none(text: str, where: str) -> float | None:
    if text in ("", None):
        return None
    try:
        return float(text)
    except ValueError:
        raise LightsegError(f"{where}: {text!r} is not a number") from None


@register_reader("lightseg", _detect, "lightseg native folder: dataset.json, images/, masks/, meta.csv")
def read_native(path: str | Path) -> SegDataset:
    """Read a native lightseg folder (see module docstring)."""
    root = Path(path)
    info_path = root / "dataset.json"
    info = read_json_file(info_path, "dataset description", missing=f"missing; is {root} a lightseg dataset folder?")
    try:
        classes = info["classes"]
    except (KeyError, TypeError) as exc:
        raise LightsegError(f"{info_path}: unreadable dataset description ({exc})") from None
    meta_path = root / "meta.csv"
    if not meta_path.is_file():
        raise LightsegError(f"{meta_path}: missing; it lists the images of {root}")
    records = []
    rows = read_csv(meta_path, "image list")
    missing = [c for c in META_COLUMNS if c not in (rows[0] if rows else [])]
    if missing:
        raise LightsegError(f"{meta_path}: missing columns {missing}")
    for line, cells in enumerate(rows[1:], start=2):
        row = dict(zip(rows[0], [*cells, *[""] * len(rows[0])]))  # a short row reads as empty cells
        where = f"{meta_path}:{line}"
        image = root / "images" / f"{row['id']}.png"
        mask = root / "masks" / f"{row['id']}.png"
        if not image.is_file():
            raise LightsegError(f"{where}: row {row['id']!r} has no image {image}")
        unlabelled = row.get("unlabelled", "").strip().lower() in ("1", "true", "yes")
        records.append(
            Record(
                id=row["id"],
                image=str(image),
                mask=str(mask) if mask.is_file() and not unlabelled else None,
                subject=row["subject"] or row["id"],
                plane=row["plane"] or None,
                pixel_size_mm=_float_or_none(row["pixel_size_mm"], where),
                hc_mm=_float_or_none(row["hc_mm"], where),
                unlabelled=unlabelled,
            )
        )
    return SegDataset(format="lightseg", classes=tuple(classes), records=records, root=root)
