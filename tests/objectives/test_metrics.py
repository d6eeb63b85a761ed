"""Metrics against hand-computed values on 3x3 / small images, including every empty case."""

import numpy as np
import pytest
import tf_keras as keras

from lightseg_tf.objectives.metrics import (MeanForegroundDice, confusion_counts, dice_iou_per_class, score_image,
                                 summarise, surface_distances)

TRUE = np.array([[1, 1, 0], [1, 1, 0], [0, 0, 0]])
PRED = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]])


def test_overlap_metrics_by_hand():
    # class 1: tp = 3 ((0,0),(0,1),(1,0)), fp = 1 ((0,2)), fn = 1 ((1,1)), tn = 9 - 5 = 4
    # Dice = 2*3/(2*3+1+1) = .75; IoU = 3/5 = .6; sens = 3/4; spec = 4/5; precision = 3/4
    # class 0: tp = 4, fp = 1, fn = 1, tn = 3 -> Dice = 8/10 = .8, IoU = 4/6
    s = score_image(PRED, TRUE, 2, surface=False)
    np.testing.assert_array_equal(s["tp"], [4, 3])
    np.testing.assert_array_equal(s["fp"], [1, 1])
    np.testing.assert_array_equal(s["tn"], [3, 4])
    np.testing.assert_allclose(s["dice"], [0.8, 0.75])
    np.testing.assert_allclose(s["iou"], [4 / 6, 0.6])
    np.testing.assert_allclose(s["sensitivity"], [0.8, 0.75])
    np.testing.assert_allclose(s["specificity"], [0.75, 0.8])
    np.testing.assert_allclose(s["precision"], [0.8, 0.75])
    # Dice and IoU are tied by IoU = D / (2 - D) for every class.
    np.testing.assert_allclose(s["iou"], s["dice"] / (2 - s["dice"]))


def test_empty_cases_follow_the_documented_table():
    true = np.zeros((3, 3), int)
    pred = np.zeros((3, 3), int)
    pred[0, 0] = 1  # class 1: prediction only
    true[2, 2] = 2  # class 2: ground truth only; class 3: empty in both
    s = score_image(pred, true, 4)
    # both empty -> NaN
    assert np.isnan([s[m][3] for m in ("dice", "iou", "sensitivity", "precision", "hd95", "assd")]).all()
    assert s["specificity"][3] == 1.0
    # prediction only -> Dice 0, IoU 0, precision 0, sensitivity NaN, distances NaN
    assert s["dice"][1] == 0 and s["iou"][1] == 0 and s["precision"][1] == 0
    assert np.isnan(s["sensitivity"][1]) and np.isnan(s["hd95"][1])
    assert s["specificity"][1] == pytest.approx(8 / 9)
    # ground truth only -> Dice 0, sensitivity 0, precision NaN
    assert s["dice"][2] == 0 and s["sensitivity"][2] == 0 and np.isnan(s["precision"][2])


def test_hd95_and_assd_in_mm_with_non_unit_pixel_size():
    pred = np.zeros((1, 6), bool)
    true = np.zeros((1, 6), bool)
    pred[0, 0], true[0, 3] = True, True
    # single boundary pixels 3 px apart; 0.5 mm pixels -> 1.5 mm both ways
    assert surface_distances(pred, true, 0.5) == pytest.approx((1.5, 1.5))
    # 10x10 true square vs the same square shifted 2 px right; pixel 0.25 mm
    t = np.zeros((20, 20), bool)
    t[5:15, 5:15] = True
    p = np.roll(t, 2, axis=1)
    hd, assd = surface_distances(p, t, 0.25)
    # Far edges of the two boundaries are 2 px apart -> HD95 = 2 px = .5 mm; every boundary
    # pixel lies within 2 px, some at 0 (the overlapping top/bottom rows), so ASSD < .5 mm.
    assert hd == pytest.approx(0.5)
    assert 0 < assd < 0.5
    assert surface_distances(p, t, 1.0)[0] == pytest.approx(2.0)
    s = score_image(p.astype(int), t.astype(int), 2, pixel_size_mm=0.25)
    assert s["hd95"][1] == pytest.approx(0.5)


def test_summary_per_image_mean_vs_pooled_and_undefined_counts():
    big_t = np.zeros((10, 10), int)
    big_t[:5] = 1  # 50 pixels of class 1
    big_p = big_t.copy()  # perfect -> Dice 1
    small_t = np.zeros((10, 10), int)
    small_t[0, :2] = 1  # 2 pixels
    small_p = np.zeros((10, 10), int)
    small_p[0, 0] = 1  # tp 1, fn 1 -> Dice 2/3
    empty = np.zeros((10, 10), int)  # class 1 empty in both -> undefined
    scores = [score_image(p, t, 2) for p, t in ((big_p, big_t), (small_p, small_t), (empty, empty))]
    out = summarise(scores, ["background", "head"])
    head = out["per_class"]["head"]
    assert out["images"] == 3
    assert head["dice"] == pytest.approx((1 + 2 / 3) / 2)  # per image, the empty image skipped
    assert head["dice_undefined"] == 1
    assert head["pooled_dice"] == pytest.approx(2 * 51 / (2 * 51 + 1))  # tp 51, fn 1
    assert out["mean_fg_dice"] == pytest.approx(head["dice"])
    assert out["mean_all_dice"] == pytest.approx((head["dice"] + out["per_class"]["background"]["dice"]) / 2)


def test_confusion_counts_and_dice_iou_helper_agree():
    tp, fp, fn, tn = confusion_counts(PRED, TRUE, 3)
    assert (tp + fp + fn + tn == 9).all()
    dice, iou = dice_iou_per_class(PRED, TRUE, 3)
    assert np.isnan(dice[2]) and dice[1] == pytest.approx(0.75)


def test_streaming_dice_matches_per_image_mean_and_round_trips():
    m = MeanForegroundDice(3)
    logits = np.eye(3, dtype=np.float32)[np.stack([PRED, TRUE])]  # image 1 = PRED, image 2 perfect
    m.update_state(np.stack([TRUE, TRUE]), logits)
    # class 1: Dice .75 and 1 -> .875; class 2 empty everywhere -> skipped
    assert float(m.result()) == pytest.approx(0.875)
    again = keras.metrics.deserialize(keras.metrics.serialize(m))
    assert isinstance(again, MeanForegroundDice) and again.num_classes == 3
    m.reset_state()
    assert float(m.result()) == 0.0


def test_subject_bootstrap_resamples_subjects_not_images():
    from lightseg_tf.objectives.metrics import subject_bootstrap_ci

    rng = np.random.default_rng(3)
    per_subject = 0.97 + 0.01 * rng.standard_normal(60)
    once = subject_bootstrap_ci(per_subject, [f"s{i}" for i in range(60)])
    # Every subject scanned three times with the same score: the same 60 draws, not 180.
    thrice = subject_bootstrap_ci(np.repeat(per_subject, 3), [f"s{i}" for i in range(60) for _ in range(3)])
    as_images = subject_bootstrap_ci(np.repeat(per_subject, 3), [f"i{k}" for k in range(180)])
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert once[0] < per_subject.mean() < once[1]
    assert abs(width(thrice) / width(once) - 1) < 0.15  # repeats of a subject add no information...
    assert width(as_images) < 0.7 * width(thrice)  # ...which resampling images would pretend they do
    se = per_subject.std(ddof=1) / np.sqrt(60)
    assert abs(width(once) / (2 * 1.96 * se) - 1) < 0.2
    assert subject_bootstrap_ci(per_subject, [f"s{i}" for i in range(60)]) == once  # seeded


def test_subject_bootstrap_of_a_mean_over_classes_skips_undefined_scores():
    from lightseg_tf.objectives.metrics import subject_bootstrap_ci

    # Class 2 is absent on one image of each subject: every resample's class-2 mean is 0.9, not 0.45.
    dice = np.array([[0.5, 0.9], [0.5, np.nan], [0.5, 0.9], [0.5, np.nan]])
    assert subject_bootstrap_ci(dice, ["a", "a", "b", "b"], n_boot=200) == pytest.approx([0.7, 0.7])
    assert subject_bootstrap_ci([0.9, 0.8], ["a", "a"]) is None  # one subject: no interval
    with pytest.raises(ValueError, match="3 values but 2"):
        subject_bootstrap_ci([0.1, 0.2, 0.3], ["a", "b"])
