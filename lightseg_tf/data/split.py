"""Subject-grouped, plane-stratified, seeded train/val/test splits stored as JSON.

The split is made on SUBJECTS, before any offline augmentation, so no subject (HC18
``NNN_HC`` and ``NNN_2HC`` are one subject) is on two sides. A split file, once written,
is honoured by every later stage so a benchmark's test set never moves.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import read_json_file, write_json_atomic

SPLITS = ("train", "val", "test")
# Images flagged unlabelled (no mask on purpose): never trained, validated or tested on, only
# labelled by the teachers for distillation (the transfer set). A split holds this side only
# when the dataset has such images.
UNLABELLED = "unlabelled"


def sides(split: dict[str, list[str]]) -> tuple[str, ...]:
    """The sides ``split`` holds: train, val, test, then unlabelled when it has one."""
    return (*SPLITS, UNLABELLED) if split.get(UNLABELLED) else SPLITS


HC_BLOCK = 10  # subjects per HC stratum: each stratum is dealt over the sides in turn


def _stratified_order(subjects: list[str], by_subject: dict, rng: np.random.Generator) -> list[str]:
    """Subjects shuffled, within HC strata when every subject has a reference HC."""
    hc = {s: [r.hc_mm for r in by_subject[s]] for s in subjects}
    if not subjects or any(v is None for vals in hc.values() for v in vals):
        rng.shuffle(subjects)
        return subjects
    ordered = sorted(subjects, key=lambda s: (float(np.mean(hc[s])), s))
    out = []
    for start in range(0, len(ordered), HC_BLOCK):
        block = ordered[start:start + HC_BLOCK]
        rng.shuffle(block)
        out += block
    return out


TEST_HOLDOUTS = ("random", "last")


def _last_subjects(by_subject: dict, test_fraction: float) -> set[str]:
    """The last subjects in id order whose images first reach ``test_fraction`` of all images."""
    total = sum(len(v) for v in by_subject.values())
    taken, held = 0, set()
    for subject in sorted(by_subject, reverse=True):
        if taken >= test_fraction * total:
            break
        held.add(subject)
        taken += len(by_subject[subject])
    return held


def make_split(dataset: SegDataset, val_fraction: float = 0.15, test_fraction: float = 0.15,
               seed: int = 0, test_holdout: str = "random") -> dict[str, list[str]]:
    """Assign whole subjects to train/val/test.

    With ``test_holdout="last"`` the test side is the LAST subjects in id order (PSFHS id
    blocks: the latest recordings of the copy, what a user meets next), at least
    ``test_fraction`` of the images; train and val are dealt from the others as below, val
    still ``val_fraction`` of all images. Subjects are grouped by their most common plane (so every plane is spread over the three
    sides in proportion) and, within a plane, shuffled with ``seed`` and dealt out so each
    side's share of IMAGES approaches its fraction. Where every subject has a reference head
    circumference (HC18), the shuffle is within blocks of :data:`HC_BLOCK` subjects of similar
    HC, so each side covers the whole range of head sizes (HC18's subject numbers rise with
    gestational age: a split by number or by chance can leave a side without the largest heads).
    Images flagged ``unlabelled`` (no mask on purpose) go to the ``unlabelled`` side (subjects
    holding one are dealt there whole, so no subject's unlabelled scan is distilled on while its
    annotated one is tested).

    Returns:
        ``{"train": [ids], "val": [ids], "test": [ids]}`` with record ids in dataset order, plus
        ``"unlabelled": [ids]`` when the dataset has images flagged unlabelled.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise LightsegError(
            f"split fractions val={val_fraction}, test={test_fraction} must be in [0, 1) with sum < 1"
        )
    by_subject: dict[str, list] = defaultdict(list)
    for r in dataset.records:
        by_subject[r.subject].append(r)
    unlabelled = {s for s, recs in by_subject.items() if any(r.unlabelled for r in recs)}
    if len(unlabelled) == len(by_subject):
        raise LightsegError(f"{dataset.root}: every image is flagged unlabelled; train, val and test need masks")
    by_subject = {s: recs for s, recs in by_subject.items() if s not in unlabelled}
    by_plane: dict[str, list[str]] = defaultdict(list)
    for subject, recs in by_subject.items():
        planes = [r.plane or "" for r in recs]
        by_plane[max(set(planes), key=planes.count)].append(subject)
    if test_holdout not in TEST_HOLDOUTS:
        raise LightsegError(f"unknown test_holdout {test_holdout!r}; use one of {', '.join(TEST_HOLDOUTS)}")
    rng = np.random.default_rng(seed)
    side_of: dict[str, str] = {}
    if test_holdout == "last":
        held = _last_subjects(by_subject, test_fraction)
        side_of.update(dict.fromkeys(held, "test"))
        by_plane = {p: [s for s in subjects if s not in held] for p, subjects in by_plane.items()}
        n_rest = sum(len(v) for s, v in by_subject.items() if s not in held)
        n_all = sum(len(v) for v in by_subject.values())
        val_share = min(val_fraction * n_all / max(n_rest, 1), 1.0)
        targets = {"train": 1 - val_share, "val": val_share, "test": 0.0}
    else:
        targets = {"train": 1 - val_fraction - test_fraction, "val": val_fraction, "test": test_fraction}
    for plane in sorted(by_plane):
        subjects = _stratified_order(sorted(by_plane[plane]), by_subject, rng)
        filled = {k: 0 for k in SPLITS}
        for s in subjects:
            # The side furthest below its share of what has been dealt so far (this subject
            # included) takes it: every stretch of the order is shared in proportion, so each
            # HC stratum reaches every side.
            dealt = sum(filled.values()) + len(by_subject[s])
            side = max(SPLITS, key=lambda k: targets[k] * dealt - filled[k] if targets[k] > 0 else -np.inf)
            side_of[s] = side
            filled[side] += len(by_subject[s])
    side_of.update(dict.fromkeys(unlabelled, UNLABELLED))
    split = {k: [] for k in SPLITS}
    for r in dataset.records:
        split.setdefault(side_of[r.subject], []).append(r.id)
    return split


def check_split(split: dict[str, list[str]], dataset: SegDataset, where: str = "split") -> None:
    """Raise when ids are unknown, repeated, or a subject sits on two sides."""
    missing = sorted(set(SPLITS) - set(split))
    if missing:
        raise LightsegError(f"{where}: missing sides {missing}")
    side_of_subject: dict[str, str] = {}
    seen: set[str] = set()
    for side in sides(split):
        for rid in split[side]:
            if rid in seen:
                raise LightsegError(f"{where}: image {rid!r} appears twice")
            seen.add(rid)
            subject = dataset.record(rid).subject
            other = side_of_subject.setdefault(subject, side)
            if other != side:
                raise LightsegError(f"{where}: subject {subject!r} is in both {other} and {side}")


def save_split(split: dict[str, list[str]], path: str | Path, **info) -> None:
    """Write the split JSON (atomically), with optional provenance ``info``."""
    write_json_atomic(path, {**{k: list(split[k]) for k in sides(split)}, "info": info})


def load_split(path: str | Path, dataset: SegDataset | None = None) -> dict[str, list[str]]:
    """Read a split JSON; with ``dataset``, check it against the dataset's ids and subjects."""
    path = Path(path)
    data = read_json_file(path, "split file", missing="no such split file")
    if not isinstance(data, dict):
        raise LightsegError(f"{path}: a split file is a JSON object of train/val/test id lists")
    split = {k: list(data.get(k, [])) for k in SPLITS}
    if data.get(UNLABELLED):
        split[UNLABELLED] = list(data[UNLABELLED])
    if dataset is not None:
        check_split(split, dataset, str(path))
    return split


def split_side(dataset: SegDataset, side: str, split_file: str | Path | None) -> SegDataset:
    """The ``side`` (train / val / test) of ``dataset`` by ``split_file``; ``all`` is the whole dataset.

    Raises:
        LightsegError: ``side`` is not ``all`` and no split file is given or found.
    """
    if side == "all":
        return dataset
    if side not in SPLITS:
        raise LightsegError(f"unknown split side {side!r}; use one of {', '.join(SPLITS)} or all")
    if split_file is None or not Path(split_file).exists():
        raise LightsegError(f"--split {side} needs a split file (--split-file, or a run directory with split.json)")
    return dataset.subset(load_split(split_file, dataset)[side])


def split_for(dataset: SegDataset, split_file: str | Path | None, val_fraction: float,
              test_fraction: float, seed: int, write_to: str | Path | None = None, test_holdout: str = "random"):
    """Honour ``split_file`` when it exists, else make a split (and write it to ``split_file``).

    The split used is also written to ``write_to`` (a run's own ``split.json``), so a run
    directory always says which images it trained, validated and tested on.
    """
    if split_file and Path(split_file).exists():
        split = load_split(split_file, dataset)
        if write_to and Path(write_to).resolve() != Path(split_file).resolve():
            save_split(split, write_to, source=str(Path(split_file).resolve()))
        return split
    split = make_split(dataset, val_fraction, test_fraction, seed, test_holdout)
    info = dict(dataset=str(dataset.root), format=dataset.format, seed=seed, val_fraction=val_fraction,
                test_fraction=test_fraction, test_holdout=test_holdout)
    for target in {str(t) for t in (split_file, write_to) if t}:
        save_split(split, target, **info)
    return split
