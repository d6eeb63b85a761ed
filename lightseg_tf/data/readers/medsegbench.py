"""MedSegBench ``.npz`` files such as ``abdomenus_256.npz`` (Zenodo 13358372).

Arrays ``train_images``, ``train_label`` (or ``train_labels``), ``val_*``, ``test_*``:
images ``[N, H, W]`` or ``[N, H, W, C]`` (uint8), labels ``[N, H, W]`` class ids. Records are
``train/00012``-style ids; :func:`npz_split` gives the file's own split in the split-file
format so a benchmark keeps it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.errors import LightsegError

SIDES = ("train", "val", "test")


def _npz_path(path: Path) -> Path | None:
    if path.is_file() and path.suffix == ".npz":
        return path
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        return files[0] if len(files) == 1 else None
    return None


def _detect(path: Path) -> bool:
    p = _npz_path(path)
    if p is None:
        return False
    try:
        with np.load(p) as z:
            return "train_images" in z.files
    except (OSError, ValueError, zipfile.BadZipFile):
        return False


def _label_key(files, side):
    for k in (f"{side}_label", f"{side}_labels", f"{side}_masks"):
        if k in files:
            return k
    return None


class NpzDataset(SegDataset):
    arrays: dict | None = None

    def _entry(self, record: Record):
        side, idx = record.id.split("/")
        return side, int(idx)

    def load_image(self, record: Record) -> np.ndarray:
        side, i = self._entry(record)
        img = np.asarray(self.arrays[f"{side}_images"][i], np.float32)
        if img.ndim == 3:
            img = img.mean(axis=-1)
        scale = 255.0 if img.max() > 1.0 else 1.0
        return (img / scale)[..., None]

    def load_mask(self, record: Record) -> np.ndarray:
        side, i = self._entry(record)
        key = _label_key(self.arrays, side)
        if key is None:
            raise LightsegError(f"{self.root}: no labels for the {side} images")
        mask = np.asarray(self.arrays[key][i]).astype(np.int32)
        if mask.ndim == 3:
            mask = mask[..., 0]
        return mask


@register_reader("medsegbench-npz", _detect, "MedSegBench .npz (train_images, train_label, val_*, test_*)")
def read_medsegbench(path: str | Path, classes: list[str] | None = None) -> SegDataset:
    """Read a MedSegBench ``.npz`` (the file, or a folder holding exactly one)."""
    p = _npz_path(Path(path))
    if p is None:
        raise LightsegError(f"{path}: expected a MedSegBench .npz file (or a folder with exactly one)")
    try:
        z = np.load(p)
        arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise LightsegError(f"{p}: cannot read as .npz ({exc}); the download may be incomplete") from None
    if "train_images" not in arrays:
        raise LightsegError(f"{p}: no train_images array (has {sorted(arrays)})")
    records, top = [], 0
    for side in SIDES:
        if f"{side}_images" not in arrays:
            continue
        lk = _label_key(arrays, side)
        n = len(arrays[f"{side}_images"])
        if lk is not None:
            if len(arrays[lk]) != n:
                raise LightsegError(f"{p}: {side}_images has {n} entries but {lk} has {len(arrays[lk])}")
            top = max(top, int(arrays[lk].max()))
        width = len(str(n))
        records += [Record(id=f"{side}/{i:0{width}d}", image=str(p), mask=str(p) if lk else None,
                           subject=f"{side}/{i:0{width}d}") for i in range(n)]
    names = tuple(classes) if classes else ("background",) + tuple(f"class{k}" for k in range(1, top + 1))
    ds = NpzDataset(format="medsegbench-npz", classes=names, records=records, root=p)
    ds.arrays = arrays
    return ds


def npz_split(dataset: SegDataset) -> dict[str, list[str]]:
    """The npz's own train/val/test split, as record ids."""
    return {side: [r.id for r in dataset.records if r.id.startswith(side + "/")] for side in SIDES}
