"""Golden vectors: Python's device path, the committed set the Android and browser tests read."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from lightseg_tf.anatomy.biometry import ellipse_perimeter
from lightseg_tf.anatomy.precision import round_half_up, round_mm
from lightseg_tf.data.letterbox import letterbox_image, letterbox_uint8

ROOT = REPO_ROOT
GOLDEN = ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"


def test_uint8_letterbox_agrees_with_the_training_letterbox():
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (70, 113), dtype=np.uint8)
    boxed, lb = letterbox_uint8(gray, 64)
    ref, lb_ref = letterbox_image(gray.astype(np.float32)[..., None], 64)
    assert lb == lb_ref and boxed.dtype == np.uint8
    assert np.abs(boxed.astype(int) - np.round(ref[..., 0]).astype(int)).max() <= 1


def test_committed_golden_vectors_are_what_python_produces_today(tmp_path):
    from lightseg_tf.deploy.golden import read_raw, write_golden

    manifest = json.loads((GOLDEN / "golden.json").read_text())
    gen = manifest["generator"]
    write_golden(GOLDEN / manifest["model"], tmp_path, n=gen["n"], seed=gen["seed"], real_shapes=gen["real_shapes"],
                 hard=gen["hard"])
    fresh = json.loads((tmp_path / "golden.json").read_text())
    assert fresh["sha256"] == manifest["sha256"] and len(fresh["cases"]) == len(manifest["cases"])
    for old, new in zip(manifest["cases"], fresh["cases"]):
        assert old["files"] == new["files"]
        for key, name in old["files"].items():
            assert read_raw(tmp_path / name) == read_raw(GOLDEN / name), f"{old['name']} {key}"
        none = {k for k, v in old["measurements"].items() if v is None}  # the blank case: no head
        assert none == {k for k, v in new["measurements"].items() if v is None}, old["name"]
        assert ({k: v for k, v in new["measurements"].items() if k not in none}
                == pytest.approx({k: v for k, v in old["measurements"].items() if k not in none}, rel=1e-9))
        for part in ("components", "raw", "structures"):
            assert new["confidence"][part] == pytest.approx(old["confidence"][part], rel=1e-9), old["name"]
        assert new["confidence"]["score"] == pytest.approx(old["confidence"]["score"], rel=1e-9)
        assert new["confidence"]["verdicts"] == old["confidence"]["verdicts"]
        assert new["confidence"]["structure_flags"] == old["confidence"]["structure_flags"]
    assert fresh["confidence"] == manifest["confidence"]
    assert any(c["measurements"]["hc_mm"] for c in manifest["cases"]), "the golden model must find a head"


def test_golden_cases_put_every_confidence_term_to_work():
    """The clean phantoms score 1 on fragments, border and area: the hard cases must not, or a port
    could get those terms wrong and still pass; and each verdict (low / ok / uncalibrated) occurs."""
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    comps = [c["confidence"]["components"] for c in manifest["cases"]]
    assert any(c and c["fragments"] < 0.9 for c in comps)
    assert any(c and c["border"] < 1 for c in comps) and any(c and c["area"] < 1 for c in comps)
    assert any(not c for c in comps)  # no head: score 0
    assert all(c["confidence"]["structures"] for c in manifest["cases"] if c["measurements"]["hc_px"])
    verdicts = {v for c in manifest["cases"] for _, v in c["confidence"]["verdicts"]}
    assert verdicts == {"low", "ok", "uncalibrated"}
    # per-structure flags: rows that flag a structure, rows that flag none, and rows that flag several
    flagged = [len(low) for c in manifest["cases"] for _, low in c["confidence"]["structure_flags"]]
    assert 0 in flagged and 1 in flagged and max(flagged) >= 2
    table = {(s, t): v for s, t, v in manifest["confidence"]["verdict_table"]}
    assert table[(0.295, 0.3)] == "ok"  # half-up on 0.295, where Math.round(0.295 * 100) gives 29
    assert table[(0.1449999, 0.15)] == "low"


def test_golden_set_holds_real_shaped_cases_and_stays_small():
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    shapes = {(c["width"], c["height"]) for c in manifest["cases"]}
    assert {(800, 540), (540, 800)} <= shapes  # HC18's scan size, and turned
    big = [c for c in manifest["cases"] if c["width"] * c["height"] >= 800 * 540]
    assert all(c["measurements"]["hc_px"] > 1000 for c in big)  # a whole head at real size
    data = sum(p.stat().st_size for p in GOLDEN.iterdir() if p.suffix != ".tflite")
    assert data < 400_000, f"golden vectors hold {data} bytes besides the model"


def test_measure_and_edge_runner_reproduce_the_golden_class_maps_hc_and_confidence(capsys):
    """``lightseg measure`` on the .tflite and tflite/run_edge.py compute the device path exactly;
    measure's confidence is the golden one (the score the browser and Android ports are checked
    against), from the same inference's probabilities."""
    import importlib.util

    from lightseg_tf.cli import main
    from lightseg_tf.deploy.golden import read_raw

    spec = importlib.util.spec_from_file_location("run_edge", ROOT / "tflite" / "run_edge.py")
    run_edge = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_edge)
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    segmenter = run_edge.Segmenter(GOLDEN / manifest["model"], threads=1, edgetpu=False)
    for case in manifest["cases"]:
        want = np.frombuffer(read_raw(GOLDEN / case["files"]["class_map_original"]), np.uint8)
        gray = np.frombuffer(read_raw(GOLDEN / case["files"]["image"]), np.uint8).reshape(case["height"], -1)
        edge_map, _ = segmenter(gray)
        assert (edge_map.ravel() == want).all(), case["name"]
        capsys.readouterr()
        px = ["--pixel-size", str(case["pixel_size_mm"])] if case["pixel_size_mm"] else []
        assert main(["measure", "--model", str(GOLDEN / manifest["model"]), str(GOLDEN / case["files"]["png"]),
                     *px, "--json"]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        want_hc = case["measurements"]["hc_mm"]
        assert row.get("hc") == round_mm(want_hc), case["name"]  # as reported, to 0.1 mm
        if want_hc is not None:
            e = row["ellipse_px"]  # and the geometry behind it, unrounded
            assert ellipse_perimeter(e["a"], e["b"]) * case["pixel_size_mm"] == pytest.approx(want_hc, rel=1e-9)
        conf = case["confidence"]
        assert row["confidence"] == round_half_up(conf["score"], 2), case["name"]
        assert row["confidence_components"] == {k: round_half_up(v, 3) for k, v in conf["components"].items()}
        assert row["confidence_status"] == "uncalibrated"  # the golden card has no threshold
        assert row["training_domain"] == "phantom (lightseg)"  # an older card: from its training_data


def test_tflite_confidence_reads_the_probabilities_of_the_devices_inference():
    """For a .tflite, predict_with_confidence gets the class map AND the probabilities from one
    inference on the devices' uint8 letterbox (TFLitePredictor.predict_device): exactly the golden
    score. (The training letterbox of the float image differs from it by a grey level in a few
    pixels and moved the score by up to 4e-4.)"""
    from lightseg_tf.deploy.golden import read_raw
    from lightseg_tf.deploy.runtime import load_tflite
    from lightseg_tf.evaluation.confidence import predict_with_confidence

    manifest = json.loads((GOLDEN / "golden.json").read_text())
    seg = load_tflite(GOLDEN / manifest["model"])
    for case in manifest["cases"]:
        gray = np.frombuffer(read_raw(GOLDEN / case["files"]["image"]), np.uint8).reshape(case["height"], -1)
        mask, conf = predict_with_confidence(seg, gray.astype(np.float32)[..., None] / 255.0)
        assert (mask.ravel() == np.frombuffer(read_raw(GOLDEN / case["files"]["class_map_original"]), np.uint8)).all()
        assert conf["score"] == pytest.approx(case["confidence"]["score"], rel=1e-12, abs=1e-12), case["name"]


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("kotlinc") and Path("/usr/share/java/junit4.jar").exists()),
                    reason="Debian's kotlin and junit4 are not installed (.ci/run installs them)")
def test_kotlin_core_passes_its_golden_tests():
    out = subprocess.run(["bash", str(ROOT / "android_demo" / "run_core_tests.sh"), str(GOLDEN)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "OK (" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
