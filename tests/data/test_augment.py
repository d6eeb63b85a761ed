import numpy as np
import pytest

from lightseg_tf.config import AugmentConfig
from lightseg_tf.data.augment import augment_pair, build_augmenter

GEOMETRIC_ONLY = dict(brightness_contrast=0.0, blur=0.0, speckle=0.0)


def _two_class_scene(size=64):
    """Classes 0 and 3 only, touching along an oblique edge: bilinear masks would invent 1 and 2."""
    yy, xx = np.mgrid[0:size, 0:size]
    mask = np.where(xx + 0.5 * yy > 0.6 * size, 3, 0).astype(np.int32)
    mask[10:20, 5:15] = 3
    image = (mask / 3.0).astype(np.float32)[..., None]
    return image, mask


@pytest.mark.parametrize("transform", ["affine", "grid_distortion", "elastic"])
def test_geometric_transforms_resample_mask_nearest_and_keep_alignment(transform):
    cfg = AugmentConfig(**{**GEOMETRIC_ONLY, "affine": 0.0, "grid_distortion": 0.0, "elastic": 0.0,
                           "hflip": 0.0, transform: 1.0})
    aug = build_augmenter(cfg, seed=1)
    image, mask = _two_class_scene()
    changed = 0
    for _ in range(5):
        img2, mask2 = augment_pair(aug, image, mask)
        assert img2.shape == image.shape and img2.dtype == np.float32
        assert mask2.shape == mask.shape and mask2.dtype == mask.dtype
        assert set(np.unique(mask2)) <= {0, 3}, "mask was interpolated, not nearest-neighbour"
        changed += not np.array_equal(mask2, mask)
        # Image and mask moved together: away from edges the image still encodes the mask.
        img_cls = np.where(img2[..., 0] > 0.5, 3, 0)
        assert (img_cls == mask2).mean() > 0.97
    assert changed >= 4


def test_flip_moves_image_and_mask_together():
    cfg = AugmentConfig(**GEOMETRIC_ONLY, affine=0.0, grid_distortion=0.0, elastic=0.0, hflip=1.0)
    image, mask = _two_class_scene()
    img2, mask2 = augment_pair(build_augmenter(cfg, seed=0), image, mask)
    np.testing.assert_array_equal(mask2, mask[:, ::-1])
    np.testing.assert_array_equal(img2, image[:, ::-1])


def test_photometric_transforms_leave_mask_alone_and_image_in_range():
    cfg = AugmentConfig(affine=0, grid_distortion=0, elastic=0, hflip=0, brightness_contrast=1.0,
                        blur=1.0, speckle=1.0)
    image, mask = _two_class_scene()
    img2, mask2 = augment_pair(build_augmenter(cfg, seed=0), image, mask)
    np.testing.assert_array_equal(mask2, mask)
    assert not np.array_equal(img2, image)
    assert img2.min() >= 0.0 and img2.max() <= 1.0


def test_disabled_augmentation_is_none():
    assert build_augmenter(AugmentConfig(enabled=False)) is None
