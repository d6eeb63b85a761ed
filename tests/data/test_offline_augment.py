"""``lightseg data augment``: augmented copies of the TRAIN images only, subjects kept, masks aligned."""

import json

import cv2
import numpy as np
import pytest

from lightseg_tf.cli import main
from lightseg_tf.config import AugmentConfig
from lightseg_tf.data.offline_augment import augment_offline
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.split import load_split, make_split, save_split
from lightseg_tf.errors import LightsegError

GEOMETRIC = AugmentConfig(affine=1.0, shift=0.1, scale=0.15, rotate=20.0, hflip=0.5, brightness_contrast=0.0,
                          blur=0.0, grid_distortion=0.0, elastic=0.0, speckle=0.0)


def _class_means(image, mask, num_classes):
    return np.array([image[mask == c].mean() if (mask == c).any() else 0.0 for c in range(num_classes)])


def _fit(image, mask, means):
    """Correlation of an image (speckle smoothed out) with the picture its mask paints (each class at its mean)."""
    return float(np.corrcoef(cv2.blur(image, (7, 7)).ravel(), means[mask].ravel())[0, 1])


def _head_iou(a, b):
    """IoU of the head (every non-background class) in two masks."""
    return ((a > 0) & (b > 0)).sum() / max(((a > 0) | (b > 0)).sum(), 1)


def test_copies_are_of_train_images_only_keep_subjects_and_stay_aligned(phantom_dir, tmp_path):
    src = read_dataset(phantom_dir)
    split = make_split(src, 0.25, 0.25, seed=0)
    save_split(split, tmp_path / "split.json")
    out = augment_offline(phantom_dir, None, tmp_path / "split.json", tmp_path / "aug", copies=2, seed=1,
                          augment=GEOMETRIC)
    aug = read_dataset(out)
    new = load_split(out / "split.json", aug)  # also checks subjects never straddle sides
    assert new["val"] == split["val"] and new["test"] == split["test"]
    copies = [i for i in new["train"] if "_aug" in i]
    assert sorted(copies) == sorted(f"{i}_aug{k}" for i in split["train"] for k in range(2))
    assert len(aug) == len(src) + 2 * len(split["train"])
    by_id = {r.id: r for r in aug.records}
    src_by_id = {r.id: r for r in src.records}
    moved = 0
    for cid in copies:
        base = cid.rsplit("_aug", 1)[0]
        assert by_id[cid].subject == src_by_id[base].subject
        image, mask = aug.load_pair(by_id[cid])
        s_image, s_mask = src.load_pair(src_by_id[base])
        means = _class_means(s_image[..., 0], s_mask, src.num_classes)
        aligned = _fit(image[..., 0], mask, means)
        assert aligned > 0.8 * _fit(s_image[..., 0], s_mask, means), cid  # the mask moved with its image
        moved += _head_iou(mask, s_mask) < 0.9
    assert moved >= len(copies) // 2, moved  # the copies are not the originals
    # Unaugmented images are copied unchanged (8-bit PNG round trip).
    for rid in split["val"] + split["test"]:
        np.testing.assert_allclose(aug.load_pair(by_id[rid])[0], src.load_pair(src_by_id[rid])[0], atol=1 / 255)


def test_cli_refuses_a_folder_that_already_holds_a_dataset(phantom_dir, tmp_path):
    src = read_dataset(phantom_dir)
    save_split(make_split(src, 0.25, 0.25, seed=0), tmp_path / "split.json")
    args = ["data", "augment", str(phantom_dir), "--split", str(tmp_path / "split.json"), "--out",
            str(tmp_path / "aug"), "--copies", "1"]
    assert main(args) == 0
    assert json.loads((tmp_path / "aug" / "dataset.json").read_text())["classes"] == list(src.classes)
    with pytest.raises(LightsegError, match="already holds a dataset"):
        augment_offline(phantom_dir, None, tmp_path / "split.json", tmp_path / "aug", copies=1)


def test_a_flip_moves_image_and_mask_together(phantom_dir, tmp_path):
    src = read_dataset(phantom_dir)
    split = make_split(src, 0.25, 0.25, seed=0)
    save_split(split, tmp_path / "split.json")
    flip = AugmentConfig(affine=0.0, hflip=1.0, brightness_contrast=0.0, blur=0.0, grid_distortion=0.0,
                         elastic=0.0, speckle=0.0)
    aug = read_dataset(augment_offline(phantom_dir, None, tmp_path / "split.json", tmp_path / "aug", copies=1,
                                       augment=flip))
    by_id = {r.id: r for r in aug.records}
    for rid in split["train"]:
        image, mask = aug.load_pair(by_id[f"{rid}_aug0"])
        s_image, s_mask = aug.load_pair(by_id[rid])
        np.testing.assert_array_equal(mask, s_mask[:, ::-1])
        np.testing.assert_allclose(image, s_image[:, ::-1], atol=1 / 255)
