"""The stand-alone edge runner: own dependencies only, and the same letterbox as training."""

import csv
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from lightseg_tf.data.letterbox import letterbox_image, letterbox_params, unletterbox_mask
from lightseg_tf.deploy.convert import build_card, convert, write_export
from lightseg_tf.deploy.runtime import load_tflite
from lightseg_tf.models import build_model

RUNNER = REPO_ROOT / "tflite" / "run_edge.py"
FORBIDDEN = ("tensorflow", "tf_keras", "keras", "lightseg_tf", "cv2", "albumentations")

# Runs the runner with the heavy packages made unimportable, then proves none was loaded.
GUARD = f"""
import importlib.abc, runpy, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {FORBIDDEN!r}:
            raise ImportError('edge runner must not import ' + name)
sys.meta_path.insert(0, Block())
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name='__main__')
except SystemExit as e:
    loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})
    assert not loaded, loaded
    raise
"""


def _load_runner():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_edge", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("h,w,size", [(540, 800, 64), (64, 64, 32), (50, 90, 48)])
def test_numpy_letterbox_matches_training_letterbox(h, w, size):
    run_edge = _load_runner()
    gray = np.random.default_rng(1).integers(0, 256, (h, w), dtype=np.uint8)
    boxed, box = run_edge.letterbox(gray, size)
    ref, lb = letterbox_image(gray.astype(np.float32)[..., None] / 255.0, size)
    assert box == (lb.pad_x, lb.pad_y, lb.new_w, lb.new_h)
    assert np.abs(boxed.astype(np.float32) - ref[..., 0] * 255).max() <= 1.0
    cmap = np.random.default_rng(2).integers(0, 4, (size, size)).astype(np.uint8)
    np.testing.assert_array_equal(run_edge.unletterbox_nearest(cmap, box, h, w),
                                  unletterbox_mask(cmap, letterbox_params(h, w, size)))


def test_runner_on_a_phantom_folder_with_only_its_own_dependencies(phantom_dir, tmp_path):
    model = build_model("unet", (32, 32, 1), 4, base_filters=4, depth=2)
    rng = np.random.default_rng(0)
    content = convert(model, "int8", [rng.random((32, 32, 1), dtype=np.float32) for _ in range(3)])
    card = build_card(content, name="tiny", classes=["background", "Brain", "CSP", "LV"],
                      colors=[[0, 0, 0], [230, 60, 60], [60, 200, 90], [60, 110, 230]], size=32, quant="int8")
    path, _ = write_export(content, card, tmp_path / "model.tflite")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", GUARD, str(RUNNER), str(path), str(phantom_dir / "images"),
                           "--out", str(out), "--threads", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "FPS" in proc.stdout
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 16 and {"image", "inference_ms", "pixels_Brain"} <= set(rows[0])
    # Given the same letterboxed pixels (their letterbox equality is tested above), the
    # runner's class map equals the package's TFLite path mapped back to 64x64.
    from PIL import Image

    gray = np.asarray(Image.open(phantom_dir / "images" / "00000.png").convert("L"))
    boxed, _ = _load_runner().letterbox(gray, 32)
    class_map, _ = load_tflite(path).run(boxed[..., None].astype(np.float32) / 255.0)
    expected = unletterbox_mask(class_map, letterbox_params(64, 64, 32))
    got = np.asarray(Image.open(out / "00000_classes.png"))
    assert got.shape == (64, 64)
    np.testing.assert_array_equal(got, expected)
    assert np.asarray(Image.open(out / "00000_overlay.png")).shape == (64, 64, 3)


def test_runner_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, str(RUNNER), str(tmp_path / "none.tflite"), str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such model file" in proc.stderr and "Traceback" not in proc.stderr


def test_training_domain_follows_the_demos_case_table():
    """Python's rule (lightseg measure) against the table the browser and Android tests read."""
    import json
    from pathlib import Path

    from lightseg_tf.deploy.runtime import UNKNOWN_TRAINING_DOMAIN, training_domain_text

    resources = Path(__file__).resolve().parents[2] / "android_demo/app/src/test/resources"
    cases = json.loads((resources / "training_domain_cases.json").read_text())["cases"]
    assert len(cases) >= 10
    for case in cases:
        card = case["card"] if "card" in case else json.loads((resources / "golden" / case["golden_card"]).read_text())
        domain = training_domain_text(card)
        assert domain == case["domain"], case["name"]
        assert f"model trained on: {domain or UNKNOWN_TRAINING_DOMAIN}" == case["line"], case["name"]
