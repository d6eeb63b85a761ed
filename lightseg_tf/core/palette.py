"""The project's one class palette: every overlay, contact sheet, report and app uses it.

Class 0 (background) is never painted. Colours are chosen to stay distinct on gray
ultrasound and for the common colour-vision deficiencies (Okabe-Ito-like hues), and follow
the LightSeg convention where it exists: Brain red, CSP green, LV blue.
"""

from __future__ import annotations

import numpy as np

PALETTE = np.array([
    [0, 0, 0],        # 0 background (not painted)
    [230, 75, 60],    # 1 Brain / head / first foreground class: red
    [40, 200, 110],   # 2 CSP / second: green
    [60, 120, 235],   # 3 LV / third: blue
    [240, 200, 40],   # 4 yellow
    [200, 90, 220],   # 5 purple
    [40, 200, 220],   # 6 cyan
    [245, 140, 40],   # 7 orange
], dtype=np.uint8)


def class_colors(num_classes: int) -> np.ndarray:
    """``[num_classes, 3]`` uint8 colours (cycling past the palette's end)."""
    idx = np.arange(num_classes)
    colors = PALETTE[np.where(idx == 0, 0, 1 + (idx - 1) % (len(PALETTE) - 1))]
    return colors.copy()


def colorize(mask: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Class ids ``[H, W]`` -> uint8 RGB ``[H, W, 3]`` (background black)."""
    n = int(mask.max()) + 1 if num_classes is None else num_classes
    return class_colors(max(n, 1))[mask]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.45, num_classes: int | None = None) -> np.ndarray:
    """Blend class colours over a gray image; background pixels keep the image.

    Args:
        image: ``[H, W]`` or ``[H, W, 1]`` float in [0, 1] or uint8.
        mask: ``[H, W]`` class ids.
        alpha: colour weight on foreground pixels.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    gray = np.asarray(image)
    if gray.ndim == 3:
        gray = gray[..., 0]
    if gray.dtype != np.uint8:
        gray = np.clip(np.round(gray * 255.0), 0, 255).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    fg = mask > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colorize(mask, num_classes)[fg].astype(np.float32)
    return np.round(rgb).astype(np.uint8)


def contact_sheet(tiles: list[np.ndarray], columns: int, gap: int = 2) -> np.ndarray:
    """Lay equally sized uint8 RGB tiles out in a grid with white gaps."""
    h, w = tiles[0].shape[:2]
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tile
    return sheet
