"""QAT (tensorflow-model-optimization) and full-int8 TFLite conversion of the students."""

from collections import Counter

import numpy as np
import pytest
import tf_keras as keras
from conftest import phantom_arrays

from lightseg_tf.config import LossConfig
from lightseg_tf.deploy.convert import build_card, convert, inspect_tflite, write_export
from lightseg_tf.deploy.runtime import load_tflite
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.models import build_model, list_models
from lightseg_tf.models.qat import quantize_for_qat
from lightseg_tf.models.saving import load_qat_model
from lightseg_tf.training.trainer import recalibrate_bn, set_bn_momentum


@pytest.fixture(scope="module", name="phantom_arrays")
def phantom_arrays_fixture():
    return phantom_arrays(48)


@pytest.mark.slow
# rtseg (its GELU / hard-swish / attention layers go through the custom QuantizeConfigs); the
# lightseg_student's QAT + int8 export runs in tests/test_quantize_cli.py (suite time budget).
@pytest.mark.parametrize("name,options", [("rtseg", {"width": 0.25})])
def test_student_qat_then_int8_tflite_agrees_with_the_qat_model(name, options, phantom_arrays, tmp_path):
    x, y = phantom_arrays
    keras.utils.set_random_seed(0)
    model = build_model(name, (64, 64, 1), 4, **options)
    set_bn_momentum(model, 0.9)  # as lightseg train does: short fits need fresh BN statistics
    model.compile(keras.optimizers.Adam(5e-3), build_loss(LossConfig()))
    model.fit(x, y, batch_size=8, epochs=6, verbose=0)
    recalibrate_bn(model, x)  # a 36-step fit leaves BN moving statistics behind the weights
    qat = quantize_for_qat(model)
    qat.compile(keras.optimizers.Adam(1e-3), build_loss(LossConfig()))
    qat.fit(x, y, batch_size=8, epochs=1, verbose=0)
    # QAT models live in .h5 and load inside the quantize scope.
    qat.save(tmp_path / "qat.h5")
    np.testing.assert_allclose(load_qat_model(tmp_path / "qat.h5").predict(x[:4], verbose=0),
                               qat.predict(x[:4], verbose=0), atol=1e-5)
    content = convert(qat, "int8", list(x[:16]))
    info = inspect_tflite(content)
    assert info["float_tensors"] == [] and info["inputs"]["image"]["dtype"] == "uint8"
    card = build_card(content, name=name, classes=["bg", "Brain", "CSP", "LV"], colors=[[0, 0, 0]] * 4,
                      size=64, quant="int8", info=info)
    seg = load_tflite(write_export(content, card, tmp_path / "m.tflite")[0])
    keras_map = qat.predict(x, verbose=0).argmax(-1)
    tflite_map = np.stack([seg.run(im)[0] for im in x])
    assert len(np.unique(keras_map)) >= 2  # the fit learned something beyond background
    assert (keras_map == tflite_map).mean() >= 0.98


def test_qat_ready_models_pass_quantize_model():
    tiny = {"unet": {"base_filters": 4, "depth": 2}, "unetpp": {"base_filters": 4, "depth": 2},
            "lightseg_student": {"width": 0.125}, "rtseg": {"width": 0.125}}
    ready = {s.name for s in list_models() if s.qat_ready}
    assert ready == set(tiny)
    for name, opts in tiny.items():
        model = build_model(name, (64, 64, 1), 3, **opts)
        qat = quantize_for_qat(model)
        kinds = Counter(type(layer).__name__ for layer in qat.layers)
        # One QuantizeLayer on the input, and every other layer of the float model wrapped once.
        assert kinds == {"InputLayer": 1, "QuantizeLayer": 1, "QuantizeWrapperV2": len(model.layers) - 1}, name
        wrapped = Counter(type(layer.layer).__name__ for layer in qat.layers if hasattr(layer, "layer"))
        assert wrapped == Counter(type(layer).__name__ for layer in model.layers[1:]), name
        assert wrapped["Conv2D"] > 0


def test_qat_ranges_start_at_the_float_models_tensor_ranges(phantom_arrays):
    x, _ = phantom_arrays
    keras.utils.set_random_seed(0)
    model = build_model("rtseg", (64, 64, 1), 4, width=0.125)
    ranges = {v.name.split(":")[0]: float(v.numpy()) for v in quantize_for_qat(model).weights
              if v.name.endswith(("_min:0", "_max:0")) and "kernel" not in v.name}
    assert {-6.0, 6.0} <= set(ranges.values())  # tfmot's start: what calibration replaces
    qat = quantize_for_qat(model, calibration=x[:16])
    got = {v.name.split(":")[0]: float(v.numpy()) for v in qat.weights
           if v.name.endswith(("_min:0", "_max:0")) and "kernel" not in v.name}
    inp = [k for k in got if k.startswith("quantize_layer")]
    assert sorted(got[k] for k in inp) == [0.0, float(x[:16].max())]  # the images' own range
    assert len(got) == len(ranges) and not {-6.0, 6.0} & set(got.values())
    stem = keras.Model(model.inputs, model.get_layer("stem0_bn").output)(x[:16]).numpy()
    np.testing.assert_allclose([got["quant_stem0_bn/output_min"], got["quant_stem0_bn/output_max"]],
                               [min(stem.min(), 0), max(stem.max(), 0)], rtol=1e-5)
    hswish = [got[k] for k in got if k.startswith("quant_stem0_hswish/output_min")]
    assert hswish and -0.375 - 1e-6 <= hswish[0] <= 0  # hard-swish never goes below -3/8
    # With the data's ranges the fake-quantized net tracks the float one from the first step.
    err = np.abs(qat.predict(x[:8], verbose=0) - model.predict(x[:8], verbose=0)).max()
    spread = np.ptp(model.predict(x[:8], verbose=0))
    assert err < 0.1 * spread
