"""PSFHS intrapartum transperineal ultrasound (Chen et al., Sci Data 2024; Zenodo 10969427).

``images/NNNNN.png`` + ``labels/NNNNN.png`` (0 background, 1 pubic symphysis, 2 fetal head),
or the original release's MetaImage pairs ``image_mha/NNNNN.mha`` + ``label_mha/NNNNN.mha``.
There are no subject ids and neighbouring ids can come from one recording, so the subject is
a block of ``block_size`` contiguous ids: grouped splits then split by id blocks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.data.readers.metaimage import read_mha
from lightseg_tf.errors import LightsegError

CLASSES = ("background", "pubic symphysis", "fetal head")
LAYOUTS = (("images", "labels", ".png"), ("image_mha", "label_mha", ".mha"))


def _layout(root: Path):
    for images, labels, ext in LAYOUTS:
        if (root / images).is_dir() and (root / labels).is_dir() and any((root / images).glob(f"*{ext}")):
            return root / images, root / labels, ext
    return None


def _detect(path: Path) -> bool:
    lay = _layout(path)
    return lay is not None and all(p.stem.isdigit() for p in list(lay[0].glob(f"*{lay[2]}"))[:20])


class PSFHSDataset(SegDataset):
    def load_image(self, record: Record) -> np.ndarray:
        if record.image.endswith(".mha"):
            arr = read_mha(record.image).astype(np.float32)
            if arr.ndim == 3:  # channels last (RGB with equal channels)
                arr = arr.mean(axis=-1)
            return (arr / 255.0)[..., None]
        return super().load_image(record)

    def load_mask(self, record: Record) -> np.ndarray:
        if record.mask and record.mask.endswith(".mha"):
            mask = read_mha(record.mask).astype(np.int32)
            bad = np.setdiff1d(np.unique(mask), [0, 1, 2])
            if bad.size:
                raise LightsegError(f"{record.mask}: label values {bad.tolist()} outside {{0, 1, 2}}")
            return mask
        return super().load_mask(record)


@register_reader("psfhs", _detect, "PSFHS: images/ + labels/ PNG (or image_mha/ + label_mha/)")
def read_psfhs(path: str | Path, block_size: int = 32) -> SegDataset:
    """Read PSFHS; ``block_size`` contiguous ids form one pseudo-subject."""
    root = Path(path)
    lay = _layout(root)
    if lay is None:
        raise LightsegError(f"{root}: expected images/ + labels/ (PNG) or image_mha/ + label_mha/")
    images, labels, ext = lay
    records = []
    for img in sorted(images.glob(f"*{ext}")):
        if not img.stem.isdigit():
            raise LightsegError(f"{img}: PSFHS file names are numeric ids")
        label = labels / img.name
        records.append(Record(id=img.stem, image=str(img), mask=str(label) if label.exists() else None,
                              subject=f"block{int(img.stem) // block_size:04d}", plane="transperineal"))
    return PSFHSDataset(format="psfhs", classes=CLASSES, records=records, root=root)
