"""Soft (teacher -> student) loss terms for distillation of imbalanced segmentations.

Every term takes the teacher's and the student's logits ``[B, H, W, C]`` (the teacher's are the
log of the ensemble's probabilities), the temperature ``T`` and the integer mask ``[B, H, W]``,
and returns a scalar. Which one a distillation uses is ``distill.soft_loss``:

``kl``           T^2 * pixel-mean KL(softmax(t/T) || softmax(s/T)) (Hinton et al., 2015). In a fetal
                 head scan 90 %+ of the pixels are background the teachers are sure of, so this
                 mean mostly teaches what the student already knows.
``kl_agree``     the same KL, averaged only over the pixels where the teachers' argmax equals the
                 label: a teacher's mistake is never taught, its soft shape around correct
                 pixels (boundaries, near-misses) still is.
``kl_balanced``  the KL with each pixel weighted by 1 / (pixels of its label class in the batch),
                 so every class present contributes equally (class-balanced KD).
``cwd``          channel-wise distillation (Shu et al., "Channel-wise knowledge distillation for
                 dense prediction", ICCV 2021): each class map is softmax-normalised over the
                 pixels of its image, and the student matches where the teacher puts each class,
                 whatever the class's area: T^2 / C * sum_c KL over pixels, batch mean.
``dist``         DIST (Huang et al., "Knowledge distillation from a stronger teacher",
                 NeurIPS 2022): 1 - Pearson correlation of the softened probabilities across
                 classes (per pixel, inter-class) plus across pixels (per class, intra-class),
                 times T^2. It matches relations, not exact values, which tolerates a teacher
                 whose confidence differs from the student's.
``dice``         soft Dice between the student's and the teacher's probabilities (T = 1) with
                 squared norms in the denominator (Milletari et al., V-Net, 3DV 2016),
                 1 - mean over classes of 2 <p_s, p_t> / (|p_s|^2 + |p_t|^2): area-normalised, so
                 small structures weigh as much as the background, and 0 exactly when p_s = p_t
                 (with plain sums a soft teacher would push the student to be overconfident).
"""

from __future__ import annotations

import tensorflow as tf

from lightseg_tf.errors import LightsegError

SOFT_LOSSES = ("kl", "kl_agree", "kl_balanced", "cwd", "dist", "dice")
EPS = 1e-7


def pixel_kl(teacher_logits, student_logits, t: float):
    """KL(softmax(t/T) || softmax(s/T)) per pixel, ``[B, H, W]``."""
    log_pt = tf.nn.log_softmax(teacher_logits / t, axis=-1)
    log_ps = tf.nn.log_softmax(student_logits / t, axis=-1)
    return tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1)


def _weighted_mean(values, weights):
    return tf.reduce_sum(values * weights) / tf.maximum(tf.reduce_sum(weights), EPS)


def kl_loss(teacher_logits, student_logits, t: float, mask=None):
    """``T^2 * mean over pixels of KL(p_t || p_s)``; a scalar."""
    return t * t * tf.reduce_mean(pixel_kl(teacher_logits, student_logits, t))


def kl_agree_loss(teacher_logits, student_logits, t: float, mask):
    """``T^2 * KL`` averaged over the pixels where ``argmax(teacher) == mask``; 0 when there are none."""
    agree = tf.cast(tf.equal(tf.argmax(teacher_logits, -1, output_type=tf.int32), tf.cast(mask, tf.int32)),
                    tf.float32)
    return t * t * _weighted_mean(pixel_kl(teacher_logits, student_logits, t), agree)


def kl_balanced_loss(teacher_logits, student_logits, t: float, mask):
    """``T^2 * KL`` with pixel weights ``1 / count(label class in batch)``: each present class weighs alike."""
    c = tf.shape(student_logits)[-1]
    onehot = tf.one_hot(tf.cast(mask, tf.int32), c, dtype=tf.float32)  # [B, H, W, C]
    counts = tf.reduce_sum(onehot, axis=[0, 1, 2])  # [C]
    weights = tf.reduce_sum(onehot / tf.maximum(counts, 1.0), axis=-1)  # [B, H, W]
    return t * t * _weighted_mean(pixel_kl(teacher_logits, student_logits, t), weights)


def channel_log_distributions(logits, t: float):
    """Each class map softmax-normalised over its image's pixels: log-probabilities ``[B, C, H*W]``.

    With the teachers' log-probabilities as logits, ``T > 1`` spreads a small class's map over
    the whole image: ``p^(1/T)`` lifts the thousands of background pixels where p is 1e-3 toward
    the few where it is 1 (on the phantom's CSP, 60 % of the target's mass lies on CSP pixels at
    T = 1, 10 % at T = 2, 1 % at T = 4: ``experiments/cwd_target_mass.py``).
    """
    shape = tf.shape(logits)
    b, c = shape[0], shape[-1]
    return tf.nn.log_softmax(tf.transpose(tf.reshape(logits / t, [b, -1, c]), [0, 2, 1]), -1)


def cwd_loss(teacher_logits, student_logits, t: float, mask=None):
    """Channel-wise distillation: ``T^2 / C * sum_c KL(spatial softmax of t_c || of s_c)``, batch mean."""
    log_pt = channel_log_distributions(teacher_logits, t)
    log_ps = channel_log_distributions(student_logits, t)
    kl = tf.reduce_sum(tf.exp(log_pt) * (log_pt - log_ps), axis=-1)  # [B, C]
    return t * t * tf.reduce_mean(kl)


def _pearson_distance(x, y, axis: int):
    """``1 - Pearson correlation`` of ``x`` and ``y`` along ``axis``, averaged over the rest."""
    xc = x - tf.reduce_mean(x, axis=axis, keepdims=True)
    yc = y - tf.reduce_mean(y, axis=axis, keepdims=True)
    corr = tf.reduce_sum(xc * yc, axis) / (tf.norm(xc, axis=axis) * tf.norm(yc, axis=axis) + EPS)
    return 1.0 - tf.reduce_mean(corr)


def dist_loss(teacher_logits, student_logits, t: float, mask=None):
    """DIST: ``T^2 * (inter-class + intra-class)`` Pearson distances of the softened probabilities."""
    c = tf.shape(student_logits)[-1]
    pt = tf.reshape(tf.nn.softmax(teacher_logits / t, -1), [-1, c])  # [N, C] pixels x classes
    ps = tf.reshape(tf.nn.softmax(student_logits / t, -1), [-1, c])
    return t * t * (_pearson_distance(ps, pt, axis=1) + _pearson_distance(ps, pt, axis=0))


def dice_loss(teacher_logits, student_logits, t: float = 1.0, mask=None):
    """Soft Dice distance between the student's and the teacher's probabilities over the batch (T ignored)."""
    c = tf.shape(student_logits)[-1]
    pt = tf.reshape(tf.nn.softmax(teacher_logits, -1), [-1, c])
    ps = tf.reshape(tf.nn.softmax(student_logits, -1), [-1, c])
    inter = tf.reduce_sum(ps * pt, axis=0)
    norms = tf.reduce_sum(tf.square(ps), 0) + tf.reduce_sum(tf.square(pt), 0)
    return 1.0 - tf.reduce_mean((2.0 * inter + EPS) / (norms + EPS))


_LOSSES = {"kl": kl_loss, "kl_agree": kl_agree_loss, "kl_balanced": kl_balanced_loss, "cwd": cwd_loss,
           "dist": dist_loss, "dice": dice_loss}


def soft_loss(name: str, teacher_logits, student_logits, temperature: float, mask):
    """The soft term ``name`` (one of :data:`SOFT_LOSSES`) of one batch; a float32 scalar.

    Args:
        name: which term (see the module docstring).
        teacher_logits, student_logits: ``[B, H, W, C]``.
        temperature: T > 0.
        mask: int ``[B, H, W]`` labels (used by ``kl_agree`` and ``kl_balanced``).
    """
    if name not in _LOSSES:
        raise LightsegError(f"unknown distill.soft_loss {name!r}; choose from {list(SOFT_LOSSES)}")
    return _LOSSES[name](tf.cast(teacher_logits, tf.float32), tf.cast(student_logits, tf.float32),
                         float(temperature), mask)
