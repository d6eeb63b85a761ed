"""Segmentation losses on logits, and the config's weighted sum of them.

Every loss takes ``y_true`` int class ids ``[B, H, W]`` (or ``[B, H, W, 1]``) and ``y_pred``
LOGITS ``[B, H, W, C]``; softmax is applied once, inside, in float32. Pure functions return
per-image losses ``[B]``; each has a thin ``register_keras_serializable`` class. Any weighted
sum of them is a :class:`WeightedSumLoss` built from ``LossConfig.terms`` / ``.options``.

Empty classes: soft Dice and Tversky add ``smooth`` to numerator and denominator, so a class
absent from both target and prediction scores 1 (loss 0) instead of 0/0.
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf
import tf_keras as keras

from lightseg_tf.errors import LightsegError


def _prepare(y_true, logits):
    """int32 labels ``[B, H, W]``, float32 logits ``[B, H, W, C]`` and ``C``."""
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(y_true, tf.int32)
    if labels.shape.rank == logits.shape.rank:
        labels = tf.squeeze(labels, axis=-1)
    return labels, logits, tf.shape(logits)[-1]


def _soft_counts(y_true, logits, batch: bool):
    """Soft (tp, fp, fn) per image and class ``[B, C]`` (summed over the batch if ``batch``)."""
    labels, logits, c = _prepare(y_true, logits)
    probs = tf.nn.softmax(logits, axis=-1)
    onehot = tf.one_hot(labels, c, dtype=tf.float32)
    axes = [1, 2]
    tp = tf.reduce_sum(probs * onehot, axis=axes)
    fp = tf.reduce_sum(probs * (1.0 - onehot), axis=axes)
    fn = tf.reduce_sum((1.0 - probs) * onehot, axis=axes)
    if batch:
        b = tf.shape(tp)[0]
        tp, fp, fn = (tf.repeat(tf.reduce_sum(t, 0, keepdims=True), b, axis=0) for t in (tp, fp, fn))
    return tp, fp, fn


def _mean_over_classes(per_class, include_background: bool):
    return tf.reduce_mean(per_class if include_background else per_class[:, 1:], axis=-1)


def soft_dice_loss(y_true, logits, *, include_background: bool = False, batch: bool = False,
                   smooth: float = 1e-6):
    """Multiclass soft Dice loss ``1 - mean_c (2 tp + s) / (2 tp + fp + fn + s)``; ``[B]``.

    Milletari, Navab, Ahmadi, "V-Net", 3DV 2016.

    Args:
        include_background: average over all classes (True) or foreground only.
        batch: pool the soft counts over the batch ("batch Dice") instead of per image.
        smooth: added to numerator and denominator (empty classes score 1).
    """
    tp, fp, fn = _soft_counts(y_true, logits, batch)
    dice = (2.0 * tp + smooth) / (2.0 * tp + fp + fn + smooth)
    return 1.0 - _mean_over_classes(dice, include_background)


def tversky_loss(y_true, logits, *, alpha: float = 0.3, beta: float = 0.7, include_background: bool = False,
                 batch: bool = False, smooth: float = 1e-6):
    """Tversky loss ``1 - mean_c tp / (tp + alpha fp + beta fn)``; ``[B]``.

    Salehi, Erdogmus, Gholipour, "Tversky loss function for image segmentation using 3D fully
    convolutional deep networks", MLMI 2017. ``alpha = beta = 0.5`` is soft Dice.
    """
    tp, fp, fn = _soft_counts(y_true, logits, batch)
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return 1.0 - _mean_over_classes(ti, include_background)


def focal_tversky_loss(y_true, logits, *, alpha: float = 0.3, beta: float = 0.7, gamma: float = 0.75,
                       include_background: bool = False, batch: bool = False, smooth: float = 1e-6):
    """Focal Tversky loss ``mean_c (1 - TI_c) ** gamma``; ``[B]``.

    Abraham & Khan, ISBI 2019; their exponent ``1/gamma`` with gamma = 4/3 is ``gamma=0.75`` here.
    """
    tp, fp, fn = _soft_counts(y_true, logits, batch)
    ti = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    return _mean_over_classes(tf.pow(tf.maximum(1.0 - ti, 0.0), gamma), include_background)


def cross_entropy_loss(y_true, logits, *, class_weights: Sequence[float] | None = None):
    """Categorical cross-entropy from logits, per image; ``[B]``.

    With ``class_weights`` each pixel is weighted by the weight of its TRUE class and the
    image's loss is ``sum(w_y * ce) / sum(w_y)`` (a weighted mean). The LightSeg reference
    instead multiplied plain CE by the sum of the weights, which only rescales the loss.
    """
    labels, logits, c = _prepare(y_true, logits)
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    if class_weights is None:
        return tf.reduce_mean(ce, axis=[1, 2])
    w = tf.gather(tf.constant(class_weights, tf.float32), labels)
    return tf.reduce_sum(w * ce, axis=[1, 2]) / tf.maximum(tf.reduce_sum(w, axis=[1, 2]), 1e-12)


def focal_loss(y_true, logits, *, gamma: float = 2.0, alpha: Sequence[float] | float | None = None):
    """Focal loss ``-alpha_y (1 - p_y)**gamma log p_y``, mean over pixels; ``[B]``.

    Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017. Written with
    ``log_softmax`` rather than Keras' ``categorical_focal_crossentropy``, which clips the
    softmax and loses the gradient for confident logits.

    Args:
        alpha: one weight for every class, a weight per class, or None (1).
    """
    labels, logits, c = _prepare(y_true, logits)
    log_p = tf.gather(tf.nn.log_softmax(logits, axis=-1), labels[..., None], batch_dims=3)[..., 0]
    loss = -tf.pow(1.0 - tf.exp(log_p), gamma) * log_p
    if alpha is not None:
        a = tf.constant(alpha, tf.float32)
        loss = loss * (tf.gather(a, labels) if a.shape.rank == 1 else a)
    return tf.reduce_mean(loss, axis=[1, 2])


def lovasz_grad(gt_sorted):
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors.

    Berman, Triki, Blaschko, "The Lovász-Softmax loss", CVPR 2018, Alg. 1. ``gt_sorted``:
    ``[..., P]`` 0/1 ground truth ordered by decreasing error. Returns the same shape.
    """
    gts = tf.reduce_sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - tf.cumsum(gt_sorted, axis=-1)
    union = gts + tf.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - intersection / union
    return tf.concat([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


def lovasz_softmax_loss(y_true, logits, *, classes: str = "present", batch: bool = False):
    """Lovász-Softmax loss (Berman et al., CVPR 2018), per image (or batch); ``[B]``.

    For each class c the pixel errors ``|1[y=c] - p_c|`` are sorted in decreasing order and
    dotted with :func:`lovasz_grad`; classes are averaged ("present": only classes in the
    ground truth, "all": every class). Vectorised over images and classes.
    """
    if classes not in ("present", "all"):
        raise LightsegError(f"lovasz classes must be 'present' or 'all', got {classes!r}")
    labels, logits, c = _prepare(y_true, logits)
    probs = tf.nn.softmax(logits, axis=-1)
    b = tf.shape(probs)[0]
    probs = tf.reshape(probs, [b, -1, c])
    fg = tf.one_hot(tf.reshape(labels, [b, -1]), c, dtype=tf.float32)
    if batch:
        probs, fg = tf.reshape(probs, [1, -1, c]), tf.reshape(fg, [1, -1, c])
    fg = tf.transpose(fg, [0, 2, 1])  # [B', C, P]
    errors = tf.abs(fg - tf.transpose(probs, [0, 2, 1]))
    order = tf.argsort(errors, axis=-1, direction="DESCENDING", stable=True)
    errors_sorted = tf.gather(errors, order, batch_dims=2)
    fg_sorted = tf.gather(fg, order, batch_dims=2)
    per_class = tf.reduce_sum(errors_sorted * tf.stop_gradient(lovasz_grad(fg_sorted)), axis=-1)
    if classes == "present":
        present = tf.cast(tf.reduce_sum(fg, axis=-1) > 0, tf.float32)
        loss = tf.reduce_sum(per_class * present, -1) / tf.maximum(tf.reduce_sum(present, -1), 1.0)
    else:
        loss = tf.reduce_mean(per_class, axis=-1)
    return tf.repeat(loss, b) if batch else loss


def dlce_loss(y_true, logits, *, w_dice: float = 1.0, w_lovasz: float = 1.0, w_ce: float = 1.0):
    """DLCE = w_dice * soft Dice + w_lovasz * Lovász-Softmax + w_ce * cross-entropy; ``[B]``.

    The LightSeg student's objective (Alzubaidi et al., 2023), 1:1:1 by default.
    """
    return (w_dice * soft_dice_loss(y_true, logits) + w_lovasz * lovasz_softmax_loss(y_true, logits)
            + w_ce * cross_entropy_loss(y_true, logits))


LOSS_FUNCTIONS: dict[str, Callable] = {
    "dice": soft_dice_loss,
    "lovasz": lovasz_softmax_loss,
    "ce": cross_entropy_loss,
    "focal": focal_loss,
    "tversky": tversky_loss,
    "focal_tversky": focal_tversky_loss,
    "dlce": dlce_loss,
}


def _check_term(name: str) -> Callable:
    if name not in LOSS_FUNCTIONS:
        raise LightsegError(f"unknown loss {name!r}; choose from {sorted(LOSS_FUNCTIONS)}")
    return LOSS_FUNCTIONS[name]


@keras.utils.register_keras_serializable(package="lightseg")
class SegmentationLoss(keras.losses.Loss):
    """One registered loss by name with its keyword options (e.g. ``SegmentationLoss("lovasz")``)."""

    def __init__(self, loss: str = "dice", options: dict | None = None, name: str | None = None, **kwargs):
        super().__init__(name=name or loss, **kwargs)
        self.loss = loss
        self.options = dict(options or {})
        self._fn = _check_term(loss)

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self.options)

    def get_config(self):
        return {**super().get_config(), "loss": self.loss, "options": self.options}


@keras.utils.register_keras_serializable(package="lightseg")
class WeightedSumLoss(keras.losses.Loss):
    """``sum_k w_k * loss_k(y_true, logits)`` over registered loss names."""

    def __init__(self, terms: dict, options: dict | None = None, name: str = "weighted_sum", **kwargs):
        super().__init__(name=name, **kwargs)
        for term in terms:
            _check_term(term)
        unknown = sorted(set(options or {}) - set(terms))
        if unknown:
            raise LightsegError(f"loss options given for {unknown}, which are not loss terms {sorted(terms)}")
        self.terms = {k: float(v) for k, v in terms.items()}
        self.options = {k: dict(v) for k, v in (options or {}).items()}

    def call(self, y_true, y_pred):
        total = 0.0
        for term, weight in self.terms.items():
            if weight:
                total += weight * LOSS_FUNCTIONS[term](y_true, y_pred, **self.options.get(term, {}))
        return total

    def get_config(self):
        return {**super().get_config(), "terms": self.terms, "options": self.options}


def build_loss(loss_cfg) -> keras.losses.Loss:
    """The weighted-sum loss described by a :class:`lightseg_tf.config.LossConfig`."""
    return WeightedSumLoss(loss_cfg.terms, loss_cfg.options)
