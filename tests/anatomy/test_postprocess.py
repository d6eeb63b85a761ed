import numpy as np
import pytest

from lightseg_tf.anatomy.biometry import Ellipse, ellipse_region, fit_head_ellipse
from lightseg_tf.anatomy.postprocess import ClassRule, default_rules, postprocess

CLASSES = ("background", "Brain", "CSP", "LV")


def _scene():
    m = np.zeros((40, 40), np.int32)
    m[5:35, 5:35] = 1  # brain
    m[15:18, 18:22] = 2  # CSP
    m[25:29, 10:14] = 3  # LV
    return m


def test_clean_map_is_unchanged():
    np.testing.assert_array_equal(postprocess(_scene(), CLASSES), _scene())


def test_head_keeps_largest_component_and_fills_holes():
    m = _scene()
    m[20:22, 25:27] = 0  # a hole inside the brain
    m[0:3, 37:40] = 1  # a stray brain fragment outside
    out = postprocess(m, CLASSES)
    assert (out[20:22, 25:27] == 1).all() and (out[0:3, 37:40] == 0).all()
    assert (out[15:18, 18:22] == 2).all()  # CSP inside the head survives the fill


def test_small_classes_min_area_max_k_and_inside_the_brain():
    m = _scene()
    m[8, 30] = 2  # 1-pixel CSP speck inside the brain -> brain
    m[1:4, 1:4] = 2  # CSP outside the brain -> background
    m[10:12, 28:31] = 3  # second LV (allowed: K = 2)
    m[30:31, 28:31] = 3  # third, smaller LV (3 px vs 16 and 6) -> brain: K = 2 keeps the two largest
    rules = {**default_rules(CLASSES), 2: ClassRule("small", 2 / 1600, 1, "brain")}
    out = postprocess(m, CLASSES, rules)
    assert out[8, 30] == 1 and (out[1:4, 1:4] == 0).all()
    assert (out[10:12, 28:31] == 3).all() and (out[25:29, 10:14] == 3).all()
    assert (out[30:31, 28:31] == 1).all()
    assert (out[15:18, 18:22] == 2).all()


def test_margin_sends_unsure_small_pixels_to_second_best():
    m = _scene()
    probs = np.eye(4, dtype=np.float32)[m] * 0.9 + 0.025
    probs[16, 19] = [0.0, 0.45, 0.55, 0.0]  # CSP by a hair
    out = postprocess(m, CLASSES, probs=probs, margin=0.2)
    assert out[16, 19] == 1 and out[15, 18] == 2


def test_rules_are_chosen_by_name():
    rules = default_rules(("background", "pubic symphysis", "fetal head"))
    assert rules[2].region == "head" and rules[1].max_components == 1 and rules[1].inside is None
    assert default_rules(("background", "head")) == {1: ClassRule("head", ellipse=True)}  # HC18's ellipses
    assert not rules[2].ellipse and not default_rules(CLASSES)[1].ellipse


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def test_the_filled_ellipse_fits_back_to_itself():
    e = Ellipse(101.3, 70.2, 80.0, 55.0, 23.0)
    f = fit_head_ellipse(ellipse_region(e, (160, 220)))
    assert (f.cx, f.cy, f.a, f.b, f.angle_deg) == pytest.approx((e.cx, e.cy, e.a, e.b, e.angle_deg), abs=0.1)


def test_an_ellipse_annotated_head_becomes_the_fitted_ellipse():
    """A head predicted at 1/8 of the resolution and upsampled (a staircase outline) plus a stray
    blob: the ellipse rule gives back the smooth ellipse; the plain head rule keeps the staircase."""
    truth = ellipse_region(Ellipse(101.3, 70.2, 80.0, 55.0, 23.0), (160, 220))
    coarse = ellipse_region(Ellipse(101.3 / 8, 70.2 / 8, 10.0, 55.0 / 8, 23.0), (20, 28))
    pred = np.kron(coarse, np.ones((8, 8), bool))[:160, :220].astype(np.int32)
    pred[2:6, 2:6] = 1
    classes = ("background", "head")
    plain = postprocess(pred, classes, {1: ClassRule("head")}) == 1
    fitted = postprocess(pred, classes) == 1
    assert _dice(plain, truth) < 0.975 and _dice(fitted, truth) > 0.995
    assert not fitted[2:6, 2:6].any()
