"""Offline augmentation: write N augmented copies of the TRAIN images of an existing split.

The split is made first (by subject), so augmented copies of a training image can never leak
into validation or test; each copy keeps its source's subject id.
"""

from __future__ import annotations

from pathlib import Path

from lightseg_tf.config import AugmentConfig
from lightseg_tf.data.augment import augment_pair, build_augmenter
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.readers.native import write_native_index, write_native_pair
from lightseg_tf.data.split import load_split, save_split
from lightseg_tf.errors import LightsegError


def _file_id(record_id: str) -> str:
    """A record id usable as a file stem (npz ids such as ``train/00012`` hold a slash)."""
    return record_id.replace("/", "__")


def augment_offline(src, format, split_file, out, copies: int, seed: int = 0,
                    augment: AugmentConfig | None = None) -> Path:
    """Copy every image of ``src`` into ``out`` (native layout) plus augmented train copies.

    Returns:
        ``out``, holding images/, masks/, meta.csv, dataset.json and split.json (the same
        val/test ids, train extended with the copies).
    """
    if copies < 1:
        raise LightsegError("--copies must be >= 1")
    dataset = read_dataset(src, format)
    split = load_split(split_file, dataset)
    out = Path(out)
    if (out / "dataset.json").exists():
        raise LightsegError(f"{out}: already holds a dataset; choose an empty folder")
    aug = build_augmenter(augment or AugmentConfig(), seed=seed)
    train_ids = set(split["train"])
    rows, new_train = [], [_file_id(i) for i in split["train"]]
    for rec in dataset.records:
        image, mask = dataset.load_pair(rec)
        variants = [(_file_id(rec.id), image, mask)]
        if rec.id in train_ids:
            for k in range(copies):
                img_k, mask_k = augment_pair(aug, image, mask)
                variants.append((f"{_file_id(rec.id)}_aug{k}", img_k, mask_k))
                new_train.append(variants[-1][0])
        rows += [write_native_pair(out, rid, img, msk, rec) for rid, img, msk in variants]
    save_split({"train": new_train, "val": [_file_id(i) for i in split["val"]],
                "test": [_file_id(i) for i in split["test"]]}, out / "split.json",
               source=str(src), copies=copies, seed=seed)
    write_native_index(out, rows, dataset.classes, augmented_from=str(src), copies=copies)
    return out
