"""Every loss against hand-computed values on a 2x2 image (arithmetic in the comments)."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import LossConfig
from lightseg_tf.errors import LightsegError
from lightseg_tf.objectives.losses import (LOSS_FUNCTIONS, SegmentationLoss, WeightedSumLoss, build_loss,
                                cross_entropy_loss, dlce_loss, focal_loss, focal_tversky_loss,
                                lovasz_grad, lovasz_softmax_loss, soft_dice_loss, tversky_loss)

# y = [[0, 1], [1, 1]]; every pixel has logits (0, ln 3), so p0 = 0.25, p1 = 0.75.
Y = np.array([[[0, 1], [1, 1]]], np.int32)
LOGITS = np.tile(np.array([0.0, math.log(3.0)], np.float32), (1, 2, 2, 1))


def val(fn, **kw):
    return float(fn(Y, LOGITS, **kw).numpy()[0])


def test_cross_entropy_plain_and_class_weighted():
    # CE: pixel y=0: -ln .25 = 1.386294; y=1: -ln .75 = 0.287682; mean = (1.386294 + 3*0.287682)/4
    assert val(cross_entropy_loss) == pytest.approx(0.562335, abs=1e-6)
    # Weights [1, 3]: (1*1.386294 + 3*3*0.287682) / (1 + 3*3) = 3.975433 / 10
    weighted = val(cross_entropy_loss, class_weights=[1.0, 3.0])
    assert weighted == pytest.approx(0.397543, abs=1e-6)
    # The reference's bug (plain CE times the sum of the weights) would give 2.249340.
    assert weighted != pytest.approx(0.562335 * 4.0, abs=1e-3)


def test_soft_dice_foreground_and_with_background():
    # class 1: tp = 3*.75 = 2.25, fp = .75, fn = 3*.25 = .75 -> Dice = 4.5 / 6 = .75
    assert val(soft_dice_loss) == pytest.approx(0.25, abs=1e-6)
    # class 0: tp = .25, fp = 3*.25 = .75, fn = .75 -> Dice = .5 / 2 = .25; mean(.25, .75) = .5
    assert val(soft_dice_loss, include_background=True) == pytest.approx(0.5, abs=1e-6)


def test_soft_dice_batch_pooling_differs_from_per_image():
    y = np.concatenate([Y, np.zeros_like(Y)])  # second image: background only
    logits = np.concatenate([LOGITS, LOGITS])
    per_image = soft_dice_loss(y, logits).numpy()
    # Image 2 has no class 1 but predicts .75 everywhere: Dice = s / (3 + s) ~ 0 -> loss ~ 1.
    assert per_image[0] == pytest.approx(0.25, abs=1e-6) and per_image[1] == pytest.approx(1.0, abs=1e-5)
    # Pooled: tp = 2.25, fp = .75 + 4*.75 = 3.75, fn = .75 -> Dice = 4.5 / 9 = .5
    np.testing.assert_allclose(soft_dice_loss(y, logits, batch=True).numpy(), [0.5, 0.5], atol=1e-6)


def test_tversky_and_focal_tversky():
    # class 1: 2.25 / (2.25 + .3*.75 + .7*.75) = 2.25 / 3 = .75
    assert val(tversky_loss) == pytest.approx(0.25, abs=1e-6)
    # (1 - .75) ** .75 = .353553
    assert val(focal_tversky_loss) == pytest.approx(0.353553, abs=1e-6)
    # alpha = beta = .5 is soft Dice.
    assert val(tversky_loss, alpha=0.5, beta=0.5) == pytest.approx(val(soft_dice_loss), abs=1e-6)


def test_focal():
    # y=0: -(1-.25)^2 ln .25 = .5625*1.386294 = .779791; y=1: -(.25)^2 ln .75 = .017980
    # mean = (.779791 + 3*.017980) / 4 = .208433
    assert val(focal_loss, gamma=2.0) == pytest.approx(0.208433, abs=1e-6)
    assert val(focal_loss, gamma=0.0) == pytest.approx(val(cross_entropy_loss), abs=1e-6)
    # alpha per class [1, 0]: only the y=0 pixel counts: .779791 / 4
    assert val(focal_loss, gamma=2.0, alpha=[1.0, 0.0]) == pytest.approx(0.194948, abs=1e-6)


def test_lovasz_grad_by_hand():
    # gt sorted [1,0,1,0]: |gt| = 2; intersection = 2 - cumsum = [1,1,0,0];
    # union = 2 + cumsum(1-gt) = [2,3,3,4]; J = 1 - I/U = [.5, .6667, 1, 1];
    # gradient = [J1, J2-J1, J3-J2, J4-J3] = [.5, .1667, .3333, 0]
    g = lovasz_grad(tf.constant([1.0, 0.0, 1.0, 0.0])).numpy()
    np.testing.assert_allclose(g, [0.5, 1 / 6, 1 / 3, 0.0], atol=1e-6)


def test_lovasz_value_gradient_ordering_and_permutation():
    # class 1: errors |fg - .75| = [.75, .25, .25, .25] (pixel 0 first); gt sorted [0,1,1,1]
    #   -> grad [.25,.25,.25,.25] -> loss_1 = .25 * (.75 + 3*.25) = .375
    # class 0: errors |fg - .25| = [.75, .25, .25, .25]; gt sorted [1,0,0,0] -> grad [1,0,0,0]
    #   -> loss_0 = .75;  "present" mean = (.75 + .375) / 2 = .5625
    assert val(lovasz_softmax_loss) == pytest.approx(0.5625, abs=1e-6)
    # The largest error is weighted by the first gradient entry: with p1 the only free value,
    # dL/dp1 = [.5*(.25) + .5*(1), .5*(-.25), ...] = [.625, -.125, -.125, -.125] and
    # dL/dz1 = dL/dp1 * p1 (1 - p1) = dL/dp1 * .1875; dL/dz0 = -dL/dz1.
    logits = tf.Variable(LOGITS)
    with tf.GradientTape() as tape:
        loss = lovasz_softmax_loss(Y, logits)
    grad = tape.gradient(loss, logits).numpy()[0]
    np.testing.assert_allclose(grad[..., 1].ravel(), [0.1171875, -0.0234375, -0.0234375, -0.0234375], atol=1e-6)
    np.testing.assert_allclose(grad[..., 0], -grad[..., 1], atol=1e-6)
    # Sorting makes the loss independent of pixel order.
    perm = np.array([3, 1, 0, 2])
    y_p = Y.reshape(1, 4)[:, perm].reshape(1, 2, 2)
    l_p = LOGITS.reshape(1, 4, 2)[:, perm].reshape(1, 2, 2, 2)
    assert float(lovasz_softmax_loss(y_p, l_p)[0]) == pytest.approx(0.5625, abs=1e-6)


def test_lovasz_present_vs_all_and_batch():
    y0 = np.ones((1, 2, 2), np.int32)  # only class 1 present
    # "present": class 1 errors all .25, gt all 1 -> J grad [.25]*4 -> .25
    # "all": class 0 absent: errors .25 each, gt all 0 -> |gt|=0, I=0, U=[1,2,3,4], J=[1,1,1,1]
    #   -> grad [1,0,0,0] -> .25; mean(.25, .25) = .25
    assert float(lovasz_softmax_loss(y0, LOGITS)[0]) == pytest.approx(0.25, abs=1e-6)
    assert float(lovasz_softmax_loss(y0, LOGITS, classes="all")[0]) == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(LightsegError):
        lovasz_softmax_loss(Y, LOGITS, classes="some")
    two = lovasz_softmax_loss(np.concatenate([Y, Y]), np.concatenate([LOGITS, LOGITS]), batch=True).numpy()
    np.testing.assert_allclose(two, [0.5625, 0.5625], atol=1e-6)


def test_dlce_is_the_sum_of_its_parts_and_a_weighted_sum():
    parts = val(soft_dice_loss) + val(lovasz_softmax_loss) + val(cross_entropy_loss)
    assert val(dlce_loss) == pytest.approx(parts, abs=1e-6)  # .25 + .5625 + .562335
    assert val(dlce_loss) == pytest.approx(1.374835, abs=1e-6)
    ws = build_loss(LossConfig(terms={"dice": 1.0, "lovasz": 1.0, "ce": 1.0}))
    assert float(ws(Y, LOGITS)) == pytest.approx(parts, abs=1e-6)
    half = build_loss(LossConfig(terms={"dlce": 0.5, "focal": 2.0}, options={"focal": {"gamma": 2.0}}))
    assert float(half(Y, LOGITS)) == pytest.approx(0.5 * parts + 2 * 0.208433, abs=1e-5)


@pytest.mark.parametrize("name", sorted(LOSS_FUNCTIONS))
def test_extreme_logits_give_finite_values_and_gradients(name):
    rng = np.random.default_rng(0)
    logits = tf.Variable(rng.choice([-1e4, 1e4], size=(2, 3, 3, 3)).astype(np.float32))
    y = rng.integers(0, 3, (2, 3, 3))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(LOSS_FUNCTIONS[name](y, logits))
    grad = tape.gradient(loss, logits)
    assert np.isfinite(loss.numpy()) and np.isfinite(grad.numpy()).all()


@pytest.mark.parametrize("loss", [
    SegmentationLoss("lovasz", {"classes": "all"}),
    SegmentationLoss("ce", {"class_weights": [1.0, 3.0]}),
    SegmentationLoss("focal_tversky", {"gamma": 1.5}),
    WeightedSumLoss({"dice": 1.0, "lovasz": 0.5}, {"dice": {"include_background": True}}),
])
def test_get_config_round_trip(loss):
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss) and again.get_config() == loss.get_config()
    assert float(again(Y, LOGITS)) == pytest.approx(float(loss(Y, LOGITS)), abs=1e-7)


def test_unknown_loss_names_are_errors():
    with pytest.raises(LightsegError, match="unknown loss 'dise'"):
        build_loss(LossConfig(terms={"dise": 1.0}))
    with pytest.raises(LightsegError, match="not loss terms"):
        WeightedSumLoss({"dice": 1.0}, {"ce": {}})


def test_labels_with_channel_axis_are_accepted():
    assert float(soft_dice_loss(Y[..., None], LOGITS)[0]) == pytest.approx(0.25, abs=1e-6)
