"""Letterbox resizing that keeps the aspect ratio and can be undone exactly.

Coordinates are continuous pixel coordinates: pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``
and its centre is ``(j + 0.5, i + 0.5)``. A letterboxed point is
``x_lb = x * scale_x + pad_x`` (same for y), which matches OpenCV's half-pixel resize grid.
Padding is split evenly (the extra pixel on the right/bottom), filled with 0. Masks are
resampled nearest at half-pixel centres, ``src = floor((dst + 0.5) * n_in / n_out)`` in
float64 — written out here (not OpenCV's INTER_NEAREST, which samples ``floor(dst * scale)``
and shifts a mask by up to half a pixel) so the edge runner, the Kotlin and the browser ports
reproduce it bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Letterbox:
    """The transform from an ``orig_h x orig_w`` image to a ``size x size`` letterbox."""

    orig_h: int
    orig_w: int
    size: int
    new_h: int
    new_w: int
    pad_y: int
    pad_x: int

    @property
    def scale_x(self) -> float:
        return self.new_w / self.orig_w

    @property
    def scale_y(self) -> float:
        return self.new_h / self.orig_h

    def to_letterbox(self, x, y):
        """Map original continuous coordinates to letterbox coordinates."""
        return np.asarray(x) * self.scale_x + self.pad_x, np.asarray(y) * self.scale_y + self.pad_y

    def to_original(self, x, y):
        """Map letterbox continuous coordinates back to the original image."""
        return (np.asarray(x) - self.pad_x) / self.scale_x, (np.asarray(y) - self.pad_y) / self.scale_y

    def pixel_size_mm(self, original_pixel_size_mm: float | None) -> float | None:
        """Pixel size in the letterbox (mm), from the original's; None stays None."""
        if original_pixel_size_mm is None:
            return None
        return original_pixel_size_mm / min(self.scale_x, self.scale_y)

    def as_dict(self) -> dict:
        return asdict(self)


def letterbox_params(orig_h: int, orig_w: int, size: int) -> Letterbox:
    """The letterbox fitting an ``orig_h x orig_w`` image into ``size x size``."""
    scale = min(size / orig_h, size / orig_w)
    new_h = max(1, min(size, int(round(orig_h * scale))))
    new_w = max(1, min(size, int(round(orig_w * scale))))
    return Letterbox(orig_h, orig_w, size, new_h, new_w, (size - new_h) // 2, (size - new_w) // 2)


def _paste(resized: np.ndarray, lb: Letterbox) -> np.ndarray:
    out = np.zeros((lb.size, lb.size) + resized.shape[2:], resized.dtype)
    out[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w] = resized
    return out


def letterbox_image(image: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """Letterbox an image ``[H, W, C]`` (bilinear) into ``[size, size, C]``."""
    lb = letterbox_params(image.shape[0], image.shape[1], size)
    resized = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    if resized.ndim == 2 and image.ndim == 3:
        resized = resized[..., None]
    return _paste(resized, lb), lb


def nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """Source index of each of ``n_out`` output samples: nearest at half-pixel centres."""
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def resize_nearest(mask: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest-neighbour resize of ``[H, W]`` class ids to ``[out_h, out_w]``."""
    rows = nearest_indices(out_h, mask.shape[0])
    cols = nearest_indices(out_w, mask.shape[1])
    return mask[rows][:, cols]


def letterbox_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Letterbox a class-id mask ``[H, W]`` with nearest-neighbour sampling."""
    lb = letterbox_params(mask.shape[0], mask.shape[1], size)
    return _paste(resize_nearest(mask.astype(np.int32), lb.new_h, lb.new_w), lb)


def unletterbox_probs(probs: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Crop the padding off ``[size, size, C]`` scores and resize them (bilinear) to the original."""
    crop = np.ascontiguousarray(probs[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w])
    out = cv2.resize(crop.astype(np.float32), (lb.orig_w, lb.orig_h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(lb.orig_h, lb.orig_w, -1)


def reletterbox_probs(probs: np.ndarray, src: Letterbox, dst: Letterbox) -> np.ndarray:
    """Move scores ``[src.size, src.size, C]`` from one letterbox of an image to another of it.

    A teacher's probabilities at its own input side become a student's targets at another side
    with the image content aligned: the content box is resized onto the destination's content
    box (area averaging when shrinking, bilinear when growing), and the padding takes the
    whole canvas resized, so a square image is exactly one resize.

    Returns:
        float32 ``[dst.size, dst.size, C]``.
    """
    if (src.orig_h, src.orig_w) != (dst.orig_h, dst.orig_w):
        raise ValueError(f"letterboxes of different images: {src.orig_h}x{src.orig_w} vs {dst.orig_h}x{dst.orig_w}")
    probs = np.asarray(probs, np.float32)
    shrink = dst.size < src.size
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR

    def resize(a, w, h):  # cv2 drops a trailing channel axis of 1
        return cv2.resize(a, (w, h), interpolation=interp).reshape(h, w, -1)

    out = resize(probs, dst.size, dst.size)
    crop = np.ascontiguousarray(probs[src.pad_y:src.pad_y + src.new_h, src.pad_x:src.pad_x + src.new_w])
    out[dst.pad_y:dst.pad_y + dst.new_h, dst.pad_x:dst.pad_x + dst.new_w] = resize(crop, dst.new_w, dst.new_h)
    return out


def unletterbox_mask(mask: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Crop and resize (nearest) a letterboxed class map back to ``[orig_h, orig_w]``."""
    crop = mask[lb.pad_y:lb.pad_y + lb.new_h, lb.pad_x:lb.pad_x + lb.new_w]
    return resize_nearest(crop.astype(np.int32), lb.orig_h, lb.orig_w)


def letterbox_uint8(gray: np.ndarray, size: int) -> tuple[np.ndarray, Letterbox]:
    """The device-side letterbox: uint8 ``[H, W]`` -> uint8 ``[size, size]``, written out explicitly.

    Bilinear at half-pixel centres without antialiasing (OpenCV's INTER_LINEAR grid), float32
    arithmetic, rounded to uint8. This is the reference the edge runner, the Kotlin app and the
    browser demo reproduce (golden vectors from :mod:`lightseg_tf.deploy.golden`).
    """
    h, w = gray.shape[:2]
    lb = letterbox_params(h, w, size)

    def axis(n_out, n_in):
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        lo = np.floor(src).astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (src - lo).astype(np.float32)

    y0, y1, wy = axis(lb.new_h, h)
    x0, x1, wx = axis(lb.new_w, w)
    g = np.asarray(gray, np.float32).reshape(h, w)
    top = g[y0][:, x0] * (1 - wx) + g[y0][:, x1] * wx
    bottom = g[y1][:, x0] * (1 - wx) + g[y1][:, x1] * wx
    resized = np.clip(np.round(top * (1 - wy[:, None]) + bottom * wy[:, None]), 0, 255).astype(np.uint8)
    return _paste(resized, lb), lb
