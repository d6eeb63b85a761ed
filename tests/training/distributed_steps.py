"""One training step on two logical CPU devices (MirroredStrategy) vs the same batch on one device.

Run as a script by tests/training/test_distribute.py (logical devices must be configured before
TensorFlow initialises them, so not inside the pytest process). Prints one JSON line:
``{kind: {"replicas": n, "max_rel": {weight group: max relative difference}}}``.

SGD, not Adam: Adam's first step is ``lr * g / |g|``, which turns a 1e-9 rounding difference
in a near-zero gradient into a full ``2 lr`` step of opposite sign; SGD's step is linear in the
gradient, so a difference in it is a difference in what was computed.
"""

from __future__ import annotations

import json
import sys

import numpy as np

import lightseg_tf  # noqa: F401  (pins tf-keras)
import tensorflow as tf

CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import tf_keras as keras  # noqa: E402

from lightseg_tf.config import Config, with_overrides  # noqa: E402
from lightseg_tf.models import build_model  # noqa: E402
from lightseg_tf.models.qat import quantize_for_qat  # noqa: E402
from lightseg_tf.objectives.losses import build_loss  # noqa: E402
from lightseg_tf.training.distillation import Distiller  # noqa: E402
from lightseg_tf.training.distribute import make_strategy, sync_batchnorm  # noqa: E402
from lightseg_tf.training.trainer import compile_for_training, make_optimizer, recalibrate_bn  # noqa: E402

CFG = with_overrides(Config(), {"train.fast_path": False, "train.learning_rate": 1e-2, "train.optimizer": "sgd",
                                "train.schedule": "constant", "loss.terms": {"dice": 1.0, "ce": 1.0, "lovasz": 1.0}})
RNG = np.random.default_rng(0)
X = RNG.random((4, 32, 32, 1), np.float32)
Y = (X[..., 0] > 0.5).astype(np.int32) + (X[..., 0] > 0.8)
T = RNG.random((4, 32, 32, 3), np.float32)
T /= T.sum(-1, keepdims=True)
keras.utils.set_random_seed(0)
W0 = build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2).get_weights()


def one_step(strategy, kind: str):
    """The weights ``[(name, array)]`` after one step of ``kind`` (train | distill | qat) under ``strategy``."""
    with strategy.scope():
        model = build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2)
        model.set_weights(W0)
        if kind == "qat":
            recalibrate_bn(model, X)  # moving statistics of the data, as a trained model has
            model = quantize_for_qat(model, calibration=X)
        sync_batchnorm(model, strategy)
        if kind == "distill":
            fit = Distiller(model, build_loss(CFG.loss), 3, alpha=0.5, temperature=2.0, soft_loss="cwd")
            fit.compile(optimizer=make_optimizer(CFG.train, 1))
            data = (X, (Y, T))
        else:
            fit = compile_for_training(model, CFG.train, CFG.loss, 3, 1)
            data = (X, Y)
    fit.fit(tf.data.Dataset.from_tensor_slices(data).batch(4), epochs=1, verbose=0)
    return [(w.name, w.numpy()) for w in model.weights]  # names differ between builds (quantize_layer_1)


def group(name: str) -> str:
    for key in ("moving_mean", "moving_variance", "_min", "_max", "beta"):
        if key in name:
            return key.strip("_")
    return "kernels"  # convolution kernels and biases, BN gammas


def compare(kind: str) -> dict:
    one = one_step(tf.distribute.get_strategy(), kind)
    mirrored = make_strategy("mirrored")
    two = one_step(mirrored, kind)
    rel: dict[str, float] = {}
    for (name, a), (_, b) in zip(one, two):
        if "optimizer_step" in name:
            continue
        d = float(np.linalg.norm(a - b) / max(float(np.linalg.norm(a)), 1e-12))
        rel[group(name)] = max(rel.get(group(name), 0.0), d)
    return {"replicas": mirrored.num_replicas_in_sync, "max_rel": rel}


if __name__ == "__main__":
    print(json.dumps({kind: compare(kind) for kind in sys.argv[1:]}))
