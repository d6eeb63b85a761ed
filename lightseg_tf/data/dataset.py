"""The one in-memory description of a segmentation dataset that every reader produces.

Data contract (../shared/DESIGN.md): an image is float32 ``[H, W, 1]`` in [0, 1]; a mask is
int32 ``[H, W]`` of class ids with 0 = background. Class names travel with the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import read_class_mask, read_gray


@dataclass(frozen=True)
class Record:
    """One image (and its mask, when annotated) with its metadata.

    Attributes:
        id: unique key of the image inside its dataset (used by split files).
        image: path of the image file.
        mask: path of the mask file, or None for unannotated images.
        subject: subject (patient / recording) id; splits never separate one subject.
        plane: acquisition plane (e.g. "trans-ventricular") where known.
        pixel_size_mm: physical size of one pixel in mm where known, else None.
        hc_mm: reference head circumference in mm where the dataset gives one.
        unlabelled: left unannotated on purpose (no mask): only the teachers label it, for
            distillation (the split's ``unlabelled`` side). A missing mask without this flag is an
            error that training reports, never a silent transfer image.
    """

    id: str
    image: str
    mask: str | None
    subject: str
    plane: str | None = None
    pixel_size_mm: float | None = None
    hc_mm: float | None = None
    unlabelled: bool = False


@dataclass
class SegDataset:
    """A list of records plus the class names and how to decode them.

    Readers for formats whose masks are not plain class-id PNGs (colour maps, COCO, npz,
    MetaImage) subclass this and override :meth:`load_mask` / :meth:`load_image`.

    Attributes:
        format: name of the reader that produced it.
        classes: class names, index = class id, ``classes[0]`` is background.
        records: the images.
        root: the folder it was read from.
    """

    format: str
    classes: tuple[str, ...]
    records: list[Record]
    root: Path = field(default_factory=Path)

    def __post_init__(self):
        self.classes = tuple(self.classes)
        if not self.records:
            raise LightsegError(f"{self.root}: dataset ({self.format}) holds no images")
        ids = [r.id for r in self.records]
        if len(set(ids)) != len(ids):
            seen, dup = set(), []
            for i in ids:
                if i in seen:
                    dup.append(i)
                seen.add(i)
            raise LightsegError(f"{self.root}: duplicate image ids {sorted(set(dup))[:5]}; rename them")
        self._index = {r.id: k for k, r in enumerate(self.records)}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.records)

    def record(self, record_id: str) -> Record:
        """Look a record up by id."""
        try:
            return self.records[self._index[record_id]]
        except KeyError:
            raise LightsegError(f"{self.root}: no image with id {record_id!r}") from None

    def subset(self, ids: Sequence[str]) -> "SegDataset":
        """A dataset of the same type holding only ``ids`` (in that order)."""
        import copy

        sub = copy.copy(self)
        sub.records = [self.record(i) for i in ids]
        sub.__post_init__()
        return sub

    def load_image(self, record: Record) -> np.ndarray:
        """float32 ``[H, W, 1]`` in [0, 1]."""
        return read_gray(record.image)

    def load_mask(self, record: Record) -> np.ndarray:
        """int32 ``[H, W]`` class ids; checks the size against the image."""
        if record.mask is None:
            raise LightsegError(f"{record.image}: image has no mask")
        return read_class_mask(record.mask, self.num_classes)

    def load_pair(self, record: Record) -> tuple[np.ndarray, np.ndarray]:
        """Image and mask, with a clear error when their sizes differ."""
        image = self.load_image(record)
        mask = self.load_mask(record)
        if image.shape[:2] != mask.shape[:2]:
            raise LightsegError(
                f"{record.mask}: mask is {mask.shape[1]}x{mask.shape[0]} but image {record.image} "
                f"is {image.shape[1]}x{image.shape[0]}; they must be the same size"
            )
        return image, mask
