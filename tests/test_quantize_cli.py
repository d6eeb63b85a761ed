"""``lightseg quantize`` (QAT and PTQ) and ``lightseg benchmark`` on a tiny trained run."""

import json

import numpy as np
import pytest

from lightseg_tf.benchmark import benchmark, to_markdown
from lightseg_tf.cli import main
from lightseg_tf.config import load_config
from lightseg_tf.export import load_tflite, read_card
from lightseg_tf.training import train


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = load_config(None, ["data.image_size=32", "data.batch_size=4", "data.phantom_n=12",
                             "model.name=lightseg_student", "model.options={width: 0.25}", "train.epochs=1",
                             "train.verbose=0", "data.augment.enabled=false", f"run_root={root}", "name=tiny"])
    return train(cfg).run_dir


@pytest.mark.slow
def test_quantize_ptq_and_qat_write_checked_int8_models(tiny_run, capsys):
    assert main(["quantize", str(tiny_run), "--mode", "ptq-int8", "--calib-n", "4"]) == 0
    assert main(["quantize", str(tiny_run), "--mode", "qat", "--epochs", "1", "--calib-n", "4"]) == 0
    assert (tiny_run / "qat.h5").exists() and (tiny_run / "qat_history.csv").exists()
    for name in ("model_ptq_int8.tflite", "model_qat.tflite"):
        seg = load_tflite(tiny_run / name)
        card = read_card(tiny_run / name)
        assert card["quantization"] == "int8" and card["input"]["dtype"] == "uint8"
        assert card["model"]["architecture"] == "lightseg_student"
        class_map, probs = seg.run(np.zeros((32, 32, 1), np.float32))
        assert class_map.shape == (32, 32) and probs.shape == (32, 32, 4)
    assert read_card(tiny_run / "model_qat.tflite")["model"]["source"] == "qat.h5"


@pytest.mark.slow
def test_benchmark_rows_and_table(tiny_run, tmp_path):
    result = benchmark([str(tiny_run), "lightseg_student"], size=32, runs=3, out_dir=tmp_path, quants=("float32", "int8"))
    trained, plain = result["rows"]
    assert trained["input"] == 32 and trained["parameters"] > 0 and trained["gflops"] > 0
    assert "test_mean_fg_dice" in trained and plain["model"] == "lightseg_student"
    for row in result["rows"]:
        assert row["int8_ms_t1"] > 0 and row["int8_ms_t2"] > 0 and row["float32_kib"] > row["int8_kib"]
    table = to_markdown(result)
    assert table.count("\n") == 3 and "int8 2t" in table
    json.dumps(result)
