"""Fetal biometry from masks: ellipse fitting and head circumference.

Coordinates are continuous pixel coordinates of the image the mask belongs to (pixel
``(i, j)`` centred at ``(j + 0.5, i + 0.5)``); multiply lengths by the pixel size for mm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lightseg_tf.anatomy.gestational_age import head_dating
from lightseg_tf.anatomy.precision import round_half_up, round_mm
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


def boundary_points(region: np.ndarray) -> np.ndarray:
    """Centres ``(x + 0.5, y + 0.5)`` of the outer-boundary pixels of a hole-free ``region``.

    A boundary pixel is a region pixel on the image edge or with a 4-neighbour outside the
    region; each counts once, in raster order. (OpenCV's contour tracing gives the same pixels
    but visits one-pixel-wide parts twice.) The Kotlin and browser ports use this definition.
    """
    region = np.asarray(region, bool)
    inner = np.zeros_like(region)
    inner[1:-1, 1:-1] = (region[1:-1, 1:-1] & region[:-2, 1:-1] & region[2:, 1:-1]
                         & region[1:-1, :-2] & region[1:-1, 2:])
    ys, xs = np.nonzero(region & ~inner)
    return np.stack([xs + 0.5, ys + 0.5], axis=1).astype(np.float64)


def fit_ellipse_direct(points: np.ndarray, weights: np.ndarray | None = None) -> Ellipse | None:
    """Direct least-squares ellipse through ``points`` ``[N, 2]`` (x, y).

    Fitzgibbon, Pilu & Fisher, "Direct least square fitting of ellipses", IEEE PAMI 21(5), 1999,
    in the numerically stable form of Halir & Flusser, WSCG 1998: the conic
    ``A x^2 + B xy + C y^2 + D x + E y + F = 0`` minimising the algebraic distance subject to
    ``4AC - B^2 = 1``, which is always an ellipse. The points are first centred on their mean
    and scaled by their RMS distance to it. Same steps, in float64, as ``fitEllipse`` in
    ``tflite/web/core.js`` and ``Biometry.fitEllipse`` in the Android core (OpenCV calls this
    method ``fitEllipseDirect``; its ``fitEllipse`` is a different, unconstrained fit).

    Args:
        points: ``[N, 2]`` (x, y).
        weights: optional ``[N]`` non-negative weight of each point's squared algebraic distance
            (a weight of 0 drops the point; None: all 1, the form the browser and Android ports use).

    Returns:
        The ellipse (semi-axes as fitted, no offset), or None for fewer than 5 points (of positive
        weight) or a degenerate set (collinear points, no ellipse solution).
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if weights is None:
        w = np.ones(len(pts))
    else:
        w = np.asarray(weights, np.float64).reshape(-1)
        if len(w) != len(pts) or not np.all(w >= 0):
            raise ValueError(f"weights must be {len(pts)} non-negative numbers, one per point")
    if np.count_nonzero(w) < 5:
        return None
    mean = w @ pts / w.sum()
    scale = math.sqrt(float(w @ ((pts - mean) ** 2).sum(axis=1) / w.sum()))
    if scale == 0:
        return None
    x, y = ((pts - mean) / scale).T
    d1 = np.stack([x * x, x * y, y * y], axis=1)  # quadratic part
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)  # linear part
    wd1, wd2 = d1 * w[:, None], d2 * w[:, None]
    s1, s2, s3 = d1.T @ wd1, d1.T @ wd2, d2.T @ wd2
    if abs(np.linalg.det(s3)) < 1e-300:
        return None
    t = -np.linalg.solve(s3, s2.T)  # linear coefficients = t @ quadratic ones
    m = s1 + s2 @ t
    m = np.stack([m[2] / 2, -m[1], m[0] / 2])  # inv(C1) @ m, C1 = [[0, 0, 2], [0, -1, 0], [2, 0, 0]]
    values, vectors = np.linalg.eig(m)
    ok = [k for k in range(3) if abs(values[k].imag) < 1e-12
          and 4 * vectors[0, k].real * vectors[2, k].real - vectors[1, k].real ** 2 > 0]
    if not ok:
        return None
    a1 = vectors[:, ok[0]].real
    aa, bb, cc = a1
    dd, ee, ff = t @ a1
    # Centre where the gradient vanishes; semi-axes from the conic's value there and the
    # eigenvalues of its quadratic form (the smaller eigenvalue belongs to the major axis).
    den = bb * bb - 4 * aa * cc
    cx, cy = (2 * cc * dd - bb * ee) / den, (2 * aa * ee - bb * dd) / den
    f0 = aa * cx * cx + bb * cx * cy + cc * cy * cy + dd * cx + ee * cy + ff
    lam, axes = np.linalg.eigh(np.array([[aa, bb / 2], [bb / 2, cc]]))
    if f0 == 0 or np.any(-f0 / lam <= 0):
        return None
    a, b = np.sqrt(-f0 / lam) * scale
    ux, uy = axes[:, 0] if a >= b else axes[:, 1]
    a, b = max(a, b), min(a, b)
    angle = math.degrees(math.atan2(uy, ux))
    return Ellipse(float(cx * scale + mean[0]), float(cy * scale + mean[1]), float(a), float(b),
                   float((angle + 90.0) % 180.0 - 90.0))


def fit_head_ellipse(mask: np.ndarray) -> Ellipse | None:
    """The head ellipse: :func:`fit_ellipse_direct` on the outer boundary of the largest component.

    The boundary points are pixel centres, half a pixel inside the region's edge, so the fitted
    semi-axes grow by half a pixel: a rasterised ellipse of semi-axes (a, b) fits back to about
    (a, b). The browser and Android ports compute the same ellipse from the same class map.

    Returns:
        The ellipse, or None when the mask holds fewer than 5 boundary points or none fits.
    """
    return grown_half_pixel(fit_ellipse_direct(boundary_points(largest_component(np.asarray(mask, bool)))))


def grown_half_pixel(ell: Ellipse | None) -> Ellipse | None:
    """``ell`` with both semi-axes half a pixel longer: from a fit through boundary pixel centres
    (half a pixel inside the region's edge) to the region's edge; None stays None."""
    return None if ell is None else Ellipse(ell.cx, ell.cy, ell.a + 0.5, ell.b + 0.5, ell.angle_deg)


def radial_distances(points: np.ndarray, ell: Ellipse) -> np.ndarray:
    """Signed radial distance ``[N]`` (pixels, + outside) of ``points`` ``[N, 2]`` to ``ell``.

    For a point at ``rho = sqrt((u/a)^2 + (v/b)^2)`` in the ellipse's frame, the ray from the
    centre meets the ellipse at ``1/rho`` of the point's distance, so the distance along it is
    ``(1 - 1/rho)`` times that distance.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    t = math.radians(ell.angle_deg)
    dx, dy = pts[:, 0] - ell.cx, pts[:, 1] - ell.cy
    u, v = dx * math.cos(t) + dy * math.sin(t), -dx * math.sin(t) + dy * math.cos(t)
    rho = np.sqrt((u / ell.a) ** 2 + (v / ell.b) ** 2)
    return np.hypot(u, v) * (1.0 - 1.0 / np.maximum(rho, 1e-12))


def ellipse_region(ell: Ellipse, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``[H, W]`` mask of the pixels whose centres lie inside ``ell``.

    The inverse of :func:`fit_head_ellipse`: the filled ellipse of a fit fits back to it.
    """
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]]
    t = math.radians(ell.angle_deg)
    dx, dy = xs + 0.5 - ell.cx, ys + 0.5 - ell.cy
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    return (u / ell.a) ** 2 + (v / ell.b) ** 2 <= 1.0


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
    """Head circumference (mm, unrounded: for accuracy studies) of the ellipse fitted to ``mask``;
    None when none fits. Reports use :func:`measure_mask`, which rounds to 0.1 mm."""
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
    points = len(boundary_points(head))
    if points < MIN_BOUNDARY_POINTS:
        flags.append(f"degenerate head ellipse: {points} boundary points, too few to measure")
    if ell.b / ell.a < MIN_AXIS_RATIO:
        flags.append(f"degenerate head ellipse: axis ratio {ell.b / ell.a:.2f} (below {MIN_AXIS_RATIO}), "
                     "not a head shape; check the segmentation")
    area = math.pi * ell.a * ell.b / max(int(head.sum()), 1)
    if not 0.5 <= area <= 2.0:
        flags.append(f"degenerate head ellipse: its area is {area:.2f} x the head's; check the segmentation")
    return flags


def ellipse_lengths(ell: Ellipse, scale: float) -> dict:
    """Unrounded HC (Ramanujan), BPD and OFD (minor and major axes) of ``ell`` times ``scale``."""
    return {"hc": ell.perimeter * scale, "bpd": 2 * ell.b * scale, "ofd": 2 * ell.a * scale}


def measure_mask(mask: np.ndarray, classes, pixel_size_mm: float | None, ga_weeks: float | None = None) -> dict:
    """Biometry of one class map at ORIGINAL resolution, as reported.

    The head ellipse is fitted to the union of the head-like classes (Brain/head/fetal head
    plus the structures inside it). HC (Ramanujan), BPD and OFD (the ellipse's minor and major
    axes), cephalic index, centre and angle; CSP width and LV atrial width measured across
    the midline (the head's major axis) where those classes exist. Lengths in mm when
    ``pixel_size_mm`` is known, else in pixels (``units`` says which), reported to 0.1
    (:func:`~lightseg_tf.anatomy.precision.round_mm`); ``ellipse_px`` keeps the unrounded fit.
    Every flag decides on the reported value (a CSP of 1.971 mm reads 2.0 mm: inside 2-9 mm).

    In mm, the head also gets its GA from HC (``ga_weeks_hadlock``, ``ga_weeks_intergrowth``) and,
    with ``ga_weeks`` (the GA known from dating), HC and BPD z-scores and INTERGROWTH-21st centiles,
    flagged outside the 3rd-97th (:func:`~lightseg_tf.anatomy.gestational_age.head_dating`).
    ``notes`` says why a value is missing.
    :func:`head_shape_flags` adds a head cut by the image border or a degenerate ellipse.
    """
    names = [c.lower() for c in classes]
    if pixel_size_mm is not None:
        pixel_size_mm = check_pixel_size(pixel_size_mm, "measure")
    scale = pixel_size_mm or 1.0
    units = "mm" if pixel_size_mm else "px"
    head_ids = [k for k, n in enumerate(names) if k > 0 and n in HEAD_CLASS_NAMES]
    out: dict = {"units": units, "pixel_size_mm": pixel_size_mm, "flags": [], "notes": []}
    head = largest_component(np.isin(mask, head_ids))
    ell = fit_head_ellipse(head) if head.any() else None
    if ell is None:
        out["flags"].append("no head found" if head.sum() < 5 else "degenerate head: no ellipse fits its outline")
        return out
    out["flags"] += head_shape_flags(head, ell)
    out.update({k: round_mm(v) for k, v in ellipse_lengths(ell, scale).items()})
    out.update({
        "cephalic_index": round_half_up(100.0 * ell.b / ell.a, 1), "centre_x": round_mm(ell.cx * scale),
        "centre_y": round_mm(ell.cy * scale), "angle_deg": round_half_up(ell.angle_deg, 1),
        "ellipse_px": {"cx": ell.cx, "cy": ell.cy, "a": ell.a, "b": ell.b, "angle_deg": ell.angle_deg},
    })
    if "csp" in names:
        csp = largest_component(mask == names.index("csp"))
        out["csp_width"] = round_mm(width_across(csp, ell.angle_deg) * scale) if csp.any() else None
        if out["csp_width"] is None:
            out["flags"].append("CSP not visible")
        elif pixel_size_mm and not CSP_RANGE_MM[0] <= out["csp_width"] <= CSP_RANGE_MM[1]:
            out["flags"].append(f"CSP width {out['csp_width']:.1f} mm outside {CSP_RANGE_MM[0]}-{CSP_RANGE_MM[1]} mm")
    if "lv" in names:
        labels, n = ndimage.label(mask == names.index("lv"), structure=np.ones((3, 3), bool))
        widths = [width_across(labels == k, ell.angle_deg) for k in range(1, n + 1)]
        out["lv_width"] = round_mm(max(widths) * scale) if widths else None
        if pixel_size_mm and out["lv_width"] is not None:
            out["lv_flag"] = lv_flag(out["lv_width"])
            if out["lv_flag"] != "normal":
                out["flags"].append(f"{out['lv_flag']} ventriculomegaly (LV atrium {out['lv_width']:.1f} mm)")
    if pixel_size_mm:
        fields, flags, notes = head_dating(out["hc"], out["bpd"], ga_weeks)
        out.update(fields)
        out["flags"] += flags
        out["notes"] += notes
    elif ga_weeks is not None:
        out["notes"].append("no GA or centiles: the pixel size is unknown, so lengths are in pixels")
    return out
