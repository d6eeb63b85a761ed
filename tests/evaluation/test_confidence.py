"""Confidence end to end: calibrate on VAL, then measure / evaluate --biometry / export carry the threshold."""

import csv
import json

import numpy as np
import pytest

from scipy import ndimage

from lightseg_tf.anatomy.confidence import LOW_CONFIDENCE, structure_flag
from lightseg_tf.cli import main
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.evaluation.confidence import add_confidence, calibrate_confidence, predict_with_confidence
from lightseg_tf.evaluation.evaluate import format_structure_flags, structure_flag_summary
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


class _UnsureOfCSP(_Oracle):
    """The oracle, except on every other image: the CSP drawn three times too large, at probability 0.6."""

    def __init__(self, dataset):
        super().__init__(dataset)
        self.k = 0

    def predict_image(self, image):
        probs = super().predict_image(image)
        self.k += 1
        csp = probs[..., 2] > 0.5
        if self.k % 2 == 0 and csp.any():
            grown = csp.copy()
            while grown.sum() < 3 * csp.sum():
                grown = ndimage.binary_dilation(grown)
            probs[grown] = [0.4, 0.0, 0.6, 0.0]
        return probs


def test_a_structure_the_model_is_unsure_of_gets_its_own_flag(phantom_dir):
    ds = read_dataset(phantom_dir)
    holding = sum(bool((ds.load_mask(r) == 2).any()) for r in ds.records)
    cal = calibrate_confidence(_UnsureOfCSP(ds), ds)
    csp, brain = cal["structures"]["CSP"], cal["structures"]["Brain"]
    # every unsure CSP is at most Dice 0.5 (bad), its margin 0.2 against 1.0: the threshold lies between
    assert csp["val"]["bad"] == csp["val"]["flagged"] == csp["val"]["flagged_bad"] == holding // 2
    assert 0.2 < csp["threshold"] <= 1.0 and brain["val"]["bad"] == brain["val"]["flagged"] == 0
    assert "structure_dice_min 0.7" in cal["structure_rule"]

    predictor = _UnsureOfCSP(ds)
    flagged_rows = []
    for rec in ds.records:
        mask, conf = predict_with_confidence(predictor, ds.load_image(rec), ds.classes)
        m = add_confidence({"flags": []}, conf, cal)
        assert ("CSP" in m["confidence_low_structures"]) == (conf["structures"].get("CSP", 1.0) < 0.5)
        flagged_rows.append(m)
    low = [m for m in flagged_rows if m["confidence_low_structures"]]
    assert len(low) == holding // 2 and all(m["flags"][0] == structure_flag("CSP") for m in low)


def test_structure_flag_summary_splits_dice_by_the_flag():
    rows = [{"dice_PS": 0.2, "low_confidence_PS": True}, {"dice_PS": 0.9, "low_confidence_PS": False},
            {"dice_PS": 0.8, "low_confidence_PS": False}, {"dice_PS": float("nan"), "low_confidence_PS": True}]
    s = structure_flag_summary(rows, {"PS": 0.93})["PS"]
    assert s == {"threshold": 0.93, "n": 3, "flagged": 1, "share_flagged": pytest.approx(1 / 3),
                 "dice_flagged": 0.2, "dice_unflagged": pytest.approx(0.85)}
    assert "Dice flagged 0.2000 vs unflagged 0.8500" in format_structure_flags({"PS": s})
    assert structure_flag_summary(rows[3:], {"PS": 0.93})["PS"]["dice_flagged"] is None


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
    out = json.loads(capsys.readouterr().out)
    hc = out["hc_error_mm"]
    assert hc["confidence"]["threshold"] == 1.0 and hc["confidence"]["share_flagged"] == 1.0
    per_structure = out["segmentation"]["structure_confidence"]
    assert set(per_structure) == set(cal["structures"])
    assert all(s["threshold"] == cal["structures"][c]["threshold"] for c, s in per_structure.items())

    assert main(["export", str(run), "--quant", "float32", "--out", str(tmp_path / "m.tflite")]) == 0
    card = json.loads((tmp_path / "m.json").read_text())
    assert set(card["confidence"]) == {"score", "threshold", "calibrated_on", "structures"}
    assert card["confidence"]["threshold"] == 1.0
    assert card["confidence"]["structures"] == {k: v["threshold"] for k, v in cal["structures"].items()}
    capsys.readouterr()
    assert main(["measure", "--model", str(tmp_path / "m.tflite"), image, "--json"]) == 0
    (dev,) = json.loads(capsys.readouterr().out)
    assert dev["confidence_status"] == "low" and LOW_CONFIDENCE in dev["flags"]

    # TTA changes the probabilities the score reads: a TTA export takes no threshold chosen without it.
    assert main(["export", str(run), "--quant", "float32", "--tta", "flips", "--out", str(tmp_path / "t.tflite")]) == 0
    card = json.loads((tmp_path / "t.json").read_text())
    assert card["test_time_augmentation"] == {"mode": "flips", "views": 4} and card["confidence"] is None
    assert main(["calibrate", str(run), "--tta", "flips"]) == 0
    assert json.loads((run / "confidence.json").read_text())["calibrated_on"]["tta"] == "flips"
    assert main(["export", str(run), "--quant", "float32", "--tta", "flips", "--out", str(tmp_path / "t.tflite")]) == 0
    assert json.loads((tmp_path / "t.json").read_text())["confidence"]["calibrated_on"]["tta"] == "flips"


def test_structure_flags_print_as_flags_also_without_a_head():
    from lightseg_tf.anatomy.biometry import measure_mask
    from lightseg_tf.evaluation.measure import report_lines

    classes = ["background", "Brain", "CSP", "LV"]
    conf = {"score": 0.0, "structures": {"CSP": 0.2, "LV": 0.9}, "components": {}}
    cal = {"threshold": 0.3, "structures": {"CSP": 0.5, "LV": 0.5}}
    m = add_confidence(measure_mask(np.zeros((32, 32), np.int32), classes, None), conf, cal)
    lines = report_lines(m)
    assert m["confidence_low_structures"] == ["CSP"]
    assert f"! {LOW_CONFIDENCE}" in lines and f"! {structure_flag('CSP')}" in lines
    assert "low confidence" not in lines[0] and not any("(LV)" in line for line in lines)
