"""Segmentation metrics: per-image per-class Dice/IoU (numpy) and a streaming Keras Dice.

Empty-class convention (README "How an empty class counts"): for a class absent from BOTH
the ground truth and the prediction of an image, Dice and IoU are undefined and that
(image, class) pair is left out of the averages (NaN, skipped by nanmean). A class present
in only one of them scores 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras


def confusion_counts(pred: np.ndarray, true: np.ndarray, num_classes: int):
    """Per-class (tp, fp, fn) of one image; each an int64 array ``[C]``."""
    pred = np.asarray(pred).ravel()
    true = np.asarray(true).ravel()
    cm = np.bincount(true * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)
    tp = np.diag(cm).astype(np.int64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    return tp, fp, fn


def dice_iou_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int):
    """Dice and IoU per class of one image (``[H, W]`` class ids); NaN where both are empty."""
    tp, fp, fn = confusion_counts(pred, true, num_classes)
    denom_d = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = np.where(denom_d > 0, 2 * tp / np.maximum(denom_d, 1), np.nan)
        iou = np.where(denom_d > 0, tp / np.maximum(tp + fp + fn, 1), np.nan)
    return dice, iou


@keras.utils.register_keras_serializable(package="lightseg")
class MeanForegroundDice(keras.metrics.Metric):
    """Streaming mean over foreground classes of the per-image Dice (empty pairs skipped)."""

    def __init__(self, num_classes: int, name: str = "mean_fg_dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = int(num_classes)
        self.total = self.add_weight(name="total", shape=(self.num_classes,), initializer="zeros")
        self.count = self.add_weight(name="count", shape=(self.num_classes,), initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
        true = tf.cast(y_true, tf.int32)
        p = tf.one_hot(pred, self.num_classes)
        t = tf.one_hot(true, self.num_classes)
        tp = tf.reduce_sum(p * t, axis=[1, 2])
        denom = tf.reduce_sum(p + t, axis=[1, 2])
        valid = tf.cast(denom > 0, tf.float32)
        dice = tf.math.divide_no_nan(2.0 * tp, denom)
        self.total.assign_add(tf.reduce_sum(dice * valid, axis=0))
        self.count.assign_add(tf.reduce_sum(valid, axis=0))

    def result(self):
        per_class = tf.math.divide_no_nan(self.total, self.count)[1:]
        present = tf.cast(self.count[1:] > 0, tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(per_class * present), tf.reduce_sum(present))

    def reset_state(self):
        self.total.assign(tf.zeros_like(self.total))
        self.count.assign(tf.zeros_like(self.count))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}
