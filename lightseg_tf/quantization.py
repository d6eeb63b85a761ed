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


def qat_finetune(run: str | Path, epochs: int = 2, learning_rate: float = 2e-4, out_name: str = "qat.h5") -> Path:
    """Quantization-aware fine-tuning of a run's best model on its own TRAIN split.

    The run's loss, pipeline and split are reused; the best QAT model on validation mean
    foreground Dice is saved as ``RUN/out_name`` (.h5, load with :func:`load_qat_model`).

    Returns:
        The saved model's path.
    """
    from lightseg_tf.data.pipeline import build_datasets
    from lightseg_tf.losses import build_loss
    from lightseg_tf.metrics import MeanForegroundDice
    from lightseg_tf.training import MONITOR, load_trained_model, open_run

    rd = open_run(run)
    target = rd.run_dir / out_name
    qat = quantize_for_qat(load_trained_model(rd.run_dir))
    splits = build_datasets(rd.dataset, rd.split, rd.cfg.data, seed=rd.cfg.train.seed)
    qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=build_loss(rd.cfg.loss),
                metrics=[MeanForegroundDice(rd.dataset.num_classes)])
    partial = target.with_name(f".{target.stem}.partial.h5")
    try:
        qat.fit(splits.train, validation_data=splits.val, epochs=epochs, verbose=rd.cfg.train.verbose,
                callbacks=[keras.callbacks.ModelCheckpoint(str(partial), monitor=MONITOR, mode="max",
                                                           save_best_only=True),
                           keras.callbacks.CSVLogger(str(rd.run_dir / "qat_history.csv"))])
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target
