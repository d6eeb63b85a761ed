"""The TFLite converter set up once for every export: quantization modes and int8 calibration.

:func:`convert_function` turns a serving ``tf.function`` (one image input in [0, 1], named
outputs) into a flatbuffer. The project's export (:mod:`lightseg_tf.deploy.convert`, gray
``[1, S, S, 1]`` in, class map and probabilities out) and the MediaPipe variant
(:mod:`lightseg_tf.deploy.mediapipe`, RGB ``[1, S, S, 3]`` in, probabilities out) both go
through it, so their calibration and quantized tensors agree.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from lightseg_tf.core.log import progress
from lightseg_tf.errors import LightsegError

QUANT_MODES = ("int8", "float16", "dynamic", "float32")


def calibration_images(representative: Iterable[np.ndarray] | None, size: int, channels: int = 1) -> list[np.ndarray]:
    """int8 calibration batches ``[1, S, S, channels]`` from gray images ``[S, S, 1]`` in [0, 1].

    A gray image is repeated over ``channels``. The first batch is a copy of the first image
    with a 0 and a 1 pixel, which pins the input's range to exactly [0, 1], so the uint8
    input is the raw pixel value (scale 1/255, zero point 0).
    """
    images = [np.repeat(np.asarray(x, np.float32).reshape(1, size, size, 1), channels, axis=-1)
              for x in (representative or [])]
    if not images:
        raise LightsegError("int8 export needs representative TRAIN images for calibration")
    anchor = images[0].copy()
    anchor[0, 0, 0, :], anchor[0, 0, 1, :] = 0.0, 1.0
    return [anchor, *images]


def convert_function(serve, model, quant: str = "int8", representative: Iterable[np.ndarray] | None = None, *,
                     channels: int = 1, float_output: bool = False) -> bytes:
    """Convert a serving ``tf.function`` of ``model`` to a TFLite flatbuffer.

    Args:
        serve: ``tf.function`` with one input signature ``image [1, S, S, channels]``; for int8 it
            must take float32 in [0, 1] (the converter makes the input uint8, scale 1/255).
        model: the Keras model ``serve`` calls (its variables are the weights).
        quant: "int8" (full integer: int8 inside, uint8 image in, no float fallback), "float16"
            (float16 weights), "dynamic" (int8 weights, float activations) or "float32".
        representative: letterboxed gray float32 images ``[S, S, 1]`` in [0, 1] from the TRAIN
            split, required for int8 calibration (a QAT model uses its learned ranges instead).
        channels: the input's channels; gray calibration images are repeated to match.
        float_output: int8 only: float32 outputs (dequantized) instead of uint8.

    Returns:
        The .tflite bytes.
    """
    import tensorflow as tf

    if quant not in QUANT_MODES:
        raise LightsegError(f"unknown quantization {quant!r}; choose one of {list(QUANT_MODES)}")
    # The converter first saves its trackable as a SavedModel. Given the Keras model, that traces
    # every layer's call for Keras' own metadata (int8: the demo's student 9.0 s vs 2.7 s this
    # way, its QAT twin 25.3 s vs 4.9 s, experiments/bench_loading.py); a bare module that holds
    # the variables saves the same graph and weights, and the .tflite bytes come out identical.
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], holder)
    if quant == "float16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif quant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif quant == "int8":
        batches = calibration_images(representative, int(model.input_shape[1]), channels)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in progress(batches, "int8 calibration"))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.uint8
        conv.inference_output_type = tf.float32 if float_output else tf.uint8
    try:
        return conv.convert()
    except Exception as exc:  # the converter raises many types; name the model and mode
        raise LightsegError(f"TFLite conversion ({quant}) of model {model.name!r} failed: {exc}") from None
