"""Confidence end to end: calibrate on VAL, then measure / evaluate --biometry / export carry the threshold."""

import csv
import json

import numpy as np
import pytest

from lightseg_tf.anatomy.confidence import LOW_CONFIDENCE
from lightseg_tf.cli import main
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.evaluation.confidence import calibrate_confidence
from lightseg_tf.evaluation.measure import format_hc_errors, hc_errors
from lightseg_tf.models.predictor import Predictor

TINY = ["data.image_size=32", "data.batch_size=4", "data.phantom_n=16", "train.epochs=1", "train.verbose=0",
        "model.options={base_filters: 4, depth: 2}", "data.augment.enabled=false"]


class _Oracle(Predictor):
    """Certain probabilities of each record's true mask, in dataset order (a perfect model)."""

    def __init__(self, dataset):
        super().__init__(64, dataset.classes)
        self.masks = [dataset.load_mask(r) for r in dataset.records]

    def predict_image(self, image):
        return np.eye(len(self.classes), dtype=np.float32)[self.masks.pop(0)]


def test_a_perfect_model_scores_high_and_is_not_flagged(phantom_dir):
    ds = read_dataset(phantom_dir)
    cal = calibrate_confidence(_Oracle(ds), ds)
    assert cal["val"]["bad"] == 0 and cal["threshold"] <= min(r["score"] for r in cal["rows"]) + 0.01
    assert np.median([r["score"] for r in cal["rows"]]) > 0.6
    hc = hc_errors(_Oracle(ds), ds, calibration=cal)
    assert hc["confidence"]["share_flagged"] <= 0.1 and hc["confidence"]["unflagged"]["mean_abs"] < 1.0
    assert "conf <" in format_hc_errors(hc)
    uncal = hc_errors(_Oracle(ds), ds)
    assert uncal["confidence"]["threshold"] is None and "uncalibrated" in format_hc_errors(uncal)
    assert {r["confidence_status"] for r in uncal["rows"]} == {"uncalibrated"}


@pytest.mark.slow
def test_a_one_epoch_model_is_flagged_by_measure_evaluate_and_its_export(tmp_path, capsys):
    assert main(["train", *TINY, f"run_root={tmp_path}", "name=tiny"]) == 0
    run = tmp_path / "tiny"
    image = str(run / "phantom" / "images" / "00000.png")
    capsys.readouterr()

    assert main(["measure", "--model", str(run), image, "--json"]) == 0
    (before,) = json.loads(capsys.readouterr().out)
    assert before["confidence_status"] == "uncalibrated" and before["confidence"] < 0.5  # near random
    assert any("confidence uncalibrated" in n for n in before["notes"])

    assert main(["calibrate", str(run)]) == 0
    assert "confidence threshold" in capsys.readouterr().out
    cal = json.loads((run / "confidence.json").read_text())
    assert cal["calibrated_on"]["model"] == "best.keras" and cal["calibrated_on"]["split"] == "val"
    assert cal["val"]["bad"] == cal["val"]["n"]  # a 1-epoch model gets no VAL head right...
    assert cal["threshold"] == 1.0  # ...so nothing it measures is vouched for

    assert main(["measure", "--model", str(run), image, "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert f"! {LOW_CONFIDENCE}" in out and "(threshold 1.00)" in out
    row = next(csv.DictReader(open(tmp_path / "m" / "measurements.csv")))
    assert row["confidence_status"] == "low" and float(row["confidence_threshold"]) == 1.0
    assert row["flags"].startswith(LOW_CONFIDENCE)

    assert main(["evaluate", str(run), "--data", str(run / "phantom"), "--split", "all", "--biometry", "--json"]) == 0
    hc = json.loads(capsys.readouterr().out)["hc_error_mm"]
    assert hc["confidence"]["threshold"] == 1.0 and hc["confidence"]["share_flagged"] == 1.0

    assert main(["export", str(run), "--quant", "float32", "--out", str(tmp_path / "m.tflite")]) == 0
    card = json.loads((tmp_path / "m.json").read_text())
    assert set(card["confidence"]) == {"score", "threshold", "calibrated_on"} and card["confidence"]["threshold"] == 1.0
    capsys.readouterr()
    assert main(["measure", "--model", str(tmp_path / "m.tflite"), image, "--json"]) == 0
    (dev,) = json.loads(capsys.readouterr().out)
    assert dev["confidence_status"] == "low" and LOW_CONFIDENCE in dev["flags"]
