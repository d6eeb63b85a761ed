"""Segmentation losses on logits; a config's weighted sum of them is built by ``build_loss``.

All losses take ``y_true`` int class ids ``[B, H, W]`` and ``y_pred`` logits ``[B, H, W, C]``.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from lightseg_tf.errors import LightsegError


def soft_dice_loss(y_true, logits, *, include_background: bool = False, eps: float = 1e-6):
    """Multiclass soft Dice loss, per image then averaged; ``[B]`` losses.

    Milletari et al., "V-Net", 3DV 2016.
    """
    num_classes = tf.shape(logits)[-1]
    probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    onehot = tf.one_hot(tf.cast(y_true, tf.int32), num_classes, dtype=tf.float32)
    inter = tf.reduce_sum(probs * onehot, axis=[1, 2])
    denom = tf.reduce_sum(probs + onehot, axis=[1, 2])
    dice = (2.0 * inter + eps) / (denom + eps)
    if not include_background:
        dice = dice[:, 1:]
    return 1.0 - tf.reduce_mean(dice, axis=-1)


def cross_entropy_loss(y_true, logits):
    """Per-image mean categorical cross-entropy from logits; ``[B]``."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.cast(y_true, tf.int32), logits=tf.cast(logits, tf.float32)
    )
    return tf.reduce_mean(ce, axis=[1, 2])


_LOSSES = {"dice": soft_dice_loss, "ce": cross_entropy_loss}


@keras.utils.register_keras_serializable(package="lightseg")
class WeightedSumLoss(keras.losses.Loss):
    """``sum_k w_k * loss_k(y_true, logits)`` over registered loss names."""

    def __init__(self, terms: dict, options: dict | None = None, name: str = "weighted_sum", **kwargs):
        super().__init__(name=name, **kwargs)
        unknown = sorted(set(terms) - set(_LOSSES))
        if unknown:
            raise LightsegError(f"unknown loss terms {unknown}; choose from {sorted(_LOSSES)}")
        self.terms = dict(terms)
        self.options = dict(options or {})

    def call(self, y_true, y_pred):
        total = 0.0
        for term, weight in self.terms.items():
            total += weight * _LOSSES[term](y_true, y_pred, **self.options.get(term, {}))
        return total

    def get_config(self):
        return {**super().get_config(), "terms": self.terms, "options": self.options}


def build_loss(loss_cfg) -> keras.losses.Loss:
    """The weighted-sum loss described by a :class:`lightseg_tf.config.LossConfig`."""
    return WeightedSumLoss(loss_cfg.terms, loss_cfg.options)
