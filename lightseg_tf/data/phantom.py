"""Synthetic fetal-head ultrasound phantom (trans-ventricular plane) with exact ground truth.

The phantom is the embedded default dataset: the main job and the fast tests run on it
without a download. It imitates what makes real B-mode images hard, so a model trained on it
is not trivially perfect: a fan-shaped sector, a bright elliptical skull echo whose brightness
depends on the beam's incidence, acoustic shadows behind the near skull wall, depth
attenuation, multiplicative fully developed speckle (Rayleigh amplitude of a spatially
correlated complex Gaussian field), random pose, size, gain and contrast.

Classes: 0 background, 1 Brain (the head to the outer edge of the skull, like the HC18
annotation), 2 CSP (cavum septi pellucidi: a box-like hypoechoic space on the midline),
3 LV (lateral ventricle atrium: a hypoechoic crescent in the posterior half).
The head circumference is the Ramanujan perimeter of the Brain ellipse times the pixel size,
with the pixel size chosen so that the occipito-frontal diameter is 2nd/3rd-trimester-like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from lightseg_tf.anatomy.biometry import ellipse_perimeter, width_across
from lightseg_tf.core.io import write_csv_atomic, write_json_atomic, write_png_atomic
from lightseg_tf.core.log import progress as progress_bar

CLASSES = ("background", "Brain", "CSP", "LV")
PLANE = "trans-ventricular"


@dataclass(frozen=True)
class PhantomTruth:
    """Geometry of one phantom, in pixels unless the name says mm."""

    cx: float
    cy: float
    a: float  # semi-major axis of the head (outer skull) ellipse
    b: float  # semi-minor axis
    angle_deg: float  # major-axis angle from the image x axis, degrees, y pointing down
    pixel_size_mm: float
    hc_mm: float
    csp_width_mm: float
    lv_width_mm: float


def _correlated_speckle(rng: np.random.Generator, size: int) -> np.ndarray:
    """Rayleigh-distributed speckle with mean 1, laterally elongated like a real PSF."""
    re = rng.standard_normal((size, size)).astype(np.float32)
    im = rng.standard_normal((size, size)).astype(np.float32)
    sx, sy = 1.3 * size / 256 + 0.4, 0.6 * size / 256 + 0.3
    re = cv2.GaussianBlur(re, (0, 0), sigmaX=sx, sigmaY=sy)
    im = cv2.GaussianBlur(im, (0, 0), sigmaX=sx, sigmaY=sy)
    amp = np.sqrt(re * re + im * im)
    return amp / amp.mean()


def _smooth_field(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Low-frequency tissue texture in about [-1, 1]."""
    field = rng.standard_normal((size, size)).astype(np.float32)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=scale * size)
    return field / (np.abs(field).max() + 1e-6)


def make_phantom(size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, PhantomTruth]:
    """Render one phantom image.

    Args:
        size: side of the square image in pixels (>= 32).
        rng: numpy Generator; the same generator state gives the same image.

    Returns:
        image: float32 ``[size, size, 1]`` in [0, 1].
        mask: int32 ``[size, size]`` class ids (see ``CLASSES``).
        truth: the geometry and true measurements.
    """
    s = float(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5

    # Probe at the top: a fan-shaped sector.
    apex = np.array([s / 2 + rng.uniform(-0.05, 0.05) * s, -rng.uniform(0.05, 0.2) * s], np.float32)
    half_angle = math.radians(rng.uniform(33, 42))
    dx, dy = xx - apex[0], yy - apex[1]
    r = np.sqrt(dx * dx + dy * dy)
    phi = np.arctan2(dx, dy)  # 0 straight down
    r_max = rng.uniform(1.0, 1.12) * s
    sector = (np.abs(phi) <= half_angle) & (r <= r_max)

    # Head pose and size; pixel size chosen so the OFD is 55-100 mm.
    a = rng.uniform(0.25, 0.34) * s
    b = a * rng.uniform(0.72, 0.86)  # cephalic index 72-86 %
    cx = s / 2 + rng.uniform(-0.07, 0.07) * s
    cy = rng.uniform(0.46, 0.56) * s
    theta = math.radians(rng.uniform(-40, 40))
    pixel_size = rng.uniform(55.0, 100.0) / (2 * a)
    ct, st = math.cos(theta), math.sin(theta)
    u = (xx - cx) * ct + (yy - cy) * st  # along the major axis
    v = -(xx - cx) * st + (yy - cy) * ct  # across it
    re = np.sqrt((u / a) ** 2 + (v / b) ** 2)  # 1 on the outer skull edge
    head = re <= 1.0
    skull_t = rng.uniform(0.05, 0.08)
    skull = head & (re >= 1.0 - skull_t)
    inside = re < 1.0 - skull_t

    # Which end is the front: CSP lies frontally, the LV atrium posteriorly.
    front = 1.0 if rng.random() < 0.5 else -1.0
    uf = u * front
    csp_w_mm = rng.uniform(2.5, 7.5)
    csp_w = csp_w_mm / pixel_size
    csp_u0 = rng.uniform(0.12, 0.25) * a
    csp_len = rng.uniform(0.13, 0.2) * a
    csp = inside & (uf >= csp_u0) & (uf <= csp_u0 + csp_len) & (np.abs(v) <= csp_w / 2)

    # LV atrium: crescent = ellipse minus the same ellipse shifted towards the midline.
    lv_w_mm = rng.uniform(7.0, 10.0) if rng.random() < 0.15 else rng.uniform(3.0, 6.0)
    lv_w = lv_w_mm / pixel_size
    side = 1.0 if rng.random() < 0.5 else -1.0
    lv_cu = -rng.uniform(0.3, 0.45) * a
    lv_len = rng.uniform(0.16, 0.24) * a
    lv_cv = side * (0.2 * b + 0.5 * lv_w)
    e1 = ((uf - lv_cu) / lv_len) ** 2 + ((v - lv_cv) / (0.5 * lv_w + 0.35 * lv_len)) ** 2 <= 1
    e2 = ((uf - lv_cu - 0.25 * lv_len) / lv_len) ** 2 + (
        (v - lv_cv + side * 0.55 * lv_w) / (0.5 * lv_w + 0.35 * lv_len)
    ) ** 2 <= 1
    lv = inside & e1 & ~e2 & ~csp

    mask = np.zeros((size, size), np.int32)
    mask[head] = 1
    mask[csp] = 2
    mask[lv] = 3

    # Echogenicity map (before speckle and attenuation).
    tissue = 0.22 + 0.06 * _smooth_field(rng, size, 0.08)
    echo = np.where(head, 0.30 + 0.07 * _smooth_field(rng, size, 0.05), tissue)
    # Skull echo is strongest where the beam meets the bone at right angles.
    nx, ny = (u / a**2) * ct - (v / b**2) * st, (u / a**2) * st + (v / b**2) * ct
    nrm = np.sqrt(nx * nx + ny * ny) + 1e-6
    incid = np.abs((nx * dx + ny * dy) / (nrm * (r + 1e-6)))
    echo = np.where(skull, 0.45 + 0.55 * incid, echo)
    falx = inside & (np.abs(v) <= max(0.6, 0.012 * b)) & ~csp & (np.abs(u) < 0.85 * a)
    echo = np.where(falx, echo + rng.uniform(0.15, 0.3), echo)
    wall = np.abs(np.abs(v) - csp_w / 2) <= 0.9
    echo = np.where(inside & wall & (uf >= csp_u0) & (uf <= csp_u0 + csp_len), echo + 0.2, echo)
    echo = np.where(csp, rng.uniform(0.06, 0.12), echo)
    echo = np.where(lv, rng.uniform(0.05, 0.11), echo)

    # Acoustic shadows behind the near skull wall, along a few rays.
    dirx, diry = dx / (r + 1e-6), dy / (r + 1e-6)
    u0 = (apex[0] - cx) * ct + (apex[1] - cy) * st
    v0 = -(apex[0] - cx) * st + (apex[1] - cy) * ct
    du, dv = dirx * ct + diry * st, -dirx * st + diry * ct
    qa = du * du / a**2 + dv * dv / b**2
    qb = 2 * (u0 * du / a**2 + v0 * dv / b**2)
    qc = u0 * u0 / a**2 + v0 * v0 / b**2 - 1
    disc = qb * qb - 4 * qa * qc
    s_near = (-qb - np.sqrt(np.maximum(disc, 0))) / (2 * qa)
    behind = (disc > 0) & (r > s_near + skull_t * b)
    phi_c = math.atan2(cx - apex[0], cy - apex[1])
    for _ in range(rng.integers(0, 3)):
        centre = phi_c + rng.uniform(-0.6, 0.6) * half_angle
        width = math.radians(rng.uniform(1.5, 5.0))
        band = behind & (np.abs(phi - centre) <= width)
        echo = np.where(band, echo * rng.uniform(0.35, 0.7), echo)

    attenuation = np.exp(-rng.uniform(0.4, 1.3) * r / s)
    img = echo * attenuation * _correlated_speckle(rng, size)
    gain = rng.uniform(0.8, 1.5)
    gamma = rng.uniform(0.7, 1.3)
    img = np.clip(img * gain, 0, None) ** gamma
    img = np.where(sector, img, 0.0)
    img = np.clip(img / max(np.percentile(img[sector], 99.5), 1e-6), 0, 1).astype(np.float32)

    mask[~sector] = 0
    truth = PhantomTruth(
        cx=cx, cy=cy, a=a, b=b, angle_deg=math.degrees(theta), pixel_size_mm=pixel_size,
        hc_mm=ellipse_perimeter(a, b) * pixel_size, csp_width_mm=csp_w_mm,
        # The crescent's extent across the midline, measured on the rendered mask the way
        # lightseg measure defines the atrial width (its shape parameter lv_w_mm is not that).
        lv_width_mm=width_across(mask == 3, math.degrees(theta)) * pixel_size,
    )
    return img[..., None], mask, truth


def write_phantom_dataset(out: str | Path, n: int, size: int = 256, seed: int = 0,
                          progress: bool = False, unlabelled: int = 0) -> Path:
    """Write ``n`` phantoms (and ``unlabelled`` more without masks) as a native lightseg dataset folder.

    Layout: ``OUT/images/NNNN.png`` (8-bit gray), ``OUT/masks/NNNN.png`` (class ids),
    ``OUT/meta.csv`` (id, subject, plane, pixel_size_mm, hc_mm, csp_width_mm, lv_width_mm,
    cx, cy, a, b, angle_deg) and ``OUT/dataset.json``. Image ``i`` depends only on
    ``(seed, i)``, so the same seed always gives the same bytes. Every file is written
    atomically; ``dataset.json`` last, so a folder without it is incomplete. Images
    ``n .. n + unlabelled - 1`` get no mask file: the unannotated scans a user has in plenty,
    which the teachers label for distillation (the split's ``unlabelled`` side).

    Returns:
        The output folder.
    """
    if n < 1 or size < 32 or unlabelled < 0:
        raise ValueError("need n >= 1, unlabelled >= 0 and size >= 32")
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    fields = ["id", "subject", "plane", "pixel_size_mm", "hc_mm", "csp_width_mm", "lv_width_mm",
              "cx", "cy", "a", "b", "angle_deg", "unlabelled"]
    rows = []
    indices = range(n + unlabelled)
    if progress:
        indices = progress_bar(indices, "phantom")
    for i in indices:
        rng = np.random.default_rng([seed, i])
        image, mask, t = make_phantom(size, rng)
        rid = f"{i:05d}"
        write_png_atomic(out / "images" / f"{rid}.png", np.round(image[..., 0] * 255).astype(np.uint8))
        if i < n:
            write_png_atomic(out / "masks" / f"{rid}.png", mask.astype(np.uint8))
        rows.append({
            "id": rid, "subject": f"s{rid}", "plane": PLANE,
            **{k: f"{getattr(t, k):.6f}" for k in fields[3:-1]}, "unlabelled": "1" if i >= n else "",
        })
    write_csv_atomic(out / "meta.csv", rows, fields)
    write_json_atomic(out / "dataset.json", {
        "format": "lightseg", "name": "lightseg-phantom", "classes": list(CLASSES),
        "plane": PLANE, "size": size, "n": n, "unlabelled": unlabelled, "seed": seed,
        "note": "synthetic trans-ventricular fetal head phantom; Brain includes the skull",
    })
    return out
