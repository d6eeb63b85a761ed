"""Quantization-aware training (tensorflow-model-optimization) for this project's models.

QAT models are Keras models wrapped in tfmot's QuantizeWrappers; they save to ``.h5`` and load
only inside :func:`qat_scope` (they do not survive the ``.keras`` format).
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from lightseg_tf.errors import LightsegError
from lightseg_tf.models.quantize_configs import annotate_for_qat, custom_objects, use_global_ranges


def quantize_for_qat(model: keras.Model, calibration: np.ndarray | None = None) -> keras.Model:
    """A QAT copy of ``model`` (same weights): tfmot's default 8-bit scheme, with
    :class:`~lightseg_tf.models.quantize_configs.OutputQuantizeConfig` on the layers it rejects
    and activation ranges over the global batch under ``tf.distribute``
    (:func:`~lightseg_tf.models.quantize_configs.use_global_ranges`).

    Args:
        model: the float model.
        calibration: letterboxed TRAIN images ``[N, S, S, 1]``; when given, every activation
            fake-quant range starts at the range its tensor takes on them
            (:func:`calibrate_qat_ranges`), as PTQ would set it. Without them tfmot starts every
            range at [-6, 6], and its moving averages (decay 0.999) barely move in a short
            fine-tune.

    Raises:
        LightsegError: a layer that neither tfmot nor this project's configs can quantize.
    """
    try:
        qat = tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError):  # Multiply, GELU, custom layers, ...: annotate them ourselves
        with qat_scope():
            try:
                qat = tfmot.quantization.keras.quantize_apply(annotate_for_qat(model))
            except (ValueError, RuntimeError) as exc:
                raise LightsegError(f"model {model.name!r} cannot be prepared for QAT: {exc}") from None
    use_global_ranges(qat)  # a mirrored step sees the global batch's ranges, as one device does
    if calibration is not None:
        calibrate_qat_ranges(qat, model, calibration)
    return qat


# Scalar range variables of tfmot's activation quantizers, by the suffix of their name.
_RANGE_VARS = {"output_min": 0, "output_max": 1, "post_activation_min": 0, "post_activation_max": 1}


def calibrate_qat_ranges(qat: keras.Model, model: keras.Model, images: np.ndarray, batch_size: int = 8) -> int:
    """Set a QAT model's activation ranges to the min/max of the float model's tensors on ``images``.

    A wrapped layer's output (or post-activation) range is that of the float layer of the same
    name; the input QuantizeLayer's range is that of the images. Weight ranges are left alone
    (tfmot recomputes them from the weights at every step).

    Args:
        qat: the model from tfmot's ``quantize_apply`` / ``quantize_model`` of ``model``.
        model: the float model, single input.
        images: ``[N, S, S, 1]`` float32, as the model is fed.

    Returns:
        The number of ranges set.
    """
    targets = []  # (float layer name or None for the model input, variable, 0 = min / 1 = max)
    for layer in qat.layers:
        inner = getattr(layer, "layer", None)
        for var in layer.weights:
            short = var.name.split("/")[-1].split(":")[0]
            if inner is not None and short in _RANGE_VARS:
                targets.append((inner.name, var, _RANGE_VARS[short]))
            elif inner is None and short in (f"{layer.name}_min", f"{layer.name}_max"):
                targets.append((None, var, int(short.endswith("_max"))))
    names = sorted({n for n, _, _ in targets if n is not None})
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    lo = {n: np.inf for n in [None, *names]}
    hi = {n: -np.inf for n in [None, *names]}
    for start in range(0, len(images), batch_size):
        batch = np.asarray(images[start:start + batch_size], np.float32)
        outputs = probe(batch, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for n, out in zip([None, *names], [batch, *outputs]):
            out = np.asarray(out)
            lo[n], hi[n] = min(lo[n], float(out.min())), max(hi[n], float(out.max()))
    for n, var, which in targets:
        a, b = min(lo[n], 0.0), max(hi[n], 0.0)  # int8 ranges hold zero exactly
        b = b if b > a else a + 1e-3
        var.assign((a, b)[which])
    return len(targets)


@contextlib.contextmanager
def qat_scope():
    """``tfmot.quantization.keras.quantize_scope`` with this project's custom objects (yields the
    scope; its ``custom_objects`` are the dicts of classes it offers)."""
    with tfmot.quantization.keras.quantize_scope(custom_objects()) as scope:
        yield scope
