"""The head-measurement confidence: each term reacts to its failure, and the threshold rule."""

import math

import numpy as np
import pytest

from lightseg_tf.anatomy.biometry import Ellipse
from lightseg_tf.anatomy.confidence import (choose_threshold, ellipse_residual, head_confidence, low_structures,
                                            structure_flag, structure_thresholds, verdict)

CLASSES = ("background", "head")


def _ellipse(h=96, w=128, cx=64.0, cy=48.0, a=40.0, b=28.0):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return (((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1).astype(np.int32)


def _probs(mask, p_head=1.0):
    """Probabilities that draw ``mask`` with ``p_head`` for the head inside it (1 - p_head outside)."""
    p = np.where(mask > 0, p_head, 1.0 - p_head).astype(np.float32)
    return np.stack([1 - p, p], axis=-1)


def test_a_certain_elliptic_head_scores_high_and_each_failure_lowers_it():
    mask = _ellipse()
    good = head_confidence(_probs(mask), mask, CLASSES)
    assert good["score"] > 0.85 and good["raw"]["residual"] < 0.01
    assert good["components"]["border"] == 1.0 and good["components"]["fragments"] == 1.0
    assert good["structures"] == {"head": pytest.approx(1.0)}

    unsure = head_confidence(_probs(mask, 0.6), mask, CLASSES)  # the same head, barely above chance
    assert unsure["components"]["margin_in"] == pytest.approx(0.2, abs=1e-5) and unsure["score"] < 0.25

    square = np.zeros_like(mask)
    square[18:78, 34:94] = 1  # a head that is no ellipse
    assert head_confidence(_probs(square), square, CLASSES)["components"]["fit"] < 0.6

    cut = _ellipse(cx=20.0)  # half the head outside the frame
    c = head_confidence(_probs(cut), cut, CLASSES)
    assert c["raw"]["edge_share"] > 0.1 and c["components"]["border"] < 0.5

    pieces = mask.copy()
    pieces[::12, ::12] = 1  # stray head pixels all over the image
    pieces[2:14, 2:14] = 1
    assert head_confidence(_probs(pieces), pieces, CLASSES)["components"]["fragments"] < 0.95

    tiny = _ellipse(a=3.0, b=2.0)
    assert head_confidence(_probs(tiny), tiny, CLASSES)["components"]["area"] == 0.0  # 0.15 % of the image
    whole = np.ones_like(mask)
    assert head_confidence(_probs(whole), whole, CLASSES)["components"]["area"] == 0.0

    none = np.zeros_like(mask)
    assert head_confidence(_probs(none), none, CLASSES)["score"] == 0.0


def test_ellipse_residual_is_the_relative_radial_distance():
    circle = Ellipse(50.0, 40.0, 20.0, 20.0, 0.0)
    t = np.linspace(0, 2 * math.pi, 50, endpoint=False)
    on = np.stack([50 + 20 * np.cos(t), 40 + 20 * np.sin(t)], axis=1)
    assert ellipse_residual(on, circle) == pytest.approx(0.0, abs=1e-12)
    assert ellipse_residual(np.stack([50 + 22 * np.cos(t), 40 + 22 * np.sin(t)], axis=1), circle) == pytest.approx(0.1)
    tilted = Ellipse(0.0, 0.0, 30.0, 10.0, 30.0)  # points on a rotated ellipse lie on it
    u, v = 30 * np.cos(t), 10 * np.sin(t)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    assert ellipse_residual(np.stack([u * c - v * s, u * s + v * c], axis=1), tilted) == pytest.approx(0.0, abs=1e-9)


def test_threshold_is_where_bad_images_dominate_or_below_the_good_ones():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    bad = [True, True, False, True, False, False, False, False]
    # below 0.55: 3 of 5 bad (more than half); below 0.65 3 of 6 is not more than half
    assert choose_threshold(scores, bad) == 0.55
    # no bad image: the 2 % quantile of the good scores (0.1 + 0.02 * 7 * 0.1 = 0.114)
    assert choose_threshold(scores, [False] * 8) == 0.11
    assert choose_threshold(scores, [True] * 8) == 1.0  # no good VAL image: nothing is vouched for
    # tied scores are cut together: 1 bad of the 2 at 0.3 is not more than half; the good ones' 2 % quantile
    assert choose_threshold([0.3, 0.3, 0.8, 0.9, 0.95], [True, False, False, False, False]) == 0.33
    with pytest.raises(ValueError):
        choose_threshold([0.5], [True, False])
    assert [verdict(s, 0.5) for s in (0.494, 0.495, 0.7)] == ["low", "ok", "ok"]  # decided at 0.01, as printed
    assert verdict(0.1, None) == "uncalibrated"


def test_structures_below_their_own_thresholds_are_flagged_at_the_printed_precision():
    margins = {"pubic symphysis": 0.924, "fetal head": 0.97}  # drawn structures, class order
    assert low_structures(margins, {"pubic symphysis": 0.93, "fetal head": 0.91}) == ["pubic symphysis"]
    assert low_structures({"pubic symphysis": 0.925}, {"pubic symphysis": 0.93}) == []  # 0.925 prints 0.93
    assert low_structures(margins, {"fetal head": 0.98}) == ["fetal head"]  # no threshold: never flagged
    assert low_structures(margins, None) == [] and low_structures({}, {"fetal head": 0.9}) == []
    assert structure_flag("pubic symphysis") == "low confidence (pubic symphysis): do not use"


def test_structure_thresholds_read_the_run_and_the_card_shapes():
    run = {"structures": {"PS": {"threshold": 0.93, "val": {"n": 5}}, "FH": {"threshold": None, "val": {}}}}
    assert structure_thresholds(run) == {"PS": 0.93}
    assert structure_thresholds({"structures": {"PS": 0.93, "FH": 0.9}}) == {"PS": 0.93, "FH": 0.9}
    assert structure_thresholds(None) == {} and structure_thresholds({"threshold": 0.3}) == {}
