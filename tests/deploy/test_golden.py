"""Golden vectors: Python's device path, the committed set the Android and browser tests read."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from lightseg_tf.anatomy.biometry import ellipse_perimeter
from lightseg_tf.anatomy.precision import round_mm
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
    write_golden(GOLDEN / manifest["model"], tmp_path, n=gen["n"], seed=gen["seed"], real_shapes=gen["real_shapes"])
    fresh = json.loads((tmp_path / "golden.json").read_text())
    assert fresh["sha256"] == manifest["sha256"] and len(fresh["cases"]) == len(manifest["cases"])
    for old, new in zip(manifest["cases"], fresh["cases"]):
        assert old["files"] == new["files"]
        for key, name in old["files"].items():
            assert read_raw(tmp_path / name) == read_raw(GOLDEN / name), f"{old['name']} {key}"
        assert new["measurements"] == pytest.approx(old["measurements"], rel=1e-9)
    assert any(c["measurements"]["hc_mm"] for c in manifest["cases"]), "the golden model must find a head"


def test_golden_set_holds_real_shaped_cases_and_stays_small():
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    shapes = {(c["width"], c["height"]) for c in manifest["cases"]}
    assert {(800, 540), (540, 800)} <= shapes  # HC18's scan size, and turned
    big = [c for c in manifest["cases"] if c["width"] * c["height"] >= 800 * 540]
    assert all(c["measurements"]["hc_px"] > 1000 for c in big)  # a whole head at real size
    data = sum(p.stat().st_size for p in GOLDEN.iterdir() if p.suffix != ".tflite")
    assert data < 400_000, f"golden vectors hold {data} bytes besides the model"


def test_measure_and_edge_runner_reproduce_the_golden_class_maps_and_hc(capsys):
    """``lightseg measure`` on the .tflite and tflite/run_edge.py compute the device path exactly."""
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
        assert main(["measure", "--model", str(GOLDEN / manifest["model"]), str(GOLDEN / case["files"]["png"]),
                     "--pixel-size", str(case["pixel_size_mm"]), "--json"]) == 0
        row = json.loads(capsys.readouterr().out)[0]
        want_hc = case["measurements"]["hc_mm"]
        assert row.get("hc") == round_mm(want_hc), case["name"]  # as reported, to 0.1 mm
        e = row["ellipse_px"]  # and the geometry behind it, unrounded
        assert ellipse_perimeter(e["a"], e["b"]) * case["pixel_size_mm"] == pytest.approx(want_hc, rel=1e-9)
        assert row["training_domain"] == "phantom (lightseg)"  # an older card: from its training_data


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("kotlinc") and Path("/usr/share/java/junit4.jar").exists()),
                    reason="Debian's kotlin and junit4 are not installed (.ci/run installs them)")
def test_kotlin_core_passes_its_golden_tests():
    out = subprocess.run(["bash", str(ROOT / "android_demo" / "run_core_tests.sh"), str(GOLDEN)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "OK (" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
