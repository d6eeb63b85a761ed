"""tf.distribute and mixed precision: strategies, policies, a mirrored step vs one device, and a
mixed-precision run through QAT, int8 export and evaluation (multi-worker: test_multi_worker.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.errors import LightsegError
from lightseg_tf.models import FLOAT32_LOGITS, build_model, float32_logits
from lightseg_tf.models.saving import model_policies, with_policy
from lightseg_tf.training.distribute import make_strategy, precision_policy

HERE = Path(__file__).parent


def test_precision_settings_map_to_keras_policies():
    assert precision_policy("off") == "float32"
    assert precision_policy("float16") == precision_policy("on") == "mixed_float16"
    assert precision_policy("bfloat16") == "mixed_bfloat16"
    assert precision_policy("auto") == ("mixed_float16" if tf.config.list_physical_devices("GPU") else "float32")
    with pytest.raises(LightsegError, match="mixed_precision"):
        precision_policy("half")


def test_multi_worker_without_tf_config_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(LightsegError, match="TF_CONFIG"):
        make_strategy.__wrapped__("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(LightsegError, match="not valid JSON"):
        make_strategy.__wrapped__("multi_worker")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_a_mixed_model_has_float32_logits_and_converts_to_float32_with_its_weights(policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        mixed = build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # The last layer computes in float32 (a builder's own float32 head, else FLOAT32_LOGITS).
    assert mixed.output.dtype == "float32" and mixed.layers[-1].dtype_policy.name == "float32"
    assert policy in model_policies(mixed)
    plain = with_policy(mixed, "float32")
    assert model_policies(plain) == {"float32"}
    x = np.random.default_rng(0).random((2, 32, 32, 1), np.float32)
    a, b = mixed(x).numpy(), plain(x).numpy()
    assert np.allclose(a, b, atol=0.05 * np.abs(b).max())  # half-precision rounding only
    assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.97
    assert with_policy(plain, "float32") is plain


def test_a_float16_head_gets_a_float32_logits_layer():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
        wrapped = float32_logits(model)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.output.dtype == "float16"
    assert wrapped.output.dtype == "float32" and wrapped.layers[-1].name == FLOAT32_LOGITS


@pytest.mark.slow
def test_a_mirrored_step_on_two_devices_equals_one_device():
    out = subprocess.run([sys.executable, str(HERE / "distributed_steps.py"), "train", "distill", "qat"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for kind in ("train", "distill", "qat"):
        rel = res[kind]["max_rel"]
        assert res[kind]["replicas"] == 2
        # Same weights to 1e-5: the per-replica losses are scaled to the global batch, BN
        # statistics are synchronised (per-replica statistics differ by ~1e-1 here) and QAT's
        # activation ranges are those of the global batch (tfmot's own quantizer averages the
        # replicas' ranges: ~1e-4 off in the ranges, ~2e-3 in the kernels).
        assert all(rel[g] < 1e-5 for g in ("kernels", "beta", "moving_mean")), (kind, rel)
        assert rel.get("min", 0.0) < 1e-5 and rel.get("max", 0.0) < 1e-5, (kind, rel)
        # The one-device fused BN kernel keeps n/(n-1) (Bessel) in the moving variance, the
        # synchronised one does not: a 1/n difference, n = pixels x images.
        assert rel["moving_variance"] < 1e-4, (kind, rel)


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["float16", "bfloat16"])
def test_a_mixed_precision_run_goes_through_qat_int8_export_and_evaluation(tmp_path, precision):
    from lightseg_tf.data.tfdata import letterboxed_sample
    from lightseg_tf.deploy.runtime import load_tflite
    from lightseg_tf.models.saving import load_model_file, load_trained_model
    from lightseg_tf.runs import open_run

    def cli(*args):  # own processes: a training sets the process-wide dtype policy
        out = subprocess.run([sys.executable, "-m", "lightseg_tf", *args], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
        return out.stdout

    cli("train", "data.image_size=48", "data.batch_size=4", "data.phantom_n=32", "model.options={base_filters: 8, depth: 3}",
        "train.epochs=8", "train.learning_rate=5e-3", "train.verbose=0", "data.augment.enabled=false", "run_root=runs",
        "name=mp", f"train.mixed_precision={precision}")
    run = tmp_path / "runs" / "mp"
    assert f"mixed_{precision}" in model_policies(load_model_file(run / "best.keras"))  # really trained mixed
    cli("quantize", str(run), "--mode", "ptq-int8", "--calib-n", "8")
    checks = [("model_ptq_int8.tflite", None)]
    if precision == "float16":  # the GPU policy also through QAT and evaluation (bfloat16: PTQ only, for CI time)
        cli("quantize", str(run), "--mode", "qat", "--epochs", "1", "--calib-n", "8")
        report = json.loads(cli("evaluate", str(run / "model_qat.tflite"), "--data", str(run / "phantom"),
                                "--split", "all", "--json"))
        assert 0.0 <= report["mean_fg_dice"] <= 1.0
        checks.append(("model_qat.tflite", run / "qat.h5"))

    images = letterboxed_sample(open_run(run).dataset, 48, n=32)
    # Each int8 model against the float model it was converted from: the mixed-precision model
    # itself (PTQ; rebuilt in float32 on load) and its QAT fine-tune (one epoch of QAT moves a
    # barely trained model by a few % of pixels, in float32 runs too).
    for tflite, source in checks:
        reference = load_trained_model(source or run).predict(images, verbose=0).argmax(-1)
        assert (reference > 0).mean() > 0.02, "the float model predicts no foreground: the check would be empty"
        seg = load_tflite(run / tflite)
        int8 = np.stack([seg.run(image)[0] for image in images])
        assert (int8 == reference).mean() >= 0.98, tflite
