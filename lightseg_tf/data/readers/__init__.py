"""Dataset readers, registered by name and chosen with ``--format`` or detected from a path.

A reader is ``read(path) -> SegDataset``; ``detect(path) -> bool`` says whether a folder
looks like its format. Register new ones with :func:`register_reader`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.errors import LightsegError


@dataclass(frozen=True)
class Reader:
    name: str
    read: Callable[..., SegDataset]
    detect: Callable[[Path], bool]
    description: str


_READERS: dict[str, Reader] = {}

# Modules whose import registers readers; imported lazily so `lightseg --help` stays fast.
_READER_MODULES = (
    "lightseg_tf.data.readers.native",
    "lightseg_tf.data.readers.hc18",
    "lightseg_tf.data.readers.psfhs",
    "lightseg_tf.data.readers.fetal_head_biometry",
    "lightseg_tf.data.readers.folder",
    "lightseg_tf.data.readers.medsegbench",
    "lightseg_tf.data.readers.dicom",
)


def register_reader(name: str, detect: Callable[[Path], bool], description: str):
    """Decorator registering ``read(path, **options) -> SegDataset`` under ``name``."""

    def wrap(fn):
        if name in _READERS:
            raise ValueError(f"reader {name!r} registered twice")
        _READERS[name] = Reader(name, fn, detect, description)
        return fn

    return wrap


def _load_all() -> None:
    for module in _READER_MODULES:
        importlib.import_module(module)


def list_readers() -> list[Reader]:
    """All registered readers, sorted by name."""
    _load_all()
    return [_READERS[k] for k in sorted(_READERS)]


def read_dataset(path: str | Path, format: str | None = None, **options) -> SegDataset:
    """Read the dataset at ``path`` with the reader ``format`` (detected when None)."""
    _load_all()
    path = Path(path)
    if not path.exists():
        raise LightsegError(f"{path}: no such dataset path")
    if format is None:
        hits = [r.name for r in _READERS.values() if r.detect(path)]
        if len(hits) != 1:
            what = "no reader recognises it" if not hits else f"several readers match {hits}"
            raise LightsegError(
                f"{path}: cannot detect the dataset format ({what}); pass --format, one of "
                f"{sorted(_READERS)}"
            )
        format = hits[0]
    if format not in _READERS:
        raise LightsegError(f"unknown dataset format {format!r}; choose one of {sorted(_READERS)}")
    return _READERS[format].read(path, **options)
