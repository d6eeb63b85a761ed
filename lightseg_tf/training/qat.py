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
from lightseg_tf.training.distribute import configure_runtime, release_run_dir, sync_batchnorm, writable_run_dir


def qat_finetune(run: str | Path, epochs: int = 2, learning_rate: float = 2e-4, out_name: str = "qat.h5") -> Path:
    """Quantization-aware fine-tuning of a run's best model on its own TRAIN split.

    The run's loss, pipeline, split and ``train.strategy`` are reused; the fake-quantized graph
    is float32 whatever precision the run trained in (its model is rebuilt in float32 on load).
    The best QAT model on validation mean foreground Dice is saved as ``RUN/out_name`` (.h5,
    load with :func:`load_qat_model`), by the chief alone in a cluster.

    Returns:
        The saved model's path.
    """
    rd = open_run(run)
    strategy = configure_runtime(rd.cfg.train, precision="float32")
    target = rd.run_dir / out_name
    out = writable_run_dir(rd.run_dir, strategy)
    try:
        with strategy.scope():
            model = load_trained_model(rd.run_dir)
            qat = quantize_for_qat(model, calibration=letterboxed_sample(rd.part("train"), int(model.input_shape[1])))
            sync_batchnorm(qat, strategy)
            qat.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=build_loss(rd.cfg.loss),
                        metrics=[MeanForegroundDice(rd.dataset.num_classes)])
        splits = build_datasets(rd.dataset, rd.split, rd.cfg.data, seed=rd.cfg.train.seed)
        partial = out / f".{target.stem}.partial.h5"
        try:
            qat.fit(splits.train, validation_data=splits.val, epochs=epochs, verbose=rd.cfg.train.verbose,
                    callbacks=[keras.callbacks.ModelCheckpoint(str(partial), monitor=MONITOR, mode="max",
                                                               save_best_only=True),
                               keras.callbacks.CSVLogger(str(out / "qat_history.csv"))])
            if out == rd.run_dir:
                partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)
    finally:
        release_run_dir(out, rd.run_dir)
    return target
