"""Fetal biometry from masks: ellipse fitting and head circumference.

Coordinates are continuous pixel coordinates of the image the mask belongs to (pixel
``(i, j)`` centred at ``(j + 0.5, i + 0.5)``); multiply lengths by the pixel size for mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage

from lightseg_tf.errors import LightsegError


def ellipse_perimeter(a: float, b: float) -> float:
    """Ramanujan's second approximation of an ellipse's perimeter (semi-axes ``a``, ``b``).

    Ramanujan, "Modular equations and approximations to pi", Q. J. Math. 45, 1914;
    relative error below 1e-9 for fetal-head eccentricities.
    """
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


@dataclass(frozen=True)
class Ellipse:
    """An ellipse: centre, semi-axes (a >= b) and the major axis' angle (degrees, y down)."""

    cx: float
    cy: float
    a: float
    b: float
    angle_deg: float

    @property
    def perimeter(self) -> float:
        return ellipse_perimeter(self.a, self.b)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of a boolean mask, holes filled."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return np.zeros_like(mask, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return ndimage.binary_fill_holes(labels == (1 + int(np.argmax(sizes))))


def outer_boundary(region: np.ndarray) -> np.ndarray:
    """Pixel-centre points ``[N, 2]`` (x, y) of the longest outer contour of a boolean mask."""
    contours, _ = cv2.findContours(np.asarray(region, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    return max(contours, key=len)[:, 0, :].astype(np.float64) + 0.5  # pixel centres


def fit_head_ellipse(mask: np.ndarray) -> Ellipse | None:
    """Least-squares ellipse through the outer boundary of the largest component of ``mask``.

    Fitzgibbon's direct fit (OpenCV ``fitEllipse``) on the outer contour's points, moved from
    OpenCV's integer pixel grid to pixel centres, and the boundary offset by half a pixel
    outwards so a rasterised ellipse of semi-axes (a, b) fits back to about (a, b).

    Returns:
        The ellipse, or None when the mask holds fewer than 5 boundary points or they admit no
        finite ellipse.
    """
    pts = outer_boundary(largest_component(np.asarray(mask, bool)))
    if len(pts) < 5:
        return None
    (cx, cy), (d1, d2), angle = cv2.fitEllipse(pts.astype(np.float32))
    if not np.all(np.isfinite([cx, cy, d1, d2, angle])):
        return None
    # The contour runs through boundary pixel centres, half a pixel inside the region's edge.
    a, b = d1 / 2 + 0.5, d2 / 2 + 0.5
    if b > a:
        a, b, angle = b, a, angle + 90.0
    return Ellipse(float(cx), float(cy), float(a), float(b), float((angle + 90.0) % 180.0 - 90.0))


def check_pixel_size(value, where: str) -> float:
    """``value`` as mm per pixel; a LightsegError naming ``where`` unless it is finite and > 0."""
    try:
        mm = float(value)
    except (TypeError, ValueError):
        mm = math.nan
    if not (math.isfinite(mm) and mm > 0):
        raise LightsegError(f"{where}: pixel size {value!r} is not a positive number of mm per pixel; "
                            "give the scanner's value (e.g. 0.1), or none to measure in pixels")
    return mm


def head_circumference_mm(mask: np.ndarray, pixel_size_mm: float) -> float | None:
    """Head circumference (mm) of the ellipse fitted to ``mask``; None when none fits."""
    e = fit_head_ellipse(mask)
    return None if e is None else e.perimeter * pixel_size_mm


# Reference ranges (cited in the README too).
# Lateral ventricle atrium: normal < 10 mm; ventriculomegaly mild 10-12, moderate 12-15, severe >= 15 mm
#   (Society for Maternal-Fetal Medicine, Fox et al., Am J Obstet Gynecol 2018;219:B2-B9;
#    ISUOG CNS guideline, Malinger et al., Ultrasound Obstet Gynecol 2020;56:476-484).
# Cavum septi pellucidi: should be visible in the trans-ventricular / trans-thalamic planes
#   (ISUOG 2020); width outside about 2-9 mm is flagged for review.
LV_LIMITS_MM = (10.0, 12.0, 15.0)
CSP_RANGE_MM = (2.0, 9.0)
# A fitted head below these is not a head shape to measure: fetal cephalic indices run about
# 70-85 (BPD/OFD 0.7-0.85), and a few dozen boundary pixels cannot fix an ellipse's axes.
MIN_AXIS_RATIO = 0.5
MIN_BOUNDARY_POINTS = 20

HEAD_CLASS_NAMES = {"brain", "head", "fetal head", "skull", "csp", "lv"}


def width_across(mask: np.ndarray, angle_deg: float) -> float:
    """Extent (pixels) of ``mask`` along the direction perpendicular to an axis at ``angle_deg``.

    Pixel centres are projected on the unit normal of the axis; one pixel is added so a
    single pixel measures 1. Returns 0 for an empty mask.
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0.0
    t = math.radians(angle_deg)
    proj = -(xs + 0.5) * math.sin(t) + (ys + 0.5) * math.cos(t)
    return float(proj.max() - proj.min() + 1.0)


def lv_flag(width_mm: float | None) -> str | None:
    """"normal", "mild", "moderate" or "severe" ventriculomegaly; None when unknown."""
    if width_mm is None:
        return None
    mild, moderate, severe = LV_LIMITS_MM
    if width_mm < mild:
        return "normal"
    return "mild" if width_mm < moderate else ("moderate" if width_mm < severe else "severe")


def head_shape_flags(head: np.ndarray, ell: Ellipse) -> list[str]:
    """Why a head's ellipse may not be trusted: cut by the image border, too few boundary points,
    too elongated to be a head, or a fit whose area is not within a factor 2 of the head's (the
    least-squares fit of a thin or ragged outline can land anywhere)."""
    flags = []
    if head[0].any() or head[-1].any() or head[:, 0].any() or head[:, -1].any():
        flags.append("head cut by the image border: HC underestimated")
    points = len(outer_boundary(head))
    if points < MIN_BOUNDARY_POINTS:
        flags.append(f"degenerate head ellipse: {points} boundary points, too few to measure")
    if ell.b / ell.a < MIN_AXIS_RATIO:
        flags.append(f"degenerate head ellipse: axis ratio {ell.b / ell.a:.2f} (below {MIN_AXIS_RATIO}), "
                     "not a head shape; check the segmentation")
    area = math.pi * ell.a * ell.b / max(int(head.sum()), 1)
    if not 0.5 <= area <= 2.0:
        flags.append(f"degenerate head ellipse: its area is {area:.2f} x the head's; check the segmentation")
    return flags


def measure_mask(mask: np.ndarray, classes, pixel_size_mm: float | None) -> dict:
    """Biometry of one class map at ORIGINAL resolution.

    The head ellipse is fitted to the union of the head-like classes (Brain/head/fetal head
    plus the structures inside it). HC (Ramanujan), BPD and OFD (the ellipse's minor and major
    axes), cephalic index, centre and angle; CSP width and LV atrial width measured across
    the midline (the head's major axis) where those classes exist; flags against the ranges
    above, and :func:`head_shape_flags` (a head cut by the border, a degenerate ellipse).
    Lengths in mm when ``pixel_size_mm`` is known, else in pixels (``units`` says which).
    """
    names = [c.lower() for c in classes]
    if pixel_size_mm is not None:
        pixel_size_mm = check_pixel_size(pixel_size_mm, "measure")
    scale = pixel_size_mm or 1.0
    units = "mm" if pixel_size_mm else "px"
    head_ids = [k for k, n in enumerate(names) if k > 0 and n in HEAD_CLASS_NAMES]
    out: dict = {"units": units, "pixel_size_mm": pixel_size_mm, "flags": []}
    head = largest_component(np.isin(mask, head_ids))
    ell = fit_head_ellipse(head) if head.any() else None
    if ell is None:
        out["flags"].append("no head found" if head.sum() < 5 else "degenerate head: no ellipse fits its outline")
        return out
    out["flags"] += head_shape_flags(head, ell)
    out.update({
        "hc": ell.perimeter * scale, "bpd": 2 * ell.b * scale, "ofd": 2 * ell.a * scale,
        "cephalic_index": 100.0 * ell.b / ell.a, "centre_x": ell.cx * scale, "centre_y": ell.cy * scale,
        "angle_deg": ell.angle_deg, "ellipse_px": {"cx": ell.cx, "cy": ell.cy, "a": ell.a, "b": ell.b,
                                                     "angle_deg": ell.angle_deg},
    })
    if "csp" in names:
        csp = largest_component(mask == names.index("csp"))
        out["csp_width"] = width_across(csp, ell.angle_deg) * scale if csp.any() else None
        if out["csp_width"] is None:
            out["flags"].append("CSP not visible")
        elif pixel_size_mm and not CSP_RANGE_MM[0] <= out["csp_width"] <= CSP_RANGE_MM[1]:
            out["flags"].append(f"CSP width {out['csp_width']:.1f} mm outside {CSP_RANGE_MM[0]}-{CSP_RANGE_MM[1]} mm")
    if "lv" in names:
        labels, n = ndimage.label(mask == names.index("lv"), structure=np.ones((3, 3), bool))
        widths = [width_across(labels == k, ell.angle_deg) for k in range(1, n + 1)]
        out["lv_width"] = max(widths) * scale if widths else None
        if pixel_size_mm and out["lv_width"] is not None:
            out["lv_flag"] = lv_flag(out["lv_width"])
            if out["lv_flag"] != "normal":
                out["flags"].append(f"{out['lv_flag']} ventriculomegaly (LV atrium {out['lv_width']:.1f} mm)")
    return out
