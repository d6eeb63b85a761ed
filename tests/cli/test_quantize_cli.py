"""``lightseg quantize`` (QAT and PTQ) and ``lightseg benchmark`` on a tiny trained run."""

import json

import numpy as np
import pytest

from lightseg_tf.evaluation.benchmark import DOC_BEGIN, DOC_END, benchmark, to_markdown, write_doc_section
from lightseg_tf.cli import main
from lightseg_tf.config import load_config
from lightseg_tf.deploy.runtime import load_tflite, read_card
from lightseg_tf.training.trainer import train


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
    assert 0 <= trained["int8_test_mean_fg_dice"] <= 1 and "int8_test_mean_fg_dice" not in plain
    for row in result["rows"]:
        assert row["int8_ms_t1"] > 0 and row["int8_ms_t2"] > 0 and row["float32_kib"] > row["int8_kib"]
        assert "ARG_MAX" in row["int8_xnnpack_fallback"]  # XNNPACK has no ARG_MAX: the list is real
    table = to_markdown(result)
    assert table.count("\n") == 3 and "int8 2t" in table
    json.dumps(result)


def test_benchmark_doc_section_is_replaced_not_appended(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nHand-written notes.\n")
    row = {"model": "rtseg", "parameters": 10, "int8_ms_t2": 9.5, "int8_xnnpack_fallback": ["ARG_MAX", "CAST"]}
    result = {"date": "2026-11-30", "machine": "x86_64, 2 cores", "runs": 50, "size": 256, "rows": [row]}
    write_doc_section(doc, result, "lightseg benchmark rtseg --doc BENCHMARKS.md")
    write_doc_section(doc, {**result, "rows": [{**row, "int8_ms_t2": 8.25}]}, "lightseg benchmark rtseg")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nHand-written notes.\n")
    assert text.count(DOC_BEGIN) == 1 and text.count(DOC_END) == 1
    assert "| 8.25 |" in text and "| 9.5 |" not in text and "2026-11-30, x86_64, 2 cores" in text
    assert "`lightseg benchmark rtseg`" in text and "(ARG_MAX, CAST)" in text
    assert "| 2 |" in text  # the fallback column counts the ops
