"""Mirroring test-time augmentation: which views each mode averages (no TensorFlow here, so the
command line can offer the modes without loading it).

Used by :func:`lightseg_tf.models.predictor.predict_probs` (Keras models) and by the TFLite export,
which builds the same views into the graph (:func:`lightseg_tf.deploy.convert.convert`).
"""

from __future__ import annotations

from lightseg_tf.errors import LightsegError

# Test-time augmentation by mirroring, as nnU-Net does (Isensee et al., "nnU-Net: a
# self-configuring method for deep learning-based biomedical image segmentation", Nature Methods
# 2021): the model sees each mirrored view, and its answers, flipped back, are averaged (the
# logits: lightseg_tf.models.predictor.mean_view_logits says why). Each mode lists its views as
# the NHWC axes to reverse (() = the image itself). "flips" needs a model trained with
# vertical flips too (data.augment.vflip), else its two upside-down views are out of distribution.
TTA_VIEWS = {"hflip": ((), (2,)), "flips": ((), (2,), (1,), (1, 2))}
TTA_MODES = (None, "", "none", *TTA_VIEWS)
TTA_CHOICES = ("none", *TTA_VIEWS)  # the command line's --tta
TTA_HELP = ("test-time augmentation: hflip averages the image and its mirror; flips adds the two vertical "
            "mirrors (for models trained with data.augment.vflip)")


def tta_mode(tta: str | None) -> str:
    """The TTA mode's one spelling: "none" for None, "" or "none", else the mode itself (what
    cards, calibrations, caches and file names record, and what they are compared by).

    Raises:
        LightsegError: an unknown mode.
    """
    if tta not in TTA_MODES:
        raise LightsegError(f"unknown test-time augmentation {tta!r}; use one of none, {', '.join(TTA_VIEWS)}")
    return tta or "none"


def tta_views(tta: str | None) -> tuple[tuple[int, ...], ...]:
    """The mirrored views of TTA mode ``tta`` (NHWC axes to reverse; ``((),)`` without TTA).

    Raises:
        LightsegError: an unknown mode.
    """
    return TTA_VIEWS.get(tta_mode(tta), ((),))
