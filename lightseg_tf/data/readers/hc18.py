"""HC18 challenge (van den Heuvel et al., PLoS ONE 2018; Zenodo 1327317).

``training_set/NNN_HC.png`` (further images of subject NNN: ``NNN_2HC.png``, ``NNN_3HC.png``)
with ``NNN_HC_Annotation.png`` and ``training_set_pixel_size_and_HC.csv``
(``filename,pixel size(mm),head circumference (mm)``). The official annotations draw the
ellipse OUTLINE; some copies have it filled. Both load as a filled head mask.
Classes: background, head. ``test_set/`` images (no annotations) load with mask None.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from lightseg_tf.anatomy.biometry import check_pixel_size
from lightseg_tf.core.io import read_csv, read_pil
from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.errors import LightsegError

NAME = re.compile(r"^(\d+)_(\d*)HC\.png$")
CSV_NAMES = ("training_set_pixel_size_and_HC.csv", "test_set_pixel_size.csv")


def _image_dirs(root: Path) -> list[Path]:
    return [d for d in (root / "training_set", root / "test_set", root) if d.is_dir()
            and any(NAME.match(p.name) for p in d.iterdir())]


def _detect(path: Path) -> bool:
    return path.is_dir() and bool(_image_dirs(path)) and any(
        (d / n).exists() or (d.parent / n).exists() for d in _image_dirs(path) for n in CSV_NAMES)


# HC18's annotation is an ellipse outline drawn with a line about 3 px wide; the reference HC is
# the ellipse through the line's centre. Filled, the annotation also holds the line's outer half,
# so its boundary lies a constant 1.42 px outside the reference ellipse (10th-90th percentile
# 1.37-1.49 px over the 871 images): +0.76 % HC, +1.2 mm on average, growing with the head in mm.
# Trimming that rim makes the mask's boundary the reference ellipse (HC within +0.09 %), so a
# model learns the ellipse the sonographer measured (experiments/hc18_ellipse_check.py).
OUTLINE_HALF_WIDTH_PX = 1.5


def filled_head_mask(path, trim_px: float = OUTLINE_HALF_WIDTH_PX) -> np.ndarray:
    """An HC18-style 0/255 annotation (outline or filled) as a filled head mask {0, 1}.

    Args:
        path: the annotation PNG.
        trim_px: rim removed from the filled region (pixels whose distance to the background is at
            most this): the outer half of the drawn outline, see :data:`OUTLINE_HALF_WIDTH_PX`.
    """
    arr = np.asarray(read_pil(path).convert("L"))
    values = np.unique(arr)
    if not set(values.tolist()) <= {0, 255} and not set(values.tolist()) <= {0, 1}:
        raise LightsegError(f"{path}: expected a 0/255 annotation, found values {values[:8].tolist()}")
    edge = arr > 0
    if not edge.any():
        return edge.astype(np.int32)
    rows, cols = np.flatnonzero(edge.any(1)), np.flatnonzero(edge.any(0))
    box = (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1)
    if edge.sum() > 0.5 * box:  # already filled (a filled ellipse covers pi/4 of its box)
        filled = ndimage.binary_fill_holes(edge)
    else:  # an outline: closing bridges the one-pixel gaps some outlines have, so the fill cannot leak
        filled = ndimage.binary_fill_holes(ndimage.binary_closing(edge, structure=np.ones((3, 3), bool), iterations=2))
    if trim_px > 0:
        filled = ndimage.distance_transform_edt(filled) > trim_px
    return filled.astype(np.int32)


class HC18Dataset(SegDataset):
    def load_mask(self, record: Record) -> np.ndarray:
        """Filled head mask {0, 1}; an outline annotation is closed and filled."""
        if record.mask is None:
            raise LightsegError(f"{record.image}: HC18 test images have no annotation")
        return filled_head_mask(record.mask)


def _read_csv(path: Path) -> dict[str, tuple[float, float | None]]:
    """``{file name: (mm per pixel, reference HC mm or None)}``; pixel sizes must be finite and > 0."""
    rows = read_csv(path, "HC18 pixel-size CSV")
    if not rows or not rows[0] or "filename" not in rows[0][0].lower():
        raise LightsegError(f"{path}: expected a header 'filename,pixel size(mm),...'")
    table = {}
    for line, row in enumerate(rows[1:], 2):
        try:
            px, hc = row[1], float(row[2]) if len(row) > 2 and row[2] else None
        except (IndexError, ValueError):
            raise LightsegError(f"{path}:{line}: cannot read pixel size / HC from {row}") from None
        table[row[0]] = (check_pixel_size(px, f"{path}:{line} ({row[0]})"), hc)
    return table


@register_reader("hc18", _detect, "HC18: training_set/NNN_HC.png + _Annotation.png + pixel-size CSV")
def read_hc18(path: str | Path) -> SegDataset:
    """Read an HC18 folder (the release root, or its training_set/ / test_set/)."""
    root = Path(path)
    records = []
    for folder in _image_dirs(root):
        csv_path = next((p for n in CSV_NAMES for p in (folder / n, folder.parent / n) if p.exists()), None)
        if csv_path is None:
            raise LightsegError(f"{folder}: no pixel-size CSV ({' or '.join(CSV_NAMES)}) in it or beside it; "
                                "HC18 images need theirs, copy it from the release")
        table = _read_csv(csv_path)
        names = sorted(p.name for p in folder.iterdir() if NAME.match(p.name))
        for name in names:
            subject = NAME.match(name).group(1)
            mask = folder / name.replace(".png", "_Annotation.png")
            if name not in table:
                raise LightsegError(f"{folder / name}: not in {csv_path}, so its pixel size is unknown; "
                                    "add its row (file name, mm per pixel) or remove the image")
            px, hc = table[name]
            records.append(Record(id=Path(name).stem, image=str(folder / name),
                                  mask=str(mask) if mask.exists() else None, subject=subject,
                                  plane="trans-thalamic", pixel_size_mm=px, hc_mm=hc))
        missing = sorted(set(table) - set(names))
        if missing:
            raise LightsegError(f"{csv_path}: rows without an image in {folder}: {missing[:5]}")
    return HC18Dataset(format="hc18", classes=("background", "head"), records=records, root=root)
