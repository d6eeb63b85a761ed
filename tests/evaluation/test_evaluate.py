"""Evaluation maps predictions back to the original resolution before scoring."""

import numpy as np
import pytest
from PIL import Image

from lightseg_tf.data.letterbox import letterbox_mask
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.errors import LightsegError
from lightseg_tf.evaluation.evaluate import by_id_block, evaluate, format_blocks, format_summary, write_results
from lightseg_tf.anatomy.postprocess import make_postprocess
from lightseg_tf.models.predictor import Predictor


def _non_square_dataset(tmp_path):
    yy, xx = np.mgrid[0:54, 0:80]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(3):
        mask = ((((xx - 40 - k) / 30) ** 2 + ((yy - 27) / 18) ** 2) <= 1).astype(np.uint8)
        Image.fromarray((mask * 120 + 30).astype(np.uint8)).save(tmp_path / f"images/{k}.png")
        Image.fromarray(mask).save(tmp_path / f"masks/{k}.png")
    return read_dataset(tmp_path, "folder", classes=["background", "head"])


class _Oracle(Predictor):
    """The letterboxed truth as probabilities, in record order, plus a stray blob far from the head."""

    def __init__(self, masks, size):
        super().__init__(size, ("background", "head"))
        self.masks, self.seen = masks, 0

    def predict_probs(self, batch):
        out = []
        for _ in batch:
            truth = self.masks[self.seen].copy()
            truth[9:12, 1:4] = 1  # inside the 80x54 image's letterbox, away from the centred ellipse
            out.append(np.eye(2, dtype=np.float32)[truth])
            self.seen += 1
        return np.stack(out)


def test_oracle_scores_near_one_at_original_size_and_postprocess_removes_the_stray_blob(tmp_path):
    ds = _non_square_dataset(tmp_path)
    size = 32
    oracle = _Oracle([letterbox_mask(ds.load_mask(r), size) for r in ds.records], size)
    result = evaluate(oracle, ds, batch_size=2, postprocess=make_postprocess(ds.classes))
    assert oracle.seen == 3
    assert result.summary["images"] == 3
    raw, post = result.summary["per_class"]["head"], result.post.summary["per_class"]["head"]
    # Down to 32 px and back to 80x54: only boundary pixels (and, before post-processing, the blob) differ.
    assert 0.9 < raw["dice"] < post["dice"] < 1.0
    assert post["dice"] > 0.95 and post["hd95"] <= 2.5 < raw["hd95"]  # pixels (no pixel size)
    assert result.summary["surface_distance_units"] == "px"
    assert post is not None and result.post.summary["postprocessed"] and not result.summary["postprocessed"]
    assert len(result.rows) == len(result.post.rows) == 3
    csv_path, json_path = write_results(result, tmp_path / "out", "t")
    assert csv_path.read_text().count("\n") == 4 and json_path.exists()
    assert "head" in format_summary(result.summary)
    # The interval resamples the records' subjects and holds the mean it is about.
    lo, hi = result.post.summary["mean_fg_dice_ci95"]
    assert lo <= result.post.summary["mean_fg_dice"] <= hi < 1.0
    assert "95 % interval over subjects" in format_summary(result.post.summary)


def test_dice_by_id_block_is_hand_computed():
    classes = ("background", "PS", "FH")
    nan = float("nan")
    rows = [{"id": "00049", "dice_background": 1.0, "dice_PS": 0.8, "dice_FH": 0.9},
            {"id": "00010", "dice_background": 1.0, "dice_PS": 0.6, "dice_FH": nan},  # FH absent here
            {"id": "00050", "dice_background": 0.9, "dice_PS": nan, "dice_FH": nan},
            {"id": "00120", "dice_background": 1.0, "dice_PS": 0.5, "dice_FH": 0.7}]
    blocks = by_id_block(rows, classes, 50)
    assert [b["ids"] for b in blocks] == [[0, 49], [50, 99], [100, 149]]
    assert [b["n"] for b in blocks] == [2, 1, 1]
    assert blocks[0]["dice"]["PS"] == pytest.approx(0.7) and blocks[0]["dice"]["FH"] == pytest.approx(0.9)
    assert blocks[0]["mean_fg_dice"] == pytest.approx(0.8)
    assert blocks[1]["dice"]["PS"] is None and blocks[1]["mean_fg_dice"] is None  # no foreground anywhere
    assert blocks[2]["mean_fg_dice"] == pytest.approx(0.6)
    table = format_blocks(blocks)
    assert "00000-00049" in table and "0.7000" in table and "n/a" in table
    with pytest.raises(LightsegError, match="numeric image ids.*'case_1'"):
        by_id_block([{"id": "case_1", "dice_background": 1.0, "dice_PS": 1.0, "dice_FH": 1.0}], classes, 50)
    with pytest.raises(LightsegError, match="--blocks 0"):
        by_id_block(rows, classes, 0)
