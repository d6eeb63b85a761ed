import numpy as np
import pytest

from lightseg_tf.data.readers import read_dataset
from lightseg_tf.evaluation.robustness import (AXES, SEVERITIES, CorruptedDataset, corrupt, robustness_table,
                                              write_robustness)
from lightseg_tf.models.predictor import Predictor


def _scene():
    yy, xx = np.mgrid[0:48, 0:64]
    mask = ((((xx - 32) / 20) ** 2 + ((yy - 24) / 12) ** 2) <= 1).astype(np.int32)
    image = (0.2 + 0.6 * mask + 0.05 * np.random.default_rng(0).random((48, 64))).astype(np.float32)[..., None]
    return image, mask


@pytest.mark.parametrize("name", sorted(SEVERITIES))
def test_severity_zero_is_identity_and_distortion_grows(name):
    image, mask = _scene()
    levels = SEVERITIES[name]
    same, same_mask = corrupt(image, mask, name, levels[0])
    np.testing.assert_allclose(same, image, atol=1e-6)
    np.testing.assert_array_equal(same_mask, mask)
    errors = [float(((corrupt(image, mask, name, lv)[0] - image) ** 2).mean()) for lv in levels]
    assert all(e > 0 for e in errors[1:])
    if name not in ("brightness",):  # brightness x0.7 and x1.3 are two directions, not a ladder
        assert errors[1:] == sorted(errors[1:])


def test_rotation_keeps_image_and_mask_aligned():
    image, mask = _scene()
    img2, mask2 = corrupt(image, mask, "rotation", 10.0)
    assert set(np.unique(mask2)) <= {0, 1}
    assert ((img2[..., 0] > 0.5) == (mask2 == 1)).mean() > 0.97


class _Threshold(Predictor):
    """A "model" that thresholds brightness: it degrades as a corruption washes the head out."""

    def predict_probs(self, batch):
        bright = batch[..., 0] > 0.35
        probs = np.zeros((*batch.shape[:3], 4), np.float32)
        probs[..., 0] = ~bright
        probs[..., 1] = bright
        return probs


def test_dice_falls_with_severity_and_the_table_is_written(phantom_dir, tmp_path):
    ds = read_dataset(phantom_dir).subset(["00000", "00001"])
    rows = robustness_table({"threshold": _Threshold(32)}, ds, corruptions=["contrast", "gaussian_blur"])
    assert len(rows) == len(SEVERITIES["contrast"]) + len(SEVERITIES["gaussian_blur"])
    assert {"model", "corruption", "level", "mean_fg_dice", "dice_Brain"} <= set(rows[0])
    for name in ("contrast", "gaussian_blur"):
        dice = [r["dice_Brain"] for r in rows if r["corruption"] == name]
        assert dice[0] > 0.3, dice  # the intact images are found
        assert all(a > b for a, b in zip(dice, dice[1:])), f"{name}: Dice must fall with severity, got {dice}"
    out = write_robustness(rows, tmp_path / "rob")
    assert (out / "robustness.png").stat().st_size > 1000
    assert set(AXES) == set(SEVERITIES)  # every curve's x axis says what its severity is
    assert (out / "robustness.csv").read_text().count("\n") == len(rows) + 1
    view = CorruptedDataset(ds, "rotation", 15.0)
    assert view.load_pair(ds.records[0])[0].shape == ds.load_pair(ds.records[0])[0].shape


def test_speckle_is_the_same_in_every_process():
    """The noise seed comes from the record id, not Python's per-process salted hash()."""
    import subprocess
    import sys

    code = ("import numpy as np; from lightseg_tf.evaluation.robustness import CorruptedDataset; "
            "from lightseg_tf.data.dataset import Record\n"
            "class D:\n    def load_pair(self, r): return np.full((8, 8, 1), 0.5, np.float32), np.zeros((8, 8), np.int32)\n"
            "v = CorruptedDataset.__new__(CorruptedDataset); v.base, v.name, v.level = D(), 'speckle', 0.4\n"
            "print(float(v.load_pair(Record('abc', 'x', None, 's'))[0].sum()))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout for seed in (1, 2)}
    assert len(outs) == 1, outs
