"""Evaluation maps predictions back to the original resolution before scoring."""

import numpy as np
from PIL import Image

from lightseg_tf.data.letterbox import letterbox_mask
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.evaluate import evaluate, format_summary, write_results
from lightseg_tf.postprocess import make_postprocess


def _non_square_dataset(tmp_path):
    yy, xx = np.mgrid[0:54, 0:80]
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for k in range(3):
        mask = ((((xx - 40 - k) / 30) ** 2 + ((yy - 27) / 18) ** 2) <= 1).astype(np.uint8)
        Image.fromarray((mask * 120 + 30).astype(np.uint8)).save(tmp_path / f"images/{k}.png")
        Image.fromarray(mask).save(tmp_path / f"masks/{k}.png")
    return read_dataset(tmp_path, "folder", classes=["background", "head"])


def test_oracle_scores_near_one_at_original_size_and_postprocess_is_scored_too(tmp_path):
    ds = _non_square_dataset(tmp_path)
    size = 32
    masks = {r.id: letterbox_mask(ds.load_mask(r), size) for r in ds.records}
    order = [r.id for r in ds.records]
    calls = []

    def oracle(batch):  # the letterboxed truth as probabilities, in record order
        out = np.stack([np.eye(2, dtype=np.float32)[masks[order[len(calls) + i]]] for i in range(len(batch))])
        calls.extend(range(len(batch)))
        return out

    result = evaluate(oracle, ds, size, batch_size=2, postprocess=make_postprocess(ds.classes))
    assert result.summary["images"] == 3
    head = result.summary["per_class"]["head"]
    # Down to 32 px and back to 80x54: only boundary pixels can differ.
    assert 0.95 < head["dice"] < 1.0
    assert head["hd95"] is not None and head["hd95"] <= 2.5  # pixels (no pixel size)
    assert result.summary["surface_distance_units"] == "px"
    assert result.post is not None and result.post.summary["postprocessed"]
    assert len(result.rows) == len(result.post.rows) == 3
    csv_path, json_path = write_results(result, tmp_path / "out", "t")
    assert csv_path.read_text().count("\n") == 4 and json_path.exists()
    assert "head" in format_summary(result.summary)
