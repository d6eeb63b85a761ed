"""Online augmentation with albumentations, applied identically to image and mask.

Geometric transforms resample the mask with NEAREST neighbour (a bilinear mask invents class
ids between labels, e.g. 1.5 between Brain and LV rounds to CSP); out-of-image areas are
filled with background 0. Photometric transforms touch the image only.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from lightseg_tf.config import AugmentConfig


def build_augmenter(cfg: AugmentConfig, seed: int | None = None) -> A.Compose | None:
    """The albumentations pipeline described by ``cfg``; None when augmentation is off.

    Args:
        cfg: probabilities and ranges of each transform (0 disables one).
        seed: seed of the pipeline's own random generator (None = random).
    """
    if not cfg.enabled:
        return None
    nearest = {"mask_interpolation": cv2.INTER_NEAREST, "border_mode": cv2.BORDER_CONSTANT,
               "fill": 0, "fill_mask": 0}
    transforms = [
        A.HorizontalFlip(p=cfg.hflip),
        A.VerticalFlip(p=cfg.vflip),
        A.Affine(translate_percent=(-cfg.shift, cfg.shift), scale=(1 - cfg.scale, 1 + cfg.scale),
                 rotate=(-cfg.rotate, cfg.rotate), interpolation=cv2.INTER_LINEAR, p=cfg.affine,
                 **nearest),
        A.GridDistortion(num_steps=5, distort_limit=0.2, interpolation=cv2.INTER_LINEAR,
                         p=cfg.grid_distortion, **nearest),
        # approximate=True: a separable blur of the displacement field, ~5x faster at 256 px.
        A.ElasticTransform(alpha=30, sigma=6, approximate=True, interpolation=cv2.INTER_LINEAR,
                           p=cfg.elastic, **nearest),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.25, p=cfg.brightness_contrast),
        A.GaussianBlur(blur_limit=(3, 7), p=cfg.blur),
        # Elementwise multiplicative noise is the speckle model.
        A.MultiplicativeNoise(multiplier=(0.75, 1.25), elementwise=True, p=cfg.speckle),
    ]
    return A.Compose([t for t in transforms if t.p > 0], seed=seed)


def augment_pair(aug: A.Compose, image: np.ndarray, mask: np.ndarray, soft: np.ndarray | None = None):
    """Apply ``aug`` to float32 ``[H, W, 1]`` image and int ``[H, W]`` mask; same shapes out.

    The image is clipped back to [0, 1] and the mask keeps its dtype. ``soft`` (optional,
    ``[H, W, C]`` per-pixel class probabilities such as a teacher's) moves with the mask
    (nearest neighbour, so each pixel keeps a valid distribution); pixels that came from
    outside the image get all their mass on background, like the mask's fill.

    Returns:
        ``(image, mask)``, or ``(image, mask, soft)`` when ``soft`` is given.
    """
    extra = {} if soft is None else {"masks": [np.asarray(soft, np.float32)]}
    out = aug(image=image, mask=mask, **extra)
    img = np.clip(out["image"], 0.0, 1.0).astype(np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if soft is None:
        return img, out["mask"].astype(mask.dtype)
    moved = np.array(out["masks"][0], np.float32)
    moved[..., 0] += np.clip(1.0 - moved.sum(-1), 0.0, None)
    return img, out["mask"].astype(mask.dtype), moved
