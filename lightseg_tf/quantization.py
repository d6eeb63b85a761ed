"""Quantization-aware training (tensorflow-model-optimization) for this project's models.

QAT models are Keras models wrapped in tfmot's QuantizeWrappers; they save to ``.h5`` and load
only inside :func:`qat_scope` (they do not survive the ``.keras`` format).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import tensorflow_model_optimization as tfmot
import tf_keras as keras

from lightseg_tf.errors import LightsegError
from lightseg_tf.models.quantize_configs import annotate_for_qat, custom_objects


def quantize_for_qat(model: keras.Model) -> keras.Model:
    """A QAT copy of ``model`` (same weights): tfmot's default 8-bit scheme, with
    :class:`~lightseg_tf.models.quantize_configs.OutputQuantizeConfig` on the layers it rejects.

    Raises:
        LightsegError: a layer that neither tfmot nor this project's configs can quantize.
    """
    try:
        return tfmot.quantization.keras.quantize_model(model)
    except (ValueError, RuntimeError):
        pass  # Multiply, GELU, custom layers, ...: annotate them ourselves
    with qat_scope():
        try:
            return tfmot.quantization.keras.quantize_apply(annotate_for_qat(model))
        except (ValueError, RuntimeError) as exc:
            raise LightsegError(f"model {model.name!r} cannot be prepared for QAT: {exc}") from None


@contextlib.contextmanager
def qat_scope():
    """``tfmot.quantization.keras.quantize_scope`` with this project's custom objects."""
    with tfmot.quantization.keras.quantize_scope(custom_objects()):
        yield


def load_qat_model(path: str | Path) -> keras.Model:
    """Load a QAT model saved as .h5 (or SavedModel) inside :func:`qat_scope`."""
    from lightseg_tf.models import list_models

    list_models()  # registers the custom layers
    path = Path(path)
    if not path.exists():
        raise LightsegError(f"{path}: no such QAT model file")
    with qat_scope():
        try:
            return keras.models.load_model(str(path), compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise LightsegError(f"{path}: cannot load as a QAT model ({exc})") from None
