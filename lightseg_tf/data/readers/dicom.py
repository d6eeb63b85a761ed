"""Single ultrasound DICOM files (or a folder of them) for inference.

Pixel size from ``PixelSpacing`` (mm) or, as ultrasound usually stores it, from
``SequenceOfUltrasoundRegions[0].PhysicalDeltaX/Y`` (cm per pixel when the region's
``PhysicalUnitsXDirection`` is 3 = cm). A file without spacing loads with pixel size None
and a warning saying so: measurements are then in pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import register_reader
from lightseg_tf.errors import LightsegError

LOG = logging.getLogger("lightseg")
CM_UNITS = 3  # DICOM PS3.3 C.8.5.5.1.1: 3 = cm


def _dicom_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.is_file() and (p.suffix.lower() in (".dcm", ".dicom") or _is_dicom(p)))


def _is_dicom(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _detect(path: Path) -> bool:
    return (path.is_file() and _is_dicom(path)) or (path.is_dir() and any(_is_dicom(p) for p in list(path.iterdir())[:20]
                                                                        if p.is_file()))


def pixel_size_mm(ds) -> float | None:
    """Isotropic pixel size in mm from a pydicom dataset, or None (anisotropic: the mean, warned)."""
    spacing = getattr(ds, "PixelSpacing", None)
    if spacing:
        dy, dx = float(spacing[0]), float(spacing[1])
    else:
        regions = getattr(ds, "SequenceOfUltrasoundRegions", None)
        if not regions:
            return None
        r = regions[0]
        if getattr(r, "PhysicalUnitsXDirection", CM_UNITS) != CM_UNITS or getattr(r, "PhysicalUnitsYDirection", CM_UNITS) != CM_UNITS:
            return None
        dx, dy = float(r.PhysicalDeltaX) * 10.0, float(r.PhysicalDeltaY) * 10.0
    if not np.isclose(dx, dy, rtol=0.01):
        LOG.warning("pixel spacing %.4f x %.4f mm is not square; using the mean", dx, dy)
    return (dx + dy) / 2.0


class DicomDataset(SegDataset):
    def load_image(self, record: Record) -> np.ndarray:
        import pydicom

        try:
            ds = pydicom.dcmread(record.image)
            arr = ds.pixel_array.astype(np.float32)
        except Exception as exc:  # pydicom raises many types for broken files
            raise LightsegError(f"{record.image}: cannot decode DICOM pixel data ({exc})") from None
        if getattr(ds, "NumberOfFrames", 1) and int(getattr(ds, "NumberOfFrames", 1)) > 1:
            arr = arr[0]  # first frame of a cine loop
        if arr.ndim == 3:
            arr = arr[..., :3].mean(axis=-1) if getattr(ds, "PhotometricInterpretation", "") != "YBR_FULL" else arr[..., 0]
        top = float(2 ** int(getattr(ds, "BitsStored", 8)) - 1)
        return np.clip(arr / top, 0, 1)[..., None]


@register_reader("dicom", _detect, "ultrasound DICOM file(s) for inference; pixel size from the header")
def read_dicom(path: str | Path) -> SegDataset:
    """Read one DICOM file or a folder of them (no masks)."""
    import pydicom

    root = Path(path)
    records = []
    for f in _dicom_files(root):
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception as exc:
            raise LightsegError(f"{f}: not a readable DICOM file ({exc})") from None
        px = pixel_size_mm(ds)
        if px is None:
            LOG.warning("%s: no pixel spacing in the header; measurements will be in pixels", f)
        subject = str(getattr(ds, "PatientID", "") or f.stem)
        records.append(Record(id=f.stem, image=str(f), mask=None, subject=subject, pixel_size_mm=px))
    return DicomDataset(format="dicom", classes=("background",), records=records, root=root)
