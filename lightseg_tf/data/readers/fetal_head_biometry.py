"""The LightSeg fetal head biometry dataset (Alzubaidi et al., 2023; Zenodo 8265464).

Groups (planes) Trans-thalamic, Trans-ventricular, Trans-cerebellum and Diverse, each a CVAT
export, either "Segmentation mask 1.1" (``SegmentationClass/*.png`` + ``labelmap.txt``, images
in ``JPEGImages/`` or ``images/``) or "COCO 1.0" (``annotations/instances_default.json``,
polygons or RLE, images in ``images/``). Classes are matched by NAME (Brain, CSP, LV), never
by colour: in one group CSP is yellow (255,255,0), in another green. A pixel-size CSV with
columns ``Label`` and ``Pixel in mm`` anywhere in the tree gives the pixel sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg_tf.core.io import read_csv, read_json_file
from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.data.readers.colors import classes_from_colors, decode_color_mask, parse_labelmap, \
    polygons_to_mask, rle_decode
from lightseg_tf.errors import LightsegError

CLASSES = ("background", "Brain", "CSP", "LV")
IMAGE_DIRS = ("JPEGImages", "images", "Images")
COCO_FILE = Path("annotations") / "instances_default.json"


def _groups(root: Path) -> list[Path]:
    cands = [root] + sorted(p for p in root.iterdir() if p.is_dir())
    return [g for g in cands if (g / "labelmap.txt").exists() or (g / COCO_FILE).exists()]


def _detect(path: Path) -> bool:
    return path.is_dir() and bool(_groups(path))


def _find_image(group: Path, stem_or_name: str) -> Path | None:
    for d in IMAGE_DIRS:
        folder = group / d
        if not folder.is_dir():
            continue
        direct = folder / stem_or_name
        if direct.is_file():
            return direct
        for ext in (".png", ".jpg", ".jpeg", ".bmp"):
            p = folder / (Path(stem_or_name).stem + ext)
            if p.is_file():
                return p
    return None


def _pixel_sizes(root: Path) -> dict[str, float]:
    sizes = {}
    for path in root.rglob("*.csv"):
        rows = read_csv(path, "pixel-size CSV", dicts=True)
        if not rows or "Label" not in rows[0] or "Pixel in mm" not in rows[0]:
            continue
        for line, row in enumerate(rows, 2):
            try:
                sizes[Path(row["Label"]).stem] = float(row["Pixel in mm"])
            except (TypeError, ValueError):
                raise LightsegError(f"{path}:{line}: 'Pixel in mm' {row.get('Pixel in mm')!r} is not a number"
                                    ) from None
    return sizes


class FetalHeadDataset(SegDataset):
    def __post_init__(self):
        super().__post_init__()
        self.color_tables: dict[str, tuple[dict, str]] = getattr(self, "color_tables", {})
        self.coco: dict[str, dict] = getattr(self, "coco", {})

    def load_mask(self, record: Record) -> np.ndarray:
        if record.mask is None:
            raise LightsegError(f"{record.image}: image has no annotation")
        if record.mask.endswith(".json"):
            return self._coco_mask(record)
        group = str(Path(record.mask).parent.parent)
        table, source = self.color_tables[group]
        return decode_color_mask(record.mask, table, source)

    def _coco_mask(self, record: Record) -> np.ndarray:
        info = self.coco[record.mask]
        img = info["images"][record.id]
        h, w = img["height"], img["width"]
        mask = np.zeros((h, w), np.int32)
        # Larger structures first so CSP and LV (inside the brain) are painted over it.
        for ann in sorted(info["anns"].get(img["id"], []), key=lambda a: -a.get("area", 0)):
            cls = info["cat_to_class"][ann["category_id"]]
            seg = ann["segmentation"]
            if isinstance(seg, dict):
                region = rle_decode(seg["counts"], *seg["size"])
            else:
                region = polygons_to_mask(seg, h, w)
            mask[region] = cls
        return mask


@register_reader("fetal-head-biometry", _detect,
                 "LightSeg Zenodo 8265464: CVAT segmentation-mask or COCO exports per plane group")
def read_fetal_head_biometry(path: str | Path) -> SegDataset:
    """Read every group (plane) export under ``path`` (or ``path`` itself if it is one)."""
    root = Path(path)
    groups = _groups(root)
    if not groups:
        raise LightsegError(f"{root}: no CVAT export (labelmap.txt or {COCO_FILE}) found")
    sizes = _pixel_sizes(root)
    records, color_tables, coco = [], {}, {}
    for group in groups:
        plane = group.name if group != root else None
        if (group / "labelmap.txt").exists():
            labelmap = group / "labelmap.txt"
            table = classes_from_colors(parse_labelmap(labelmap), CLASSES)
            color_tables[str(group)] = (table, str(labelmap))
            for m in sorted((group / "SegmentationClass").glob("*.png")):
                image = _find_image(group, m.stem)
                if image is None:
                    raise LightsegError(f"{m}: no image {m.stem}.* in {group}/{{{','.join(IMAGE_DIRS)}}}")
                records.append(Record(id=f"{group.name}/{m.stem}", image=str(image), mask=str(m),
                                      subject=m.stem, plane=plane, pixel_size_mm=sizes.get(m.stem)))
        else:
            path_json = group / COCO_FILE
            data = read_json_file(path_json, "COCO instances file")
            try:
                cats = {c["id"]: c["name"] for c in data["categories"]}
            except (KeyError, TypeError) as exc:
                raise LightsegError(f"{path_json}: not a COCO instances file ({exc})") from None
            cat_to_class = {}
            for cid, name in cats.items():
                match = [k for k, c in enumerate(CLASSES) if c.lower() == name.lower()]
                if not match:
                    raise LightsegError(f"{path_json}: category {name!r} is not one of {CLASSES[1:]}")
                cat_to_class[cid] = match[0]
            anns: dict[int, list] = {}
            for a in data.get("annotations", []):
                anns.setdefault(a["image_id"], []).append(a)
            images = {}
            for im in data["images"]:
                rid = f"{group.name}/{Path(im['file_name']).stem}"
                image = _find_image(group, im["file_name"])
                if image is None:
                    raise LightsegError(f"{path_json}: image {im['file_name']!r} not found in {group}")
                images[rid] = im
                records.append(Record(id=rid, image=str(image), mask=str(path_json),
                                      subject=Path(im["file_name"]).stem, plane=plane,
                                      pixel_size_mm=sizes.get(Path(im["file_name"]).stem)))
            coco[str(path_json)] = {"images": images, "anns": anns, "cat_to_class": cat_to_class}
    ds = FetalHeadDataset(format="fetal-head-biometry", classes=CLASSES, records=records, root=root)
    ds.color_tables, ds.coco = color_tables, coco
    return ds
