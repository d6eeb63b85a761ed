"""Loading trained models: a run directory's best model, a ``.keras`` file or a QAT ``.h5``."""

from __future__ import annotations

from pathlib import Path

import tf_keras as keras

import lightseg_tf.objectives.losses  # noqa: F401  (registers the custom losses for loading)
import lightseg_tf.objectives.metrics  # noqa: F401  (and the custom metrics)
from lightseg_tf.errors import LightsegError
from lightseg_tf.models import list_models
from lightseg_tf.models.qat import qat_scope
from lightseg_tf.runs import BEST_MODEL


def model_path(path: str | Path) -> Path:
    """The model file a path means: a run directory's best model (``best.keras``, or ``best.h5`` for
    a run that trained a QAT student), else the path itself."""
    path = Path(path)
    if path.is_dir():
        qat_best = path / "best.h5"  # a run that trained a QAT student holds .h5 models
        return qat_best if qat_best.exists() and not (path / BEST_MODEL).exists() else path / BEST_MODEL
    return path


def load_trained_model(path: str | Path) -> keras.Model:
    """Load a run directory's best model, or a ``.keras`` / ``.h5`` model file."""
    list_models()  # imports every architecture module so its custom layers are registered
    path = model_path(path)
    if not path.is_file():
        raise LightsegError(f"{path}: no such model file; pass a run directory or a .keras file")
    if path.suffix == ".h5":  # QAT models only survive .h5
        return load_qat_model(path)
    try:
        return keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, TypeError) as exc:
        raise LightsegError(f"{path}: cannot load as a Keras model ({exc}); is it the right file?") from None


def load_qat_model(path: str | Path) -> keras.Model:
    """Load a QAT model saved as .h5 (or SavedModel) inside :func:`qat_scope`."""
    list_models()  # registers the custom layers
    path = Path(path)
    if not path.exists():
        raise LightsegError(f"{path}: no such QAT model file")
    with qat_scope():
        try:
            return keras.models.load_model(str(path), compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise LightsegError(f"{path}: cannot load as a QAT model ({exc})") from None
