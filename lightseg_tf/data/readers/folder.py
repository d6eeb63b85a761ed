"""Generic ``images/`` + ``masks/`` folders matched by file stem.

Masks hold class ids, or colours decoded with a colour map (default: the LightSeg /
fetal-brain-segmentation layout, black background, red Brain, green CSP, blue LV). A mask
whose channels differ is read as colours automatically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.data.readers.colors import LIGHTSEG_COLORS, classes_from_colors, decode_color_mask
from lightseg_tf.core.io import read_class_mask, read_json_file, read_pil
from lightseg_tf.errors import LightsegError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _files(folder: Path) -> dict[str, Path]:
    """stem -> file; two files with one stem is an error (which one would be the pair?)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in IMAGE_EXT:
            if p.stem in out:
                raise LightsegError(f"{folder}: duplicate stem {p.stem!r} ({out[p.stem].name}, {p.name}); "
                                    "rename one")
            out[p.stem] = p
    return out


def _detect(path: Path) -> bool:
    return (path / "images").is_dir() and (path / "masks").is_dir() and not (path / "dataset.json").exists()


class FolderDataset(SegDataset):
    colors: dict | None = None  # (r, g, b) -> class id, when masks are colour-coded
    color_source: str = ""

    def load_mask(self, record: Record) -> np.ndarray:
        if record.mask is None:
            raise LightsegError(f"{record.image}: image has no mask")
        arr = np.asarray(read_pil(record.mask))
        is_color = arr.ndim == 3 and not (np.array_equal(arr[..., 0], arr[..., 1])
                                          and np.array_equal(arr[..., 0], arr[..., 2]))
        if is_color or (self.colors is not None and arr.ndim == 3):
            return decode_color_mask(record.mask, self.colors or _default_table(self.classes), self.color_source
                                     or "the default LightSeg colour map")
        return read_class_mask(record.mask, self.num_classes)


def _default_table(classes):
    return classes_from_colors({k: v for k, v in LIGHTSEG_COLORS.items() if k in classes}, classes)


@register_reader("folder", _detect, "generic images/ + masks/ matched by stem (class ids or colours)")
def read_folder(path: str | Path, classes: list[str] | None = None, colormap: str | dict | None = None) -> SegDataset:
    """Read ``images/`` + ``masks/``.

    Args:
        classes: class names (index = id); default: the LightSeg classes for colour masks,
            else ``class0..classN`` from the largest id found in the first masks.
        colormap: ``{name: [r, g, b]}`` or a JSON file of it; masks are then decoded as colours.
    """
    root = Path(path)
    if not (root / "images").is_dir():
        raise LightsegError(f"{root}: no images/ folder")
    images = _files(root / "images")
    masks = _files(root / "masks") if (root / "masks").is_dir() else {}
    orphans = sorted(set(masks) - set(images))
    if orphans:
        raise LightsegError(f"{root / 'masks'}: masks without an image: {orphans[:5]}")
    if isinstance(colormap, (str, Path)):
        colormap = read_json_file(colormap, "colour map", missing="no such colour map")
    names = list(classes) if classes else (list(colormap) if colormap else None)
    if names is None:
        sample = [masks[k] for k in list(masks)[:16]]
        first = [np.asarray(read_pil(p)) for p in sample]
        if any(a.ndim == 3 and not np.array_equal(a[..., 0], a[..., 2]) for a in first):
            names = list(LIGHTSEG_COLORS)
        else:
            top = max((int(a.max()) for a in first), default=1)
            names = ["background"] + [f"class{k}" for k in range(1, max(top, 1) + 1)]
    records = [Record(id=stem, image=str(p), mask=str(masks[stem]) if stem in masks else None, subject=stem)
               for stem, p in images.items()]
    ds = FolderDataset(format="folder", classes=tuple(names), records=records, root=root)
    if colormap:
        ds.colors = classes_from_colors({k: tuple(v) for k, v in colormap.items()}, names)
        ds.color_source = "the given colour map"
    return ds
