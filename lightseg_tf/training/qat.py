"""Quantization-aware fine-tuning of a trained run (the QAT stage of the chain, ``lightseg quantize``)."""

from __future__ import annotations

from pathlib import Path

import tf_keras as keras

from lightseg_tf.data.tfdata import build_datasets, letterboxed_sample
from lightseg_tf.models.qat import quantize_for_qat
from lightseg_tf.models.saving import load_trained_model
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.objectives.metrics import MeanForegroundDice
from lightseg_tf.runs import MONITOR, open_run


def qat_finetune(run: str | Path, epochs: int = 2, learning_rate: float = 2e-4, out_name: str = "qat.h5") -> Path:
    """Quantization-aware fine-tuning of a run's best model on its own TRAIN split.

    The run's loss, pipeline and split are reused; the best QAT model on validation mean
    foreground Dice is saved as ``RUN/out_name`` (.h5, load with :func:`load_qat_model`).

    Returns:
        The saved model's path.
    """
    rd = open_run(run)
    target = rd.run_dir / out_name
    model = load_trained_model(rd.run_dir)
    qat = quantize_for_qat(model, calibration=letterboxed_sample(rd.part("train"), int(model.input_shape[1])))
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
