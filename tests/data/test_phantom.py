import hashlib
from pathlib import Path

import numpy as np

from lightseg_tf.cli import main
from lightseg_tf.anatomy.biometry import ellipse_perimeter
from lightseg_tf.data.phantom import CLASSES, make_phantom
from lightseg_tf.data.readers import read_dataset


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synth_cli_same_seed_same_bytes(tmp_path):
    args = ["data", "synth", "--n", "8", "--size", "64", "--seed", "1"]
    assert main([*args[:2], str(tmp_path / "a"), *args[2:]]) == 0
    assert main([*args[:2], str(tmp_path / "b"), *args[2:]]) == 0
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(a) == 2 * 8 + 2 and a == b
    assert main([*args[:2], str(tmp_path / "c"), "--n", "8", "--size", "64", "--seed", "2"]) == 0
    assert _digest(tmp_path / "c") != a


def test_phantom_layout_and_class_presence(phantom_dir):
    ds = read_dataset(phantom_dir)  # detected as the native format
    assert ds.format == "lightseg" and ds.classes == CLASSES and len(ds) == 16
    present = np.zeros(len(CLASSES), int)
    for rec in ds.records:
        image, mask = ds.load_pair(rec)
        assert image.dtype == np.float32 and image.shape == (64, 64, 1)
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert set(np.unique(mask)) <= {0, 1, 2, 3}
        present[np.unique(mask)] += 1
        assert rec.pixel_size_mm > 0 and rec.hc_mm > 0
    # Brain in every image; CSP and LV in most (tiny 64 px images can hide one in a shadow).
    assert present[1] == 16 and present[2] >= 12 and present[3] >= 12


def test_phantom_hc_is_ramanujan_perimeter_in_mm():
    _, mask, t = make_phantom(256, np.random.default_rng(5))
    assert np.isclose(t.hc_mm, ellipse_perimeter(t.a, t.b) * t.pixel_size_mm)
    # The Brain class (head incl. skull) has the ellipse's area, pi*a*b, within rasterisation error.
    head_area = (mask > 0).sum()
    assert abs(head_area - np.pi * t.a * t.b) / (np.pi * t.a * t.b) < 0.02
    # OFD in the 2nd/3rd-trimester range the generator promises.
    assert 55 <= 2 * t.a * t.pixel_size_mm <= 100


def test_ellipse_perimeter_known_values():
    assert np.isclose(ellipse_perimeter(1.0, 1.0), 2 * np.pi)
    # a=2, b=1: the exact perimeter is 9.688448220547675 (complete elliptic integral).
    assert np.isclose(ellipse_perimeter(2.0, 1.0), 9.688448220547675, rtol=1e-9)


def test_phantom_is_not_trivially_separable():
    """No single intensity threshold separates the head from the background well (speckle)."""
    rng = np.random.default_rng(0)
    image, mask, _ = make_phantom(128, rng)
    x = image[..., 0]
    inside_sector = x > 0
    fg, bg = x[(mask == 1) & inside_sector], x[(mask == 0) & inside_sector]
    best = max(((fg > t).mean() + (bg <= t).mean()) / 2 for t in np.linspace(0, 1, 101))
    assert best < 0.85, best


def test_unlabelled_phantoms_are_extra_images_without_masks(tmp_path):
    assert main(["data", "synth", str(tmp_path / "a"), "--n", "4", "--size", "64"]) == 0
    assert main(["data", "synth", str(tmp_path / "b"), "--n", "4", "--size", "64", "--unlabelled", "3"]) == 0
    a, b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    # the annotated images are the same bytes: adding unlabelled ones never moves a benchmark's data
    annotated = [f"{d}/{i:05d}.png" for d in ("images", "masks") for i in range(4)]
    assert {k: b[k] for k in annotated} == {k: a[k] for k in annotated}
    assert sorted(k for k in b if k.startswith("images/")) == [f"images/{i:05d}.png" for i in range(7)]
    ds = read_dataset(tmp_path / "b")
    assert len(ds) == 7 and [r.mask is None for r in ds.records] == [False] * 4 + [True] * 3
    assert [r.unlabelled for r in ds.records] == [False] * 4 + [True] * 3  # flagged in meta.csv: by design
