import numpy as np
import pytest

from lightseg_tf.data.readers import read_dataset
from lightseg_tf.robustness import SEVERITIES, CorruptedDataset, corrupt, plot_robustness, robustness_table


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


def test_table_and_plot(phantom_dir, tmp_path):
    ds = read_dataset(phantom_dir).subset(["00000", "00001"])

    def oracle_ish(batch):  # a "model" that thresholds brightness: degrades under corruption
        bright = batch[..., 0] > 0.35
        probs = np.zeros((*batch.shape[:3], 4), np.float32)
        probs[..., 0] = ~bright
        probs[..., 1] = bright
        return probs

    rows = robustness_table({"threshold": oracle_ish}, ds, 32, corruptions=["brightness", "jpeg"])
    assert len(rows) == len(SEVERITIES["brightness"]) + len(SEVERITIES["jpeg"])
    assert {"model", "corruption", "level", "mean_fg_dice", "dice_Brain"} <= set(rows[0])
    plot_robustness(rows, tmp_path / "rob.png")
    assert (tmp_path / "rob.png").stat().st_size > 1000
    view = CorruptedDataset(ds, "rotation", 15.0)
    assert view.load_pair(ds.records[0])[0].shape == ds.load_pair(ds.records[0])[0].shape
