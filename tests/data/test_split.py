"""Splits never put one subject on two sides; they are seeded, stratified and honoured."""

import json

import numpy as np
import pytest

from lightseg_tf.cli import main
from lightseg_tf.data.dataset import Record, SegDataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.split import check_split, load_split, make_split, save_split
from lightseg_tf.errors import LightsegError


def _fake(n_subjects=60, planes=("TV", "TT", "TC")):
    rng = np.random.default_rng(0)
    recs = []
    for s in range(n_subjects):
        for k in range(1 + rng.integers(0, 3)):  # 1-3 images per subject, like NNN_HC/NNN_2HC
            recs.append(Record(id=f"{s:03d}_{k}HC", image="x", mask=None, subject=f"{s:03d}",
                               plane=planes[s % len(planes)]))
    return SegDataset("fake", ("background", "head"), recs)


def _sides_of_subjects(ds, split):
    sides = {}
    for side, ids in split.items():
        for i in ids:
            sides.setdefault(ds.record(i).subject, set()).add(side)
    return sides


def test_no_subject_leaks_and_every_image_is_placed():
    ds = _fake()
    split = make_split(ds, 0.2, 0.2, seed=1)
    assert all(len(s) == 1 for s in _sides_of_subjects(ds, split).values())
    assert sorted(sum(split.values(), [])) == sorted(r.id for r in ds.records)
    n = len(ds)
    assert abs(len(split["val"]) / n - 0.2) < 0.08 and abs(len(split["test"]) / n - 0.2) < 0.08
    # stratified: each plane appears on every side
    for side in ("train", "val", "test"):
        assert {ds.record(i).plane for i in split[side]} == {"TV", "TT", "TC"}
    check_split(split, ds)


def test_seeded_and_different_seeds_differ():
    ds = _fake()
    assert make_split(ds, seed=3) == make_split(ds, seed=3)
    assert make_split(ds, seed=3) != make_split(ds, seed=4)


def test_check_split_catches_a_leak():
    ds = _fake()
    split = make_split(ds, seed=0)
    moved = next(i for i in split["train"] if len([r for r in ds.records if r.subject == ds.record(i).subject]) > 1)
    split["train"].remove(moved)
    split["test"].append(moved)
    with pytest.raises(LightsegError, match="is in both"):
        check_split(split, ds)


def test_split_cli_writes_then_honours(phantom_dir, tmp_path, capsys):
    out = tmp_path / "split.json"
    assert main(["data", "split", str(phantom_dir), "--out", str(out), "--seed", "2"]) == 0
    first = json.loads(out.read_text())
    assert main(["data", "split", str(phantom_dir), "--out", str(out), "--seed", "9"]) == 0
    assert "kept" in capsys.readouterr().out and json.loads(out.read_text()) == first
    assert main(["data", "split", str(phantom_dir), "--out", str(out), "--seed", "9", "--force"]) == 0
    assert json.loads(out.read_text())["info"]["seed"] == 9


def test_real_hc18_split_has_no_leak(shared_datasets):
    ds = read_dataset(shared_datasets / "hc18", "hc18")
    split = make_split(ds, 0.15, 0.15, seed=0)
    assert all(len(s) == 1 for s in _sides_of_subjects(ds, split).values())
    multi = [s for s, sides in _sides_of_subjects(ds, split).items()
             if sum(r.subject == s for r in ds.records) > 1]
    assert len(multi) > 50  # the NNN_2HC / NNN_3HC subjects were really exercised


def test_real_psfhs_split_is_by_contiguous_id_blocks(shared_datasets, tmp_path):
    ds = read_dataset(shared_datasets / "psfhs", "psfhs")
    split = make_split(ds, 0.15, 0.15, seed=0)
    for side, ids in split.items():
        blocks = {int(i) // 32 for i in ids}
        others = {int(i) // 32 for s, v in split.items() if s != side for i in v}
        assert not blocks & others
    assert all(split.values())
    save_split(split, tmp_path / "split.json")
    assert load_split(tmp_path / "split.json", ds) == split  # round trip, checked against the data


def test_a_split_of_heads_covers_every_head_size_on_every_side():
    """HC rising with subject number (as in HC18): each side gets every HC quartile in proportion."""
    records = [Record(f"{k:03d}", f"{k:03d}.png", f"{k:03d}_m.png", f"{k:03d}", hc_mm=40.0 + k) for k in range(300)]
    ds = SegDataset("hc18", ("background", "head"), records)
    for seed in (0, 1, 2):
        split = make_split(ds, 0.15, 0.15, seed=seed)
        for side, ids in split.items():
            hc = np.array([40.0 + int(i) for i in ids])
            per_quartile = np.histogram(hc, [40, 115, 190, 265, 340])[0]
            assert per_quartile.min() >= 0.8 * len(ids) / 4, (seed, side, per_quartile)


def test_real_hc18_split_covers_all_head_sizes(shared_datasets):
    ds = read_dataset(shared_datasets / "hc18", "hc18")
    hc = {r.id: r.hc_mm for r in ds.records}
    edges = np.quantile(list(hc.values()), [0, 0.25, 0.5, 0.75, 1.0])
    edges[-1] += 1
    for side, ids in make_split(ds, 0.15, 0.15, seed=0).items():
        per_quartile = np.histogram([hc[i] for i in ids], edges)[0]
        assert per_quartile.min() >= 0.8 * len(ids) / 4, (side, per_quartile)


def test_last_holdout_tests_on_the_last_subjects_and_deals_the_rest():
    ds = _fake()
    split = make_split(ds, 0.2, 0.2, seed=1, test_holdout="last")
    test_subjects = {ds.record(i).subject for i in split["test"]}
    rest = {ds.record(i).subject for side in ("train", "val") for i in split[side]}
    assert max(rest) < min(test_subjects)  # every test subject comes after every other one
    n = len(ds)
    # the last subjects until their images first reach 20 %: dropping the earliest one falls short
    assert len(split["test"]) >= 0.2 * n
    earliest = min(test_subjects)
    assert len(split["test"]) - sum(r.subject == earliest for r in ds.records) < 0.2 * n
    assert abs(len(split["val"]) / n - 0.2) < 0.08  # val keeps its share of ALL images
    assert sorted(sum(split.values(), [])) == sorted(r.id for r in ds.records)
    check_split(split, ds)
    assert make_split(ds, 0.2, 0.2, seed=1, test_holdout="last")["test"] == \
        make_split(ds, 0.2, 0.2, seed=7, test_holdout="last")["test"]  # the seed moves train/val only
    with pytest.raises(LightsegError, match="unknown test_holdout 'first'"):
        make_split(ds, test_holdout="first")


def test_split_cli_test_holdout_last(phantom_dir, tmp_path):
    out = tmp_path / "split.json"
    assert main(["data", "split", str(phantom_dir), "--out", str(out), "--test-holdout", "last"]) == 0
    written = json.loads(out.read_text())
    assert written["info"]["test_holdout"] == "last"
    ds = read_dataset(phantom_dir)
    assert {ds.record(i).subject for i in written["test"]} == \
        {r.subject for r in ds.records[-len(written["test"]):]}


def test_real_psfhs_last_holdout_is_the_last_id_blocks(shared_datasets):
    ds = read_dataset(shared_datasets / "psfhs", "psfhs")
    split = make_split(ds, 0.15, 0.15, seed=0, test_holdout="last")
    first_test = min(int(i) for i in split["test"])
    assert all(int(i) < first_test for side in ("train", "val") for i in split[side])
    assert max(int(i) for i in split["test"]) == 4799 and len(split["test"]) >= 0.15 * len(ds)


def test_images_without_masks_go_whole_subjects_to_the_unlabelled_side(tmp_path):
    recs = [Record(id=f"{s:03d}_{k}", image="x", mask=None if (s % 4 == 0 and k == 1) else "m", subject=f"{s:03d}",
                   unlabelled=s % 4 == 0 and k == 1) for s in range(40) for k in range(2)]
    ds = SegDataset("fake", ("background", "head"), recs)
    split = make_split(ds, 0.2, 0.2, seed=0)
    # a subject with one unannotated scan is distilled on whole, never tested on
    assert split["unlabelled"] == [r.id for r in recs if int(r.subject) % 4 == 0]
    assert all(len(s) == 1 for s in _sides_of_subjects(ds, split).values())
    labelled = sum(len(split[k]) for k in ("train", "val", "test"))
    assert labelled == 60 and abs(len(split["test"]) - 0.2 * 60) <= 2
    save_split(split, tmp_path / "s.json")
    assert load_split(tmp_path / "s.json", ds) == split
    # a mask missing without the flag is not a transfer image: it stays in the split, and training
    # names it (tests/training/test_bad_data.py)
    bare = SegDataset("fake", ("background", "head"), [Record(id=r.id, image="x", mask=None, subject=r.subject)
                                                        for r in recs])
    assert "unlabelled" not in make_split(bare, 0.2, 0.2, seed=0)
    flagged = SegDataset("fake", ("background", "head"), [Record(id=r.id, image="x", mask=None, subject=r.subject,
                                                                 unlabelled=True) for r in recs])
    with pytest.raises(LightsegError, match="every image is flagged unlabelled"):
        make_split(flagged, 0.2, 0.2)
    leaky = {**split, "unlabelled": split["unlabelled"] + [split["test"][0]]}
    with pytest.raises(LightsegError, match="appears twice"):
        check_split(leaky, ds)
