"""One interface for every way to run a segmentation model: a Keras model here, a TFLite file in
:mod:`lightseg_tf.deploy.runtime`.

A :class:`Predictor` knows its square input side (the one source of truth for image size after
training: the model's own input), its class names when known, and maps letterboxed images
``[N, S, S, 1]`` to class probabilities ``[N, S, S, C]``; :meth:`Predictor.predict_image` does the
letterbox round trip for one image at its original size.
"""

from __future__ import annotations

import weakref
from typing import Sequence

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.data.letterbox import letterbox_image, unletterbox_probs
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.tta import tta_views

def predict_probs(model: keras.Model, images: np.ndarray, batch_size: int = 8, tta: str | None = None) -> np.ndarray:
    """Softmax probabilities ``[N, S, S, C]`` of letterboxed images ``[N, S, S, 1]``.

    ``tta`` ("hflip", "flips"; :data:`~lightseg_tf.models.tta.TTA_VIEWS`): the softmax of the mean
    of the mirrored views' logits, each flipped back (:func:`mean_view_logits`).
    """
    views = tta_views(tta)
    images = np.asarray(images, np.float32)
    if len(images) == 0:
        return np.zeros((0, *model.output_shape[1:]), np.float32)
    forward = _FORWARD.get(model)
    if forward is None:
        ref = weakref.ref(model)  # a strong reference here would keep every model ever used alive
        forward = _FORWARD[model] = tf.function(
            lambda x, views: tf.nn.softmax(mean_view_logits(ref(), x, views), axis=-1), reduce_retracing=True)
    return np.concatenate([forward(tf.constant(images[i:i + batch_size]), views).numpy()
                           for i in range(0, len(images), batch_size)])


def mean_view_logits(model: keras.Model, images: tf.Tensor, views: tuple[tuple[int, ...], ...]) -> tf.Tensor:
    """The mean over mirrored ``views`` (:func:`~lightseg_tf.models.tta.tta_views`) of the model's
    float32 logits ``[N, S, S, C]``, each view flipped back; the plain logits for one view.

    The logits are averaged, not the probabilities: the softmax of the mean (a normalised
    geometric mean of the views' probabilities) keeps the TFLite graph's int8 SOFTMAX, whose
    output has the fixed scale 1/256 every runtime expects, and its ARG_MAX on int8 logits. The
    TFLite export builds this same function into the graph.
    """
    if len(views) == 1:
        return tf.cast(model(images, training=False), tf.float32)
    batch = tf.concat([tf.reverse(images, axes) if axes else images for axes in views], axis=0)
    logits = tf.cast(model(batch, training=False), tf.float32)
    n = tf.shape(images)[0]
    total = None
    for i, axes in enumerate(views):
        view = logits[i * n:(i + 1) * n]
        view = tf.reverse(view, axes) if axes else view
        total = view if total is None else total + view  # pairwise ADD: TFLite has no int8 ADD_N
    return total * (1.0 / len(views))


# One traced forward pass per model, kept while the model lives: ``model.predict`` builds a new
# tf.data pipeline on every call, which cost more than the network itself on the clinic stage's
# many small batches (the robustness table: 18 images per call; the demo's half-width student
# 190 ms per call through predict vs 153 ms through this, its U-Net teacher 137 vs 101 ms,
# experiments/bench_loading.py in docs/BENCHMARKS.md).
_FORWARD: "weakref.WeakKeyDictionary[keras.Model, tf.types.experimental.GenericFunction]" = weakref.WeakKeyDictionary()


class Predictor:
    """A segmentation model behind one interface; subclasses implement :meth:`predict_probs`.

    Attributes:
        size: the square input side S the model was built (or exported) for.
        num_classes: C, the model's output channels (default: the number of ``classes``; None
            when neither is known, and then nothing checks it).
        classes: class names, index = class id, when the model's origin says them (else None).
        name: a short label for tables and logs.
        source: the file or run directory it was loaded from (for messages), else ``name``.
        calibration: the model's calibrated confidence ``{score, threshold, calibrated_on}`` (from
            its card or its run's ``confidence.json``; :mod:`lightseg_tf.anatomy.confidence`), or
            None when uncalibrated.
    """

    calibration: dict | None = None

    def __init__(self, size: int, classes: Sequence[str] | None = None, name: str = "model", *,
                 num_classes: int | None = None, source: str | None = None):
        self.size = int(size)
        self.classes = tuple(classes) if classes is not None else None
        self.num_classes = int(num_classes) if num_classes is not None else (
            len(self.classes) if self.classes is not None else None)
        self.name, self.source = name, str(source or name)
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise LightsegError(f"{self.source}: the model outputs {self.num_classes} classes but its data names "
                                f"{len(self.classes)} ({', '.join(self.classes)}); it belongs to another dataset")

    def check_classes(self, classes: Sequence[str], data: str) -> None:
        """Raise LightsegError unless the model's outputs are ``classes`` (those of ``data``)."""
        if self.num_classes is not None and len(classes) != self.num_classes:
            raise LightsegError(
                f"{self.source}: the model outputs {self.num_classes} classes"
                + (f" ({', '.join(self.classes)})" if self.classes else "")
                + f" but {data} has {len(classes)} ({', '.join(classes)}); use a model trained on these classes")

    def predict_probs(self, images: np.ndarray) -> np.ndarray:
        """Probabilities ``[N, S, S, C]`` of letterboxed float32 images ``[N, S, S, 1]`` in [0, 1]."""
        raise NotImplementedError

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Probabilities ``[H, W, C]`` of one image ``[H, W, 1]`` at its ORIGINAL size."""
        boxed, lb = letterbox_image(image, self.size)
        return unletterbox_probs(self.predict_probs(boxed[None])[0], lb)

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Class map ``[H, W]`` int32 of one image at its ORIGINAL size."""
        return self.predict_image(image).argmax(-1).astype(np.int32)


class KerasPredictor(Predictor):
    """A Keras segmentation model (logits out), optionally with mirroring TTA
    (:data:`~lightseg_tf.models.tta.TTA_VIEWS`)."""

    def __init__(self, model: keras.Model, classes: Sequence[str] | None = None, tta: str | None = None,
                 batch_size: int = 8, name: str | None = None, source: str | None = None):
        tta_views(tta)  # an unknown mode fails here, before any image is read
        super().__init__(int(model.input_shape[1]), classes, name or model.name,
                         num_classes=int(model.output_shape[-1]), source=source)
        if model.input_shape[-1] != 1:
            raise LightsegError(f"{self.source}: the model takes {model.input_shape[-1]}-channel images; lightseg "
                                "feeds grayscale [S, S, 1], use a model made by lightseg train")
        self.model, self.tta, self.batch_size = model, tta, batch_size

    def predict_probs(self, images: np.ndarray) -> np.ndarray:
        return predict_probs(self.model, images, self.batch_size, self.tta)
