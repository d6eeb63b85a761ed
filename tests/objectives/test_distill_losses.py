"""Each soft distillation term against a numpy computation by hand on a tiny batch."""

import typing

import numpy as np
import pytest

from lightseg_tf.config import DistillConfig
from lightseg_tf.errors import LightsegError
from lightseg_tf.objectives.distill_losses import SOFT_LOSSES, soft_loss


def _softmax(z, axis=-1):
    e = np.exp(z - z.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _pixel_kl(t, s, temp):
    pt, ps = _softmax(t / temp), _softmax(s / temp)
    return np.sum(pt * np.log(pt / ps), axis=-1)


def _batch():
    rng = np.random.default_rng(3)
    mask = np.array([[[0, 0, 1], [0, 2, 1], [0, 0, 0]],
                     [[0, 0, 0], [0, 1, 1], [2, 2, 0]]], np.int32)  # [2, 3, 3], 3 classes
    t = rng.normal(size=(2, 3, 3, 3)).astype(np.float32) * 2
    s = rng.normal(size=(2, 3, 3, 3)).astype(np.float32) * 2
    return mask, t, s


def _value(name, t, s, temp, mask):
    return float(soft_loss(name, t, s, temp, mask))


@pytest.mark.parametrize("temp", [1.0, 3.0])
def test_kl_is_the_t_squared_pixel_mean(temp):
    mask, t, s = _batch()
    assert _value("kl", t, s, temp, mask) == pytest.approx(temp**2 * _pixel_kl(t, s, temp).mean(), rel=1e-5)


def test_kl_agree_averages_only_where_the_teacher_is_right():
    mask, t, s = _batch()
    agree = t.argmax(-1) == mask
    assert 0 < agree.sum() < agree.size  # the case is not degenerate
    expected = 4.0 * _pixel_kl(t, s, 2.0)[agree].mean()
    assert _value("kl_agree", t, s, 2.0, mask) == pytest.approx(expected, rel=1e-5)
    # a teacher wrong everywhere teaches nothing
    wrong = np.where(np.eye(3, dtype=bool)[mask], -10.0, 10.0).astype(np.float32)
    assert _value("kl_agree", wrong, s, 2.0, mask) == 0.0


def test_kl_balanced_gives_each_present_class_the_same_total_weight():
    mask, t, s = _batch()
    kl = _pixel_kl(t, s, 1.5)
    per_class = [kl[mask == c].mean() for c in range(3)]
    assert _value("kl_balanced", t, s, 1.5, mask) == pytest.approx(1.5**2 * np.mean(per_class), rel=1e-5)


def test_cwd_normalises_each_class_map_over_its_image():
    mask, t, s = _batch()
    temp = 2.0
    total = 0.0
    for b in range(2):
        for c in range(3):
            pt = _softmax(t[b, ..., c].reshape(-1) / temp)
            ps = _softmax(s[b, ..., c].reshape(-1) / temp)
            total += np.sum(pt * np.log(pt / ps))
    assert _value("cwd", t, s, temp, mask) == pytest.approx(temp**2 * total / 6, rel=1e-5)


def test_dist_is_one_minus_pearson_across_classes_and_across_pixels():
    mask, t, s = _batch()
    pt, ps = _softmax(t / 2.0).reshape(-1, 3), _softmax(s / 2.0).reshape(-1, 3)
    inter = 1 - np.mean([np.corrcoef(ps[i], pt[i])[0, 1] for i in range(len(pt))])
    intra = 1 - np.mean([np.corrcoef(ps[:, c], pt[:, c])[0, 1] for c in range(3)])
    assert _value("dist", t, s, 2.0, mask) == pytest.approx(4.0 * (inter + intra), rel=1e-4)


def test_dice_between_probabilities():
    mask, t, s = _batch()
    pt, ps = _softmax(t).reshape(-1, 3), _softmax(s).reshape(-1, 3)
    dice = 2 * (ps * pt).sum(0) / ((ps**2).sum(0) + (pt**2).sum(0))
    assert _value("dice", t, s, 5.0, mask) == pytest.approx(1 - dice.mean(), rel=1e-5)


@pytest.mark.parametrize("name", SOFT_LOSSES)
def test_every_term_is_zero_for_a_perfect_student_and_positive_otherwise(name):
    mask, t, s = _batch()
    # DIST and Dice reach 0 only up to float32 rounding of correlations/overlaps
    assert _value(name, t, t.copy(), 2.0, mask) == pytest.approx(0.0, abs=1e-5)
    assert _value(name, t, s, 2.0, mask) > 1e-3


def test_unknown_term_and_config_choices_agree_with_the_module():
    mask, t, s = _batch()
    with pytest.raises(LightsegError, match="unknown distill.soft_loss 'mse'"):
        soft_loss("mse", t, s, 1.0, mask)
    hints = typing.get_type_hints(DistillConfig)
    assert set(typing.get_args(hints["soft_loss"])) == set(SOFT_LOSSES)


def test_a_temperature_above_one_spreads_a_small_class_over_the_image():
    """cwd's target from log-probabilities: a class sure on 10 of 1000 pixels (p 0.99) and at p 1e-3
    elsewhere keeps 10*0.99 / (10*0.99 + 990e-3) = 0.909 of its mass there at T = 1, but
    10*0.99^0.5 / (10*0.99^0.5 + 990*1e-3^0.5) = 0.242 at T = 2."""
    from lightseg_tf.objectives.distill_losses import channel_log_distributions
    from lightseg_tf.training.distillation import probs_to_logits

    p = np.full((1, 1000, 1, 2), 1e-3, np.float32)
    p[0, :10, 0, 1] = 0.99
    p[..., 0] = 1 - p[..., 1]
    logits = probs_to_logits(p)
    for t, expected in ((1.0, 9.9 / (9.9 + 0.99)), (2.0, 10 * 0.99 ** 0.5 / (10 * 0.99 ** 0.5 + 990 * 1e-3 ** 0.5))):
        mass = np.exp(channel_log_distributions(logits, t).numpy())[0, 1]
        assert mass.sum() == pytest.approx(1.0, abs=1e-5)
        assert mass[:10].sum() == pytest.approx(expected, rel=1e-4)
