"""Decoding of colour-coded masks (CVAT labelmaps, colour maps) and COCO polygons / RLE."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from lightseg_tf.core.io import read_pil, read_text_file
from lightseg_tf.errors import LightsegError

# The LightSeg / fetal-brain-segmentation folder layout: black background, red Brain
# (parenchyma), green CSP, blue LV.
LIGHTSEG_COLORS = {"background": (0, 0, 0), "Brain": (255, 0, 0), "CSP": (0, 255, 0), "LV": (0, 0, 255)}


def parse_labelmap(path: str | Path) -> dict[str, tuple[int, int, int]]:
    """Read a CVAT ``labelmap.txt`` (``name:r,g,b:parts:actions`` lines) into name -> colour."""
    path = Path(path)
    out: dict[str, tuple[int, int, int]] = {}
    if not path.is_file():
        raise LightsegError(f"{path}: labelmap missing; a CVAT segmentation export has one")
    lines = read_text_file(path, "labelmap").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(":")
        try:
            rgb = tuple(int(v) for v in parts[1].split(","))
            assert len(rgb) == 3
        except (IndexError, ValueError, AssertionError):
            raise LightsegError(f"{path}:{n}: expected 'name:r,g,b:parts:actions', got {line!r}") from None
        out[parts[0].strip()] = rgb
    return out


def classes_from_colors(name_to_color: dict[str, tuple[int, int, int]], wanted: Sequence[str]):
    """Map class NAMES to ids in ``wanted`` order (case-insensitive); background is id 0.

    Returns:
        ``{(r, g, b): class_id}``. Names in the colour map but not wanted are an error.
    """
    index = {w.lower(): k for k, w in enumerate(wanted)}
    table = {}
    for name, rgb in name_to_color.items():
        key = name.lower()
        if key in ("background", "_background_", "bg"):
            key = wanted[0].lower()
        if key not in index:
            raise LightsegError(f"label {name!r} is not one of the classes {list(wanted)}")
        table[tuple(rgb)] = index[key]
    return table


def decode_color_mask(path: str | Path, table: dict[tuple[int, int, int], int], source: str) -> np.ndarray:
    """An RGB mask file -> int32 class ids through ``table``; an unknown colour is an error.

    Args:
        source: where ``table`` came from (named in the error), e.g. the labelmap path.
    """
    rgb = np.asarray(read_pil(path).convert("RGB"), np.int64)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in table], np.int64)
    ids = np.array(list(table.values()), np.int32)
    order = np.argsort(keys)
    keys, ids = keys[order], ids[order]
    pos = np.clip(np.searchsorted(keys, code), 0, len(keys) - 1)
    known = keys[pos] == code
    if not known.all():
        bad = int(code[~known][0])
        colour = ((bad >> 16) & 255, (bad >> 8) & 255, bad & 255)
        raise LightsegError(
            f"{path}: colour {colour} ({int((~known).sum())} pixels) is not in {source} "
            f"(known: {sorted(table)}); fix the mask or the colour map"
        )
    return ids[pos].astype(np.int32)


def rle_decode(counts, height: int, width: int) -> np.ndarray:
    """COCO run-length encoding (uncompressed list or compressed string) -> bool ``[H, W]``.

    COCO RLE runs alternate 0s and 1s starting with 0, in COLUMN-major order. The compressed
    string form packs each run as 5-bit chunks offset by 48, delta-coded from the run two back.
    """
    if isinstance(counts, str):
        runs, i, s = [], 0, counts.encode()
        while i < len(s):
            x, k, more = 0, 0, True
            while more:
                c = s[i] - 48
                x |= (c & 0x1F) << (5 * k)
                more = bool(c & 0x20)
                i += 1
                k += 1
                if not more and (c & 0x10):
                    x |= -1 << (5 * k)
            if len(runs) > 2:
                x += runs[-2]
            runs.append(x)
        counts = runs
    flat = np.zeros(height * width, bool)
    pos, value = 0, False
    for run in counts:
        if value:
            flat[pos:pos + run] = True
        pos += run
        value = not value
    if pos != height * width:
        raise LightsegError(f"RLE covers {pos} pixels, image has {height * width}")
    return flat.reshape(width, height).T


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """COCO polygons ``[[x1, y1, x2, y2, ...], ...]`` -> bool ``[H, W]``.

    A pixel belongs to a polygon when its centre ``(j + 0.5, i + 0.5)`` lies inside (tested
    only inside the polygon's bounding box); polygons are OR-ed together.
    """
    from matplotlib.path import Path as MplPath

    mask = np.zeros((height, width), bool)
    for poly in polygons:
        pts = np.asarray(poly, np.float64).reshape(-1, 2)
        x0, y0 = np.clip(np.floor(pts.min(0)).astype(int), 0, [width, height])
        x1, y1 = np.clip(np.ceil(pts.max(0)).astype(int) + 1, 0, [width, height])
        if x1 <= x0 or y1 <= y0:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        centres = np.column_stack([xx.ravel() + 0.5, yy.ravel() + 0.5])
        inside = MplPath(pts).contains_points(centres).reshape(yy.shape)
        mask[y0:y1, x0:x1] |= inside
    return mask
