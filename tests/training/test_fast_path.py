"""The fast training path (issue 17) learns exactly what the plain path learns, on a fixed batch."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from conftest import phantom_arrays

from lightseg_tf.config import LossConfig, TrainConfig
from lightseg_tf.models import build_model
from lightseg_tf.training.trainer import compile_for_training

SIZE, CLASSES, BATCH = 32, 4, 4
DLCE = LossConfig(terms={"dlce": 1.0})


def _pair(name="lightseg_student", **options):
    """The same tiny model (same initial weights) compiled on the fast and on the plain path."""
    models = {}
    for fast in (True, False):
        keras.utils.set_random_seed(0)
        model = build_model(name, (SIZE, SIZE, 1), CLASSES, **options)
        models[fast] = compile_for_training(model, TrainConfig(fast_path=fast), DLCE, CLASSES, steps_per_epoch=3)
    models[False].set_weights(models[True].get_weights())
    return models[True], models[False]


def _batch():
    x, y = phantom_arrays(3 * BATCH, size=SIZE, seed=17)
    return x.astype(np.float32), y.astype(np.int32)


def _loss_grads_metric(model, x, y):
    x, y = tf.constant(x), tf.constant(y)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = model.compute_loss(x, y, logits)
    grads = tape.gradient(loss, model.trainable_variables)
    metric = model.compute_metrics(x, y, logits, None)["mean_fg_dice"]
    return float(loss), [g.numpy() for g in grads], float(metric)


@pytest.mark.parametrize("name, options", [("lightseg_student", {"width": 0.125}), ("rtseg", {"width": 0.125})])
def test_same_loss_gradients_and_metric_on_a_fixed_batch(name, options):
    fast, plain = _pair(name, **options)
    x, y = _batch()
    loss_f, grads_f, dice_f = _loss_grads_metric(fast, x[:BATCH], y[:BATCH])
    loss_p, grads_p, dice_p = _loss_grads_metric(plain, x[:BATCH], y[:BATCH])
    assert loss_f == pytest.approx(loss_p, abs=1e-5)
    for g_f, g_p in zip(grads_f, grads_p):
        np.testing.assert_allclose(g_f, g_p, atol=1e-5, rtol=1e-5)
    assert dice_f == pytest.approx(dice_p, abs=1e-6)


def test_an_epoch_of_fit_ends_with_the_same_weights_loss_and_metric():
    # Three batches, unshuffled: the fast path's grouped steps must apply the same three updates
    # (a tiny U-Net: what is checked here is the fit loop, not the architecture).
    fast, plain = _pair("unet", base_filters=4, depth=2)
    x, y = _batch()
    hist = {}
    for key, model in (("fast", fast), ("plain", plain)):
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
        hist[key] = model.fit(data, epochs=1, verbose=0, shuffle=False).history
    assert hist["fast"]["loss"][0] == pytest.approx(hist["plain"]["loss"][0], abs=1e-5)
    assert hist["fast"]["mean_fg_dice"][0] == pytest.approx(hist["plain"]["mean_fg_dice"][0], abs=1e-6)
    for w_f, w_p in zip(fast.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(w_f, w_p, atol=1e-5, rtol=1e-5)


def test_a_distiller_epoch_is_the_same_on_the_fast_path():
    """The distillation stage groups its steps too: same updates, losses and metric as step by step."""
    from lightseg_tf.objectives.losses import build_loss
    from lightseg_tf.training.distillation import Distiller
    from lightseg_tf.training.trainer import FAST_STEPS_PER_EXECUTION

    x, y = _batch()
    rng = np.random.default_rng(5)
    teacher = rng.dirichlet(np.ones(CLASSES), size=y.shape).astype(np.float32)
    hist, weights = {}, {}
    for steps in (FAST_STEPS_PER_EXECUTION, 1):
        keras.utils.set_random_seed(0)
        student = build_model("unet", (SIZE, SIZE, 1), CLASSES, base_filters=4, depth=2)
        distiller = Distiller(student, build_loss(DLCE), CLASSES, alpha=0.5, temperature=1.0)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), steps_per_execution=steps)
        data = tf.data.Dataset.from_tensor_slices((x, (y, teacher))).batch(BATCH)
        hist[steps] = distiller.fit(data, epochs=1, verbose=0, shuffle=False).history
        weights[steps] = student.get_weights()
    fast, plain = hist[FAST_STEPS_PER_EXECUTION], hist[1]
    for key in ("loss", "hard_loss", "soft_loss", "mean_fg_dice"):
        assert fast[key][0] == pytest.approx(plain[key][0], abs=1e-5), key
    for w_f, w_p in zip(weights[FAST_STEPS_PER_EXECUTION], weights[1]):
        np.testing.assert_allclose(w_f, w_p, atol=1e-5, rtol=1e-5)
