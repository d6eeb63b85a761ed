"""TFLite export: conversion modes, the model card, integrity checks and the Edge TPU report."""

import json

import numpy as np
import pytest
import tf_keras as keras
from conftest import tiny_unet

from lightseg_tf.errors import LightsegError
from lightseg_tf.deploy.convert import (build_card, convert, edgetpu_report, inspect_tflite, set_card_metrics,
                                       write_export, xnnpack_fallback_ops)
from lightseg_tf.deploy.runtime import load_tflite, read_card

SIZE = 32
CLASSES = ["background", "Brain", "CSP", "LV"]
COLORS = [[0, 0, 0], [230, 60, 60], [60, 200, 90], [60, 110, 230]]


@pytest.fixture(scope="module")
def tiny_model():
    """A seeded untrained net whose head is scaled up so its logits are not near-ties."""
    return tiny_unet(SIZE)


@pytest.fixture(scope="module")
def calib():
    rng = np.random.default_rng(0)
    return [rng.random((SIZE, SIZE, 1), dtype=np.float32) for _ in range(4)]


@pytest.fixture(scope="module")
def int8_export(tiny_model, calib, tmp_path_factory):
    content = convert(tiny_model, "int8", calib)
    card = build_card(content, name="tiny", classes=CLASSES, colors=COLORS, size=SIZE, quant="int8",
                      metrics={"mean_fg_dice": None})
    return write_export(content, card, tmp_path_factory.mktemp("exp") / "model.tflite")


def test_int8_graph_is_integer_throughout_with_raw_uint8_input(int8_export):
    path, card_path = int8_export
    info = inspect_tflite(path.read_bytes())
    assert info["inputs"]["image"]["dtype"] == "uint8"
    q = info["inputs"]["image"]["quantization"]
    assert np.isclose(q["scale"], 1 / 255) and q["zero_point"] == 0  # raw pixels, no rescaling
    assert info["outputs"]["class_map"]["dtype"] == "uint8"
    assert info["outputs"]["probs"]["dtype"] == "uint8"
    assert info["float_tensors"] == [] and info["dynamic_shapes"] == []
    assert "CONV_2D" in info["ops"]


def test_card_round_trip_and_edgetpu_report(int8_export):
    path, card_path = int8_export
    card = read_card(path)
    assert card == json.loads(card_path.read_text())
    assert [c["name"] for c in card["classes"]] == CLASSES and card["classes"][2]["color"] == COLORS[2]
    assert card["input"]["size"] == SIZE and card["quantization"] == "int8"
    assert card["edgetpu"]["compatible"] and card["edgetpu"]["unsupported_ops"] == []
    assert "ARG_MAX" in card["edgetpu"]["cpu_tail_ops"]
    seg = load_tflite(path)
    assert list(seg.classes) == CLASSES and seg.size == SIZE


def test_card_metrics_are_set_without_touching_the_model(int8_export, tmp_path):
    path, card_path = int8_export
    model = tmp_path / "m.tflite"
    model.write_bytes(path.read_bytes())
    (tmp_path / "m.json").write_text(card_path.read_text())
    metrics = {"mean_fg_dice": 0.5, "per_class": {"Brain": {"dice": 0.9}}, "scored": "this file on test"}
    assert set_card_metrics(model, metrics) == tmp_path / "m.json"
    card = read_card(model)
    assert card["metrics"] == metrics and model.read_bytes() == path.read_bytes()
    assert {k: v for k, v in card.items() if k != "metrics"} == {k: v for k, v in read_card(path).items()
                                                                 if k != "metrics"}
    assert load_tflite(model).card["metrics"] == metrics  # the SHA-256 check still passes


def test_edgetpu_report_flags_float_and_unsupported_ops():
    info = {"ops": ["QUANTIZE", "CONV_2D", "GELU", "CONV_2D", "SOFTMAX"], "float_tensors": ["x"],
            "dynamic_shapes": []}
    rep = edgetpu_report(info)
    assert not rep["compatible"] and rep["unsupported_ops"] == ["GELU"]
    assert rep["first_unsupported_index"] == 2 and rep["cpu_tail_ops"] == ["GELU", "CONV_2D", "SOFTMAX"]
    ok = edgetpu_report({"ops": ["QUANTIZE", "CONV_2D", "ARG_MAX", "CAST", "SOFTMAX"],
                         "float_tensors": [], "dynamic_shapes": []})
    assert ok["compatible"] and ok["cpu_tail_ops"] == ["ARG_MAX", "CAST", "SOFTMAX"]
    assert not edgetpu_report({"ops": ["CONV_2D"], "float_tensors": [], "dynamic_shapes": ["x"]})["compatible"]


def test_tflite_agrees_with_keras(tiny_model, calib, int8_export):
    seg = load_tflite(int8_export[0])
    keras_map = tiny_model.predict(np.stack(calib), verbose=0).argmax(-1)
    for image, expected in zip(calib, keras_map):
        class_map, probs = seg.run(image)
        assert class_map.shape == (SIZE, SIZE) and probs.shape == (SIZE, SIZE, 4)
        np.testing.assert_array_equal(class_map, probs.argmax(-1))
        assert (class_map == expected).mean() > 0.95
    content = convert(tiny_model, "float32")
    card = build_card(content, name="f", classes=CLASSES, colors=COLORS, size=SIZE, quant="float32")
    path, _ = write_export(content, card, int8_export[0].parent / "f32.tflite")
    np.testing.assert_array_equal(load_tflite(path).run(calib[0])[0], keras_map[0])


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_conversion_through_a_variable_holder_gives_the_same_bytes_as_through_the_keras_model(
        tiny_model, calib, quant, monkeypatch):
    # convert() hands the converter a bare tf.Module with the model's variables (much faster than
    # the Keras model, whose SavedModel tracing the converter does first); the file must not change.
    import tensorflow as tf

    fast = convert(tiny_model, quant, calib)
    plain = tf.lite.TFLiteConverter.from_concrete_functions
    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions",
                        lambda funcs, trackable_obj=None: plain(funcs, tiny_model))
    assert convert(tiny_model, quant, calib) == fast


@pytest.fixture(scope="module")
def flips_float32(tiny_model, tmp_path_factory):
    content = convert(tiny_model, "float32", tta="flips")
    card = build_card(content, name="tta", classes=CLASSES, colors=COLORS, size=SIZE, quant="float32")
    return load_tflite(write_export(content, card, tmp_path_factory.mktemp("tta") / "tta.tflite")[0])


def test_tta_built_into_the_graph_gives_the_keras_predictors_tta_probabilities(tiny_model, calib, flips_float32):
    from lightseg_tf.models.predictor import predict_probs

    images = np.stack(calib)
    keras_tta = predict_probs(tiny_model, images, tta="flips")
    plain = predict_probs(tiny_model, images)
    assert np.abs(keras_tta - plain).max() > 0.05  # the views differ: averaging them changes the answer
    for image, expected in zip(images, keras_tta):
        class_map, probs = flips_float32.run(image)
        np.testing.assert_allclose(probs, expected, atol=1e-5)
        np.testing.assert_array_equal(class_map, expected.argmax(-1))


@pytest.mark.parametrize("flip", [(0,), (1,), (0, 1)])
def test_mirroring_tta_answers_a_mirrored_image_with_the_mirrored_answer(calib, flips_float32, flip):
    # Each view is flipped back before the average: the 4-view average is equivariant to every mirror.
    _, probs = flips_float32.run(calib[1])
    _, mirrored = flips_float32.run(np.flip(calib[1], flip).copy())
    np.testing.assert_allclose(np.flip(mirrored, flip), probs, atol=1e-5)


def test_int8_tta_export_stays_integer_and_near_the_keras_tta(tiny_model, calib):
    from lightseg_tf.models.predictor import predict_probs

    content = convert(tiny_model, "int8", calib, tta="hflip")
    info = inspect_tflite(content)
    assert info["float_tensors"] == [] and "REVERSE_V2" in info["ops"]
    card = build_card(content, name="t", classes=CLASSES, colors=COLORS, size=SIZE, quant="int8")
    assert "REVERSE_V2" in card["edgetpu"]["unsupported_ops"]  # the mirrors run on the host CPU
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        seg = load_tflite(write_export(content, card, Path(tmp) / "t.tflite")[0])
        expected = predict_probs(tiny_model, np.stack(calib), tta="hflip")
        for image, want in zip(calib, expected):
            class_map, probs = seg.run(image)
            assert np.abs(probs - want).mean() < 0.01 and (class_map == want.argmax(-1)).mean() > 0.95
    # The logits are averaged before the SOFTMAX: its output keeps the scale every runtime expects.
    assert np.isclose(card["outputs"]["probs"]["quantization"]["scale"], 1 / 256)


def test_unknown_tta_mode_is_refused_before_any_work(tiny_model):
    from lightseg_tf.models.predictor import KerasPredictor

    with pytest.raises(LightsegError, match="unknown test-time augmentation 'rot90'.*hflip, flips"):
        convert(tiny_model, "float32", tta="rot90")
    with pytest.raises(LightsegError, match="unknown test-time augmentation"):
        KerasPredictor(tiny_model, tta="vflip")


def test_a_card_takes_the_confidence_threshold_only_for_the_tta_it_was_calibrated_with():
    from lightseg_tf.deploy.convert import card_confidence

    cal = {"threshold": 0.4, "score": "s", "calibrated_on": {"model": "best.keras"}, "structures": {}}
    assert card_confidence(cal, "best.keras")["threshold"] == 0.4  # older calibrations: no TTA
    assert card_confidence(cal, "best.keras", "flips") is None
    flips = {**cal, "calibrated_on": {"model": "best.keras", "tta": "flips"}}
    assert card_confidence(flips, "best.keras", "flips")["threshold"] == 0.4
    assert card_confidence(flips, "best.keras") is None and card_confidence(flips, "final.keras", "flips") is None


def test_flipped_byte_is_a_checksum_error(int8_export, tmp_path):
    path, card_path = int8_export
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "model.tflite"
    bad.write_bytes(bytes(data))
    (tmp_path / "model.json").write_text(card_path.read_text())
    with pytest.raises(LightsegError, match="SHA-256"):
        load_tflite(bad)


def test_card_of_another_model_is_refused(int8_export, tiny_model, tmp_path):
    path, card_path = int8_export
    content = convert(tiny_model, "float32")
    (tmp_path / "other.tflite").write_bytes(content)
    card = json.loads(card_path.read_text())
    import hashlib
    card["sha256"] = hashlib.sha256(content).hexdigest()  # right file hash, wrong I/O description
    (tmp_path / "other.json").write_text(json.dumps(card))
    with pytest.raises(LightsegError, match="'image' dtype"):
        load_tflite(tmp_path / "other.tflite")


def test_missing_card_and_bad_mode_are_clear(int8_export, tmp_path, tiny_model):
    (tmp_path / "lonely.tflite").write_bytes(int8_export[0].read_bytes())
    with pytest.raises(LightsegError, match="model card missing"):
        load_tflite(tmp_path / "lonely.tflite")
    with pytest.raises(LightsegError, match="unknown quantization"):
        convert(tiny_model, "int4")
    with pytest.raises(LightsegError, match="representative"):
        convert(tiny_model, "int8", [])


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os
    import stat

    from lightseg_tf.core.io import write_bytes_atomic

    write_bytes_atomic(tmp_path / "m.tflite", b"x")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.tflite").stat().st_mode) == 0o666 & ~umask


def _conv_model(activation):
    inputs = keras.Input((SIZE, SIZE, 1))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.Lambda(activation)(x)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))


def test_xnnpack_fallback_names_the_ops_left_to_builtin_kernels(calib):
    import tensorflow as tf

    from lightseg_tf.models.rtseg import HardSwish

    # The textbook hard-swish converts to one HARD_SWISH op, which XNNPACK runs in float only.
    textbook = convert(_conv_model(lambda x: x * tf.nn.relu6(x + 3.0) / 6.0), "int8", calib)
    left = [o["op"] for o in xnnpack_fallback_ops(textbook)]
    assert "HARD_SWISH" in left and {"ARG_MAX", "CAST"} <= set(left)
    assert [o["shape"] for o in xnnpack_fallback_ops(textbook) if o["op"] == "HARD_SWISH"] == [[1, SIZE, SIZE, 8]]
    # rtseg's HardSwish form stays inside the delegate: only the class-map post-processing and
    # the uint8 <-> int8 edges are left (XNNPACK has no ARG_MAX; SOFTMAX / QUANTIZE to uint8
    # are not delegated either).
    ours = convert(_conv_model(HardSwish()), "int8", calib)
    assert "HARD_SWISH" not in inspect_tflite(ours)["ops"]
    assert {o["op"] for o in xnnpack_fallback_ops(ours)} <= {"QUANTIZE", "ARG_MAX", "CAST", "SOFTMAX"}
