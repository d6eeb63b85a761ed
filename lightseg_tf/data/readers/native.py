"""The project's own layout, written by ``lightseg data synth`` and ``lightseg data augment``.

``ROOT/dataset.json`` (``{"format": "lightseg", "classes": [...]}``), ``ROOT/images/*.png``,
``ROOT/masks/*.png`` (class ids, same stem) and ``ROOT/meta.csv`` with columns
``id,subject,plane,pixel_size_mm,hc_mm`` (empty cell = unknown).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.errors import LightsegError

META_COLUMNS = ("id", "subject", "plane", "pixel_size_mm", "hc_mm")


def _detect(path: Path) -> bool:
    info = path / "dataset.json"
    if not info.is_file():
        return False
    try:
        return json.loads(info.read_text()).get("format") == "lightseg"
    except (json.JSONDecodeError, OSError):
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
    try:
        info = json.loads(info_path.read_text())
        classes = info["classes"]
    except FileNotFoundError:
        raise LightsegError(f"{info_path}: missing; is {root} a lightseg dataset folder?") from None
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise LightsegError(f"{info_path}: unreadable dataset description ({exc})") from None
    meta_path = root / "meta.csv"
    if not meta_path.is_file():
        raise LightsegError(f"{meta_path}: missing; it lists the images of {root}")
    records = []
    with meta_path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in META_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise LightsegError(f"{meta_path}: missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            where = f"{meta_path}:{line}"
            image = root / "images" / f"{row['id']}.png"
            mask = root / "masks" / f"{row['id']}.png"
            if not image.is_file():
                raise LightsegError(f"{where}: row {row['id']!r} has no image {image}")
            records.append(
                Record(
                    id=row["id"],
                    image=str(image),
                    mask=str(mask) if mask.is_file() else None,
                    subject=row["subject"] or row["id"],
                    plane=row["plane"] or None,
                    pixel_size_mm=_float_or_none(row["pixel_size_mm"], where),
                    hc_mm=_float_or_none(row["hc_mm"], where),
                )
            )
    return SegDataset(format="lightseg", classes=tuple(classes), records=records, root=root)
