"""Teacher outputs as data: each trained teacher's softmax probabilities, computed once per split.

Distillation and ensemble-weight search read this cache, never the teachers again, so a
teacher can be any model from any tool ("black-box"): whatever writes the layout below is
accepted.

Layout of a cache folder::

    CACHE/manifest.json
    CACHE/labels_<split>.npy       uint8   [N, S, S]     letterboxed ground truth (not for "unlabelled")
    CACHE/<teacher>_<split>.npy    float16 [N, S, S, C]  softmax probabilities

Rows follow ``manifest["splits"][split]`` (record ids). Images are letterboxed to S exactly as
the training pipeline does (:func:`lightseg_tf.data.tfdata.load_letterboxed`). The manifest::

    {"version": 1, "image_size": S, "classes": [...], "data": {"path": ..., "format": ...},
     "splits": {"train": [ids], "val": [ids], "test": [ids]},
     "labels": {split: {"file": ..., "sha256": ...}},
     "teachers": {name: {"source": ..., "input_size": T, "files": {split: {"file": ..., "sha256": ...}}}}}

A teacher whose input side T differs from S saw the images letterboxed to T; its
probabilities were moved to S with the content aligned (written by caches since 2026-12-03).

Every file's SHA-256 is checked the first time it is read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import sha256_file, write_json_atomic
from lightseg_tf.core.log import LOG, progress
from lightseg_tf.models.tta import tta_mode

MANIFEST = "manifest.json"
VERSION = 1



class TeacherCache:
    """A cache folder: its manifest plus memory-mapped, checksum-verified arrays."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        path = self.root / MANIFEST
        if not path.is_file():
            raise LightsegError(f"{self.root}: not a teacher cache (no {MANIFEST}); "
                                "make one with `lightseg teachers predict RUN... --out CACHE`")
        try:
            self.manifest = json.loads(path.read_text())
            self.size = int(self.manifest["image_size"])
            self.classes = list(self.manifest["classes"])
            self.splits = {k: list(v) for k, v in self.manifest["splits"].items()}
            self.teachers = list(self.manifest.get("teachers", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise LightsegError(f"{path}: malformed teacher-cache manifest ({exc})") from None
        self._verified: set[str] = set()

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def _array(self, entry: dict, split: str, shape: tuple, dtype) -> np.ndarray:
        path = self.root / entry["file"]
        if not path.is_file():
            raise LightsegError(f"{path}: listed in {self.root / MANIFEST} but missing; rebuild the cache")
        if entry["file"] not in self._verified:
            if entry.get("sha256") and sha256_file(path) != entry["sha256"]:
                raise LightsegError(f"{path}: SHA-256 differs from the manifest (corrupt or replaced); "
                                    "rebuild the cache")
            self._verified.add(entry["file"])
        try:
            arr = np.load(path, mmap_mode="r")
        except ValueError as exc:
            raise LightsegError(f"{path}: not a .npy array ({exc})") from None
        if arr.shape != shape or arr.dtype != dtype:
            raise LightsegError(f"{path}: expected {np.dtype(dtype).name} {list(shape)}, found "
                                f"{arr.dtype.name} {list(arr.shape)}")
        return arr

    def _split_len(self, split: str) -> int:
        if split not in self.splits:
            raise LightsegError(f"{self.root}: no split {split!r} (has {sorted(self.splits)})")
        return len(self.splits[split])

    def labels(self, split: str) -> np.ndarray:
        """uint8 ``[N, S, S]`` ground truth of ``split`` (memory-mapped)."""
        n = self._split_len(split)
        entry = self.manifest.get("labels", {}).get(split)
        if entry is None:
            raise LightsegError(f"{self.root}: no labels cached for split {split!r}")
        return self._array(entry, split, (n, self.size, self.size), np.uint8)

    def probs(self, teacher: str, split: str) -> np.ndarray:
        """float16 ``[N, S, S, C]`` probabilities of ``teacher`` on ``split`` (memory-mapped)."""
        n = self._split_len(split)
        if teacher not in self.teachers:
            raise LightsegError(f"{self.root}: no teacher {teacher!r}; it has {self.teachers}")
        files = self.manifest["teachers"][teacher]["files"]
        if split not in files:
            raise LightsegError(f"{self.root}: teacher {teacher!r} has no {split!r} probabilities")
        return self._array(files[split], split, (n, self.size, self.size, self.num_classes), np.float16)

    def select(self, teachers: list[str] | tuple[str, ...] | None) -> list[str]:
        """The named teachers (checked), or all of them when ``teachers`` is empty."""
        if not teachers:
            if not self.teachers:
                raise LightsegError(f"{self.root}: the cache holds no teachers yet")
            return list(self.teachers)
        unknown = [t for t in teachers if t not in self.teachers]
        if unknown:
            raise LightsegError(f"{self.root}: unknown teachers {unknown}; it has {self.teachers}")
        return list(teachers)


class CacheWriter:
    """Creates or extends a cache folder; each array is written to a temp name, then renamed."""

    def __init__(self, root: str | Path, *, image_size: int, classes: list[str], splits: dict[str, list[str]],
                 data: dict | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        fresh = {"version": VERSION, "image_size": int(image_size), "classes": list(classes),
                 "data": data or {}, "splits": {k: list(v) for k, v in splits.items()},
                 "labels": {}, "teachers": {}}
        path = self.root / MANIFEST
        if path.exists():
            old = json.loads(path.read_text())
            same = (old.get("image_size"), old.get("classes"), old.get("splits")) == (
                fresh["image_size"], fresh["classes"], fresh["splits"])
            if not same:
                raise LightsegError(f"{self.root}: holds a cache for another split, size or class list; "
                                    "choose another --out or delete it")
            fresh["labels"], fresh["teachers"] = old.get("labels", {}), old.get("teachers", {})
        self.manifest = fresh

    def _write(self, name: str, array: np.ndarray) -> dict:
        target = self.root / name
        tmp = target.with_name(f".{target.stem}.partial.npy")
        try:
            np.save(tmp, array)
            digest = sha256_file(tmp)
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)
        return {"file": name, "sha256": digest}

    def add_labels(self, split: str, labels: np.ndarray) -> None:
        """Store uint8 ``[N, S, S]`` ground truth of ``split``."""
        self.manifest["labels"][split] = self._write(f"labels_{split}.npy", np.asarray(labels, np.uint8))
        self.save()

    def add_probs(self, teacher: str, split: str, probs: np.ndarray, source: str = "",
                  input_size: int | None = None, tta: str | None = None) -> None:
        """Store float16 ``[N, S, S, C]`` probabilities of ``teacher`` on ``split`` (``input_size``: the side it
        saw; ``tta``: its test-time augmentation, recorded so that a cache extended teacher by teacher says
        which views each one averaged)."""
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", teacher):
            raise LightsegError(f"teacher name {teacher!r}: use letters, digits, '_', '-', '.', '+'")
        expected = (len(self.manifest["splits"][split]), self.manifest["image_size"], self.manifest["image_size"],
                    len(self.manifest["classes"]))
        if tuple(probs.shape) != expected:
            raise LightsegError(f"teacher {teacher!r} on {split}: probabilities {list(probs.shape)}, "
                                f"expected {list(expected)}")
        entry = self.manifest["teachers"].setdefault(teacher, {"source": source, "files": {}})
        entry["source"] = source or entry.get("source", "")
        if input_size:
            entry["input_size"] = int(input_size)
        entry["tta"] = tta_mode(tta)
        entry["files"][split] = self._write(f"{teacher}_{split}.npy", np.asarray(probs, np.float16))
        self.save()

    def save(self) -> None:
        write_json_atomic(self.root / MANIFEST, self.manifest)


def predict_teachers(runs: list[str | Path], out: str | Path, splits=("train", "val"), batch_size: int = 8,
                     tta: str | None = None, data_path: str | None = None, data_format: str | None = None,
                     size: int | None = None) -> Path:
    """Run each trained teacher once over ``splits`` (None: every side of their split) and cache its probabilities.

    All teachers must share one split (the distilled student is judged on that validation split:
    a teacher that trained on it would leak). Each teacher sees the images at its own input side;
    the cache holds every teacher's probabilities at one side ``size`` (default: the first
    teacher's), moved there with the image content aligned
    (:func:`lightseg_tf.data.letterbox.reletterbox_probs`), so 256-px teachers can teach a
    128-px student. The data are the first run's, or ``data_path`` (another copy of the same
    dataset, e.g. on another machine).

    Returns:
        The cache folder.
    """
    from lightseg_tf.data.letterbox import letterbox_image, letterbox_mask, letterbox_params, reletterbox_probs
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import UNLABELLED, sides
    from lightseg_tf.models.predictor import KerasPredictor
    from lightseg_tf.models.saving import load_trained_model
    from lightseg_tf.runs import open_run

    if not runs:
        raise LightsegError("give at least one teacher run directory")
    opened = [open_run(r) for r in runs]
    first = opened[0]
    teachers = [KerasPredictor(load_trained_model(rd.run_dir), tta=tta, batch_size=batch_size) for rd in opened]
    size = int(size or teachers[0].size)  # a trained model's input is the one source of truth for its side
    if size < 8:
        raise LightsegError(f"cache side {size}: give at least 8 pixels")
    for rd in opened[1:]:
        if rd.split != first.split:
            raise LightsegError(f"{rd.run_dir}: its split differs from {first.run_dir}'s; train every teacher "
                                f"with data.split_file={first.run_dir / 'split.json'}")
    dataset = read_dataset(data_path, data_format) if data_path else first.dataset
    data = {"path": str(Path(data_path or dataset.root).resolve()), "format": data_format or dataset.format}
    writer = CacheWriter(out, image_size=size, classes=list(dataset.classes), splits=first.split, data=data)
    names = _teacher_names([rd.run_dir for rd in opened])
    sides_needed = sorted({t.size for t in teachers})
    for split in sides(first.split) if splits is None else splits:
        if split not in first.split:
            raise LightsegError(f"{first.run_dir / 'split.json'}: no {split!r} side (it has {sorted(first.split)})")
        part = dataset.subset(first.split[split])
        images = {s: [] for s in sides_needed}  # each teacher's input side -> letterboxed images
        shapes, labels = [], []
        for record in part.records:  # decoded once, letterboxed as training does at every side needed
            if split == UNLABELLED:  # no masks: only the teachers' answers are cached
                image = part.load_image(record)
            else:
                image, mask = part.load_pair(record)
                labels.append(letterbox_mask(mask, size))
            shapes.append(image.shape[:2])
            for s in sides_needed:
                images[s].append(letterbox_image(image, s)[0].astype(np.float32))
        if labels:
            writer.add_labels(split, np.stack(labels))
        chunk = 4 * batch_size  # a whole number of batches: the same predictions as one call, with a bar
        for name, rd, teacher in zip(names, opened, teachers):
            batch = np.stack(images[teacher.size])
            LOG.info("teacher %s: predicting %d %s images at %d px", name, len(batch), split, teacher.size)
            probs = np.concatenate([teacher.predict_probs(batch[i:i + chunk])
                                    for i in progress(range(0, len(batch), chunk), f"teacher {name} {split}",
                                                      unit="batch")])
            if teacher.size != size:
                probs = np.stack([reletterbox_probs(p, letterbox_params(h, w, teacher.size),
                                                    letterbox_params(h, w, size))
                                  for p, (h, w) in zip(probs, shapes)])
            writer.add_probs(name, split, probs, source=str(rd.run_dir), input_size=teacher.size, tta=tta)
    return Path(out)


def _teacher_names(run_dirs: list[Path]) -> list[str]:
    """Run folder names, made unique with a numeric suffix where two runs share one."""
    names, seen = [], {}
    for d in run_dirs:
        base = re.sub(r"[^A-Za-z0-9_.+-]", "_", d.resolve().name) or "teacher"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names
