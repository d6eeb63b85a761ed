"""The training engine: ``train(cfg)`` fits a registered model on the shared pipeline.

Keras' own engine does the work (``Model.fit`` with a compiled, traced train step); this module
chooses the distribution strategy, precision, optimiser and schedule, and wires the callbacks:
best checkpoint on validation mean foreground Dice, BackupAndRestore (a killed run resumes
where it stopped), early stopping, TerminateOnNaN, CSV/JSON history, TensorBoard, curves PNG.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import Config, TrainConfig
from lightseg_tf.core.io import atomic_path, write_json_atomic
from lightseg_tf.core.log import LOG
from lightseg_tf.data.split import split_for
from lightseg_tf.data.tfdata import build_datasets
from lightseg_tf.errors import LightsegError
from lightseg_tf.models import build_model
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.objectives.metrics import MeanForegroundDice
from lightseg_tf.runs import (BEST_MODEL, FINAL_MODEL, MONITOR, best_so_far, open_run_dir, read_history, resolve_dataset,
                              save_model_atomic)


@dataclass
class TrainResult:
    run_dir: Path
    best_model: Path
    history: dict
    epochs_run: int


def configure_runtime(cfg: TrainConfig) -> tf.distribute.Strategy:
    """Seeds, determinism, mixed precision and the distribution strategy."""
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    gpus = tf.config.list_physical_devices("GPU")
    use_mp = cfg.mixed_precision == "on" or (cfg.mixed_precision == "auto" and bool(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mp else "float32")
    if cfg.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if cfg.strategy == "multi_worker":
        # Reads the cluster from the TF_CONFIG environment variable.
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """AdamW / Adam / SGD with a constant or cosine learning rate (plateau is a callback)."""
    lr = cfg.learning_rate
    if cfg.schedule == "cosine":
        lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, max(1, cfg.epochs * steps_per_epoch))
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(learning_rate=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=lr)
    return keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True)


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer (nested models too).

    Returns:
        The number of layers changed.
    """
    changed = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum
            changed += 1
    return changed


def recalibrate_bn(model: keras.Model, images: np.ndarray, batch_size: int = 64) -> None:
    """Reset every BatchNormalization's moving statistics to those of ``images`` (no weight change).

    After a short, fast-moving fit the moving averages can lag the weights (a model right in
    training mode but blank in inference mode); one pass over un-augmented training images with
    a cumulative average fixes that (the "BN recalibration" of quantization and NAS papers).
    """
    bns = [m for m in model.submodules if isinstance(m, keras.layers.BatchNormalization)]
    saved = [bn.momentum for bn in bns]
    for k, start in enumerate(range(0, len(images), batch_size)):
        for bn in bns:  # cumulative mean over batches: momentum k / (k + 1)
            bn.momentum = k / (k + 1)
        model(images[start:start + batch_size], training=True)
    for bn, m in zip(bns, saved):
        bn.momentum = m


def plot_curves(history: dict, out: Path) -> None:
    """Loss and mean foreground Dice, train vs val, as one PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e + 1 for e in history.get("epoch", [])]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "loss", "loss"), (axes[1], "mean_fg_dice", "mean foreground Dice")):
        for prefix, style in (("", "-"), ("val_", "--")):
            if prefix + key in history:
                ax.plot(epochs, history[prefix + key], style, marker="o", ms=3,
                        label="val" if prefix else "train")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


class _FlushLog(keras.callbacks.Callback):
    """One log line per epoch into the run's log file."""

    def on_epoch_end(self, epoch, logs=None):
        LOG.debug("epoch %d: %s", epoch + 1, " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()))


def train(cfg: Config, run_dir: str | Path | None = None, extra_callbacks=(), overwrite: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` with ``cfg.loss`` and ``cfg.train``.

    Rerunning with the same config and run directory resumes from the last completed
    epoch (BackupAndRestore). A finished run is not retrained unless ``overwrite``.

    Returns:
        The run directory, the best checkpoint's path, the history and the epochs run.
    """
    run = open_run_dir(cfg, run_dir)
    best_path, final_path = run / BEST_MODEL, run / FINAL_MODEL
    history_csv = run / "history.csv"
    if final_path.exists() and not overwrite:
        LOG.info("%s: run already finished; reusing it", run)
        hist = read_history(history_csv)
        return TrainResult(run, best_path, hist, len(hist.get("epoch", [])))
    strategy = configure_runtime(cfg.train)
    dataset = resolve_dataset(cfg.data, run)
    split = split_for(dataset, cfg.data.split_file, cfg.data.val_fraction, cfg.data.test_fraction,
                      cfg.data.split_seed, write_to=run / "split.json")
    splits = build_datasets(dataset, split, cfg.data, seed=cfg.train.seed)
    n_train = len(splits.datasets["train"])
    steps = math.ceil(n_train / cfg.data.batch_size)
    LOG.info("data: %s (%s), train %d / val %d / test %d images, classes %s", dataset.root, dataset.format,
             n_train, len(splits.datasets["val"]), len(splits.datasets.get("test", [])), list(dataset.classes))

    with strategy.scope():
        model = build_model(cfg.model.name, (cfg.data.image_size, cfg.data.image_size, 1),
                            dataset.num_classes, **cfg.model.options)
        if cfg.train.bn_momentum is not None:
            set_bn_momentum(model, cfg.train.bn_momentum)
        model.compile(
            optimizer=make_optimizer(cfg.train, steps),
            loss=build_loss(cfg.loss),
            metrics=[MeanForegroundDice(dataset.num_classes)],
            jit_compile=cfg.train.jit_compile,
        )
    LOG.info("model %s: %s parameters", cfg.model.name, f"{model.count_params():,}")
    hist = fit_run(run, model, model, splits, cfg.train, extra_callbacks)
    return TrainResult(run, best_path, hist, len(hist.get("epoch", [])))


class SaveBest(keras.callbacks.Callback):
    """Save ``target(model)`` atomically whenever ``monitor`` improves (max).

    Unlike ModelCheckpoint it can save a part of the fitted model (the student inside a
    Distiller) and never leaves a half-written file.
    """

    def __init__(self, path: Path, monitor: str = MONITOR, initial: float | None = None, target=None):
        super().__init__()
        self.path, self.monitor = Path(path), monitor
        self.best = -math.inf if initial is None else initial
        self.target = target or (lambda m: m)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            LOG.debug("epoch %d: %s improved %.4f -> %.4f; saving %s", epoch + 1, self.monitor, self.best, value,
                      self.path)
            self.best = float(value)
            save_model_atomic(self.target(self.model), self.path)


def fit_run(run: Path, fit_model: keras.Model, saved_model: keras.Model, splits, cfg: TrainConfig,
            extra_callbacks=(), suffix: str = ".keras") -> dict:
    """Fit ``fit_model`` with the run's callbacks; ``saved_model`` is what the checkpoints hold.

    They differ for distillation (fit the Distiller, save its student). Writes ``best`` and
    ``final`` models (``suffix`` ".h5" for QAT models, which do not survive .keras), CSV/JSON
    history, TensorBoard logs and curves into ``run``.

    Returns:
        The history ``{column: [per-epoch values]}``.
    """
    best_path, final_path, history_csv = run / f"best{suffix}", run / f"final{suffix}", run / "history.csv"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run / "backup"), save_freq="epoch", delete_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        SaveBest(best_path, MONITOR, best_so_far(history_csv), target=lambda _: saved_model),
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        keras.callbacks.TensorBoard(str(run / "tensorboard"), write_graph=False, profile_batch=0),
        _FlushLog(),
    ]
    if cfg.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.5, patience=3))
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                       patience=cfg.early_stopping_patience))
    callbacks.extend(extra_callbacks)

    fit_model.fit(splits.train, validation_data=splits.val, epochs=cfg.epochs, callbacks=callbacks,
                  verbose=cfg.verbose)

    shutil.rmtree(run / "backup", ignore_errors=True)  # the run finished; nothing to resume
    hist = read_history(history_csv)
    if not best_path.exists():
        raise LightsegError(f"{run}: training produced no checkpoint (diverged?); see {run / 'log.txt'}")
    write_json_atomic(run / "history.json", hist)
    plot_curves(hist, run / "curves.png")
    save_model_atomic(saved_model, final_path)
    LOG.info("best %s = %.4f; run directory %s", MONITOR, max(hist.get(MONITOR, [float("nan")])), run)
    return hist


