"""The MediaPipe variant of an export: TFLite Model Metadata written and read back, the RGB graph
agrees with the project's runner, and (slow) MediaPipe Tasks' ImageSegmenter returns the runner's
class map.

The slow test runs MediaPipe in its own virtual environment (mediapipe's pins conflict with the
project's), made once with ``python3 -m venv`` + ``pip install mediapipe==1.2.3`` (the release
checked; ``LIGHTSEG_MEDIAPIPE_SPEC`` names another) and cached under
``~/.cache/lightseg-mediapipe-venv`` (``LIGHTSEG_MEDIAPIPE_VENV`` moves it); it skips, saying
why, when that environment cannot be made (no network, no wheel for this Python).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_unet

from lightseg_tf.cli import main
from lightseg_tf.config import load_config
from lightseg_tf.core.io import sha256_file
from lightseg_tf.data.letterbox import letterbox_uint8
from lightseg_tf.data.phantom import make_phantom
from lightseg_tf.deploy.convert import build_card, convert, write_export
from lightseg_tf.deploy.mediapipe import export_mediapipe, mediapipe_path, predict_mediapipe
from lightseg_tf.deploy.metadata import (METADATA_NAME, decode_metadata, encode_metadata, read_associated_files,
                                         read_metadata, segmenter_metadata, write_metadata)
from lightseg_tf.deploy.runtime import load_tflite, make_interpreter, read_card
from lightseg_tf.errors import LightsegError

SIZE = 48
CLASSES = ["background", "Brain", "CSP", "LV"]
COLORS = [[0, 0, 0], [230, 60, 60], [60, 200, 90], [60, 110, 230]]
SEGMENT = Path(__file__).with_name("mediapipe_segment.py")
MEDIAPIPE_SPEC = os.environ.get("LIGHTSEG_MEDIAPIPE_SPEC", "mediapipe==1.2.3")  # the release checked here
MEDIAPIPE_VENV = Path(os.environ.get("LIGHTSEG_MEDIAPIPE_VENV", Path.home() / ".cache" / "lightseg-mediapipe-venv"))


@pytest.fixture(scope="module")
def tiny_model():
    """A seeded untrained net whose head is scaled up so its class maps are varied and not near-ties."""
    return tiny_unet(SIZE, len(CLASSES))


@pytest.fixture(scope="module")
def calib():
    rng = np.random.default_rng(0)
    return [rng.random((SIZE, SIZE, 1), dtype=np.float32) for _ in range(4)]


def _export(model, calib, out: Path, quant: str) -> tuple[Path, dict]:
    content = convert(model, quant, calib)
    card = build_card(content, name=f"tiny-{quant}", classes=CLASSES, colors=COLORS, size=SIZE, quant=quant)
    card["mediapipe"] = export_mediapipe(model, card, out, quant, calib)
    write_export(content, card, out)
    return out, card


@pytest.fixture(scope="module")
def int8_export(tiny_model, calib, tmp_path_factory):
    return _export(tiny_model, calib, tmp_path_factory.mktemp("mp") / "model.tflite", "int8")


def letterboxed_phantoms(n: int = 6) -> np.ndarray:
    """``n`` phantom frames cropped to varied aspect ratios, letterboxed as the device does: uint8 ``[n,S,S]``."""
    out = []
    for i in range(n):
        img, _, _ = make_phantom(96, np.random.default_rng([11, i]))
        gray = np.round(img[..., 0] * 255).astype(np.uint8)
        crop = gray[: 96 - 8 * i, 4 * i:] if i % 2 else gray[4 * i:, : 96 - 6 * i]
        out.append(letterbox_uint8(crop, SIZE)[0])
    return np.stack(out)


def runner_class_maps(path: Path, grays: np.ndarray) -> np.ndarray:
    """The project's runner (load_tflite(...).run) on letterboxed uint8 gray frames."""
    seg = load_tflite(path)
    return np.stack([seg.run(g[..., None].astype(np.float32) / 255.0)[0] for g in grays])


def test_metadata_flatbuffer_round_trips_every_kind_of_field():
    meta = {
        "name": "m", "description": "d", "version": "3", "author": "a", "license": "l",
        "min_parser_version": "1.0.0",
        "associated_files": [{"name": "readme.txt", "type": "DESCRIPTIONS", "locale": "en"}],
        "subgraph_metadata": [{
            "name": "sg",
            "input_tensor_metadata": [{
                "name": "image", "dimension_names": ["b", "h", "w", "c"],
                "content": {"content_properties": {"type": "ImageProperties", "color_space": "RGB",
                                                   "default_size": {"width": 7, "height": 0}}},
                "process_units": [{"options": {"type": "NormalizationOptions", "mean": [0.5, 1.0, 2.0],
                                               "std": [127.5]}}],
                "stats": {"max": [255.0], "min": [0.0]},
            }],
            "output_tensor_metadata": [{
                "name": "probs",
                "content": {"content_properties": {"type": "FeatureProperties"}, "range": {"min": 1, "max": -2}},
                "associated_files": [{"name": "labels.txt", "description": "", "type": "TENSOR_AXIS_LABELS"}],
            }],
        }],
    }
    buf = encode_metadata(meta)
    assert buf[4:8] == b"M001"
    assert decode_metadata(buf) == meta
    with pytest.raises(LightsegError, match="no field"):
        encode_metadata({"name": "m", "nmae": "typo"})
    with pytest.raises(LightsegError, match="must be one of"):
        encode_metadata({"associated_files": [{"name": "x", "type": "LABELS"}]})
    with pytest.raises(LightsegError, match="not a TFLite metadata flatbuffer"):
        decode_metadata(b"\0" * 16)


def test_mediapipe_export_carries_segmenter_metadata_and_labels(int8_export):
    path, card = int8_export
    mp_path = mediapipe_path(path)
    assert mp_path.name == "model_mediapipe.tflite" and mp_path.is_file()
    assert read_card(path)["mediapipe"] == card["mediapipe"]
    assert card["mediapipe"]["file"] == mp_path.name and card["mediapipe"]["sha256"] == sha256_file(mp_path)

    meta = read_metadata(mp_path)
    expected, files = segmenter_metadata({k: v for k, v in card.items() if k != "mediapipe"}, input_scale=1 / 255)
    assert meta == expected
    assert meta["name"] == "tiny-int8" and meta["version"] == "1" and meta["author"].startswith("lightseg_tf")
    image, = meta["subgraph_metadata"][0]["input_tensor_metadata"]
    assert image["content"]["content_properties"] == {"type": "ImageProperties", "color_space": "RGB",
                                                      "default_size": {"width": SIZE, "height": SIZE}}
    assert image["process_units"][0]["options"] == {"type": "NormalizationOptions", "mean": [0.0], "std": [255.0]}
    probs, = meta["subgraph_metadata"][0]["output_tensor_metadata"]
    assert probs["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert read_associated_files(mp_path) == files == {"labels.txt": b"background\nBrain\nCSP\nLV\n"}
    assert read_metadata(path) is None and read_associated_files(path) == {}  # the gray export has none

    interp = make_interpreter(model_path=str(mp_path))
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    assert list(inp["shape"]) == [1, SIZE, SIZE, 3] and inp["dtype"] == np.uint8
    assert np.isclose(inp["quantization"][0], 1 / 255) and inp["quantization"][1] == 0
    assert list(out["shape"]) == [1, SIZE, SIZE, len(CLASSES)] and out["dtype"] == np.float32

    # Writing again replaces the metadata buffer (one TFLITE_METADATA entry); the graph is untouched.
    again = write_metadata(mp_path, {**expected, "version": "2"}, files)
    from ai_edge_litert import schema_py_generated as fb

    model = fb.Model.GetRootAs(bytearray(again), 0)
    names = [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())]
    assert names.count(METADATA_NAME) == 1 and "min_runtime_version" in names
    assert read_metadata(again) == {**expected, "version": "2"} and read_associated_files(again) == files
    rgb = np.full((SIZE, SIZE, 3), 128, np.uint8)
    np.testing.assert_array_equal(predict_mediapipe(again, rgb), predict_mediapipe(mp_path, rgb))
    with pytest.raises(LightsegError, match="not given"):
        write_metadata(mp_path, expected, {})


def test_rgb_graph_gives_the_runners_class_map(int8_export):
    path, _ = int8_export
    grays = letterboxed_phantoms()
    expected = runner_class_maps(path, grays)
    got = np.stack([predict_mediapipe(mediapipe_path(path), np.repeat(g[..., None], 3, -1)).argmax(-1)
                    for g in grays])
    assert len(np.unique(expected)) > 1  # a varied map, not all background
    assert (got == expected).mean() >= 0.999


@pytest.mark.slow
def test_export_command_writes_the_mediapipe_variant(tmp_path, capsys):
    from lightseg_tf.training.trainer import train

    cfg = load_config(None, ["data.image_size=32", "data.batch_size=4", "data.phantom_n=8",
                             "model.name=unet", "model.options={base_filters: 4, depth: 2}", "train.epochs=1",
                             "train.verbose=0", "data.augment.enabled=false", f"run_root={tmp_path}", "name=tiny"])
    run = train(cfg).run_dir
    out = tmp_path / "export" / "student.tflite"
    assert main(["export", str(run), "--out", str(out), "--calib-n", "4", "--mediapipe"]) == 0
    card = read_card(out)
    entry = card["mediapipe"]
    assert entry["file"] == "student_mediapipe.tflite" and entry["sha256"] == sha256_file(out.parent / entry["file"])
    assert read_metadata(out.parent / entry["file"])["name"] == card["name"]
    assert "mediapipe: " in capsys.readouterr().out
    load_tflite(out)  # the gray export is still checked against its card


# ----------------------------------------------------------------------- MediaPipe itself (slow)

def _pip_failure(proc: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip() and "WARNING" not in ln]
    return lines[-1].strip() if lines else f"exit {proc.returncode}"


def mediapipe_python() -> Path:
    """Python of the cached MediaPipe environment, made on first use; skips when it cannot be made."""
    python = MEDIAPIPE_VENV / "bin" / "python"
    ready = MEDIAPIPE_VENV / ".lightseg-ready"
    MEDIAPIPE_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(MEDIAPIPE_VENV.parent / (MEDIAPIPE_VENV.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker at a time (pytest-xdist workers)
        if python.exists() and ready.is_file() and ready.read_text() == MEDIAPIPE_SPEC:
            return python
        shutil.rmtree(MEDIAPIPE_VENV, ignore_errors=True)
        base = shutil.which("python3") or sys.executable
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        steps = [("python3 -m venv", [base, "-m", "venv", str(MEDIAPIPE_VENV)], 120),
                 (f"pip install {MEDIAPIPE_SPEC}", [str(python), "-m", "pip", "install", "--disable-pip-version-check",
                                                    "--retries", "1", "--timeout", "30", MEDIAPIPE_SPEC], 900)]
        for what, cmd, timeout in steps:
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
            except subprocess.TimeoutExpired:
                proc = subprocess.CompletedProcess(cmd, -1, "", f"timed out after {timeout} s")
            if proc.returncode != 0:
                shutil.rmtree(MEDIAPIPE_VENV, ignore_errors=True)
                pytest.skip(f"MediaPipe's virtual environment could not be made ({what}: "
                            f"{_pip_failure(proc)}); it needs PyPI and a {MEDIAPIPE_SPEC} wheel for this Python")
        ready.write_text(MEDIAPIPE_SPEC)
        return python


def run_mediapipe(python: Path, model: Path, rgb: np.ndarray, tmp_path: Path) -> tuple[np.ndarray, list[str]]:
    images, out = tmp_path / f"{model.stem}_in.npz", tmp_path / f"{model.stem}_out.npz"
    np.savez(images, images=rgb)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    proc = subprocess.run([str(python), str(SEGMENT), str(model), str(images), str(out)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = np.load(out)
    return result["category_masks"], [str(x) for x in result["labels"]]


@pytest.fixture(scope="module")
def mediapipe_py() -> Path:
    return mediapipe_python()


@pytest.mark.slow
def test_mediapipe_image_segmenter_gives_the_runners_class_map(mediapipe_py, int8_export, tiny_model, calib,
                                                               tmp_path):
    # mediapipe_py comes first: a skip costs no export.
    float_export = _export(tiny_model, calib, tmp_path / "float" / "model.tflite", "float32")
    grays = letterboxed_phantoms()
    rgb = np.repeat(grays[..., None], 3, axis=-1)
    agreement = {}
    for path, card in (int8_export, float_export):
        start = time.perf_counter()
        masks, labels = run_mediapipe(mediapipe_py, mediapipe_path(path), rgb, tmp_path)
        expected = runner_class_maps(path, grays)
        assert labels == CLASSES
        assert masks.shape == expected.shape
        agreement[card["quantization"]] = float((masks == expected).mean())
        print(f"{card['quantization']}: MediaPipe category mask = runner class map on "
              f"{agreement[card['quantization']]:.2%} of {expected.size} pixels ({time.perf_counter() - start:.1f} s)")
    assert min(agreement.values()) >= 0.995, json.dumps(agreement)
