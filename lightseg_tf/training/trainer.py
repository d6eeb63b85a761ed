"""The training engine: ``train(cfg)`` fits a registered model on the shared pipeline.

Keras' own engine does the work (``Model.fit`` with a compiled, traced train step); this module
chooses the distribution strategy, precision, optimiser and schedule, and wires the callbacks:
best checkpoint on validation mean foreground Dice, BackupAndRestore (a killed run resumes
where it stopped), early stopping, TerminateOnNaN, CSV/JSON history, TensorBoard, curves PNG.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tf_keras as keras

from lightseg_tf.config import Config, LossConfig, TrainConfig
from lightseg_tf.core.io import atomic_path, write_json_atomic
from lightseg_tf.core.log import LOG, format_duration
from lightseg_tf.data.inspect import require_valid
from lightseg_tf.data.split import SPLITS, split_for
from lightseg_tf.data.tfdata import build_datasets
from lightseg_tf.errors import LightsegError
from lightseg_tf.models import build_model
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.objectives.metrics import MeanForegroundDice
from lightseg_tf.runs import (BEST_MODEL, MONITOR, best_so_far, open_run_dir, read_history, resolve_dataset,
                              run_path, save_model_atomic)
from lightseg_tf.training.distribute import (barrier, configure_runtime, describe_runtime, is_chief, release_run_dir,
                                             sync_batchnorm, writable_run_dir)


# Train steps per call of the compiled train function on the fast path: Keras' per-step Python
# work (callbacks, logs) is paid once per 8 steps. Same updates, same epoch metrics.
FAST_STEPS_PER_EXECUTION = 8


@dataclass
class TrainResult:
    run_dir: Path
    best_model: Path
    history: dict
    epochs_run: int


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


def compile_for_training(model: keras.Model, cfg: TrainConfig, loss_cfg: LossConfig, num_classes: int,
                         steps_per_epoch: int) -> keras.Model:
    """Compile ``model`` for ``fit`` as ``lightseg train`` does: optimiser, loss, train metric, XLA.

    Args:
        model: a segmentation model emitting logits ``[B, H, W, num_classes]``.
        cfg: the optimiser, schedule and execution settings.
        loss_cfg: the loss terms.
        num_classes: C, for the mean foreground Dice metric.
        steps_per_epoch: batches per epoch (the cosine schedule's length).

    Returns:
        ``model``, compiled.
    """
    model.compile(
        optimizer=make_optimizer(cfg, steps_per_epoch),
        loss=build_loss(loss_cfg),
        metrics=[MeanForegroundDice(num_classes)],
        jit_compile=cfg.jit_compile,
        steps_per_execution=FAST_STEPS_PER_EXECUTION if cfg.fast_path else 1,
    )
    return model


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
    """One log line per epoch into the run's log file, one when a run resumes from its backup, and
    on the console how long the remaining epochs will take, once an epoch's pace is known.

    Args:
        early_stopping: the run may stop before its last epoch (the estimate says so).
    """

    def __init__(self, early_stopping: bool = False):
        super().__init__()
        self.early_stopping = early_stopping
        self.finished = 0  # epochs this process ran
        self.started = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if self.finished == 0 and epoch > 0:
            LOG.info("resuming at epoch %d from the BackupAndRestore checkpoint", epoch + 1)
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        LOG.debug("epoch %d: %s", epoch + 1, " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()))
        self.finished += 1
        epochs = self.params.get("epochs") or 0
        left = epochs - epoch - 1
        # The process's first epoch also traces the graphs: its second one shows the pace.
        if self.finished == 2 and left > 0:
            took = time.perf_counter() - self.started
            LOG.info("epoch %d/%d took %s: about %s for the %d left%s", epoch + 1, epochs, format_duration(took),
                     format_duration(took * left), left, " (less if early stopping ends the run)"
                     if self.early_stopping else "")


def finished_run(run: Path, suffix: str = ".keras") -> TrainResult | None:
    """The result of a run that already finished (``final<suffix>`` exists), else None.

    Raises:
        LightsegError: the run's history holds a non-finite loss (a run saved before the
            divergence guard existed): it must not be reused.
    """
    if not (run / f"final{suffix}").exists():
        return None
    hist = read_history(run / "history.csv")
    bad = [k for k in ("loss", "val_loss") if not all(math.isfinite(v) for v in hist.get(k, []))]
    if bad:
        raise LightsegError(f"{run}: its history holds a non-finite {bad[0]} (the run diverged); delete it or "
                            "rerun with --overwrite and a lower train.learning_rate")
    LOG.info("%s: run already finished; reusing it", run)
    return TrainResult(run, run / f"best{suffix}", hist, len(hist.get("epoch", [])))


def train(cfg: Config, run_dir: str | Path | None = None, extra_callbacks=(), overwrite: bool = False) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data`` with ``cfg.loss`` and ``cfg.train``.

    Rerunning with the same config and run directory resumes from the last completed
    epoch (BackupAndRestore). A finished run is not retrained unless ``overwrite``.

    Returns:
        The run directory, the best checkpoint's path, the history and the epochs run.
    """
    strategy = configure_runtime(cfg.train)  # first: a multi-worker strategy must precede any other op
    run = open_run_dir(cfg, run_dir) if is_chief(strategy) else run_path(cfg, run_dir)
    if not overwrite and (done := finished_run(run)) is not None:
        return done
    out = writable_run_dir(run, strategy)
    try:
        dataset = resolve_dataset(cfg.data, out)
        split = split_for(dataset, cfg.data.split_file, cfg.data.val_fraction, cfg.data.test_fraction,
                          cfg.data.split_seed, write_to=out / "split.json", test_holdout=cfg.data.test_holdout)
        # Before tf.data hides errors; the unlabelled side (no masks) is only ever distilled on.
        require_valid(dataset.subset([i for side in SPLITS for i in split[side]]))
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
            sync_batchnorm(model, strategy)
            compile_for_training(model, cfg.train, cfg.loss, dataset.num_classes, steps)
        LOG.info("model %s: %s parameters%s", cfg.model.name, f"{model.count_params():,}",
                 describe_runtime(strategy))
        hist = fit_run(out, model, model, splits, cfg.train, extra_callbacks, chief_run=run)
    finally:
        release_run_dir(out, run)
    return TrainResult(run, run / BEST_MODEL, hist, len(hist.get("epoch", [])))


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training with a one-line LightsegError when it diverges.

    Diverged means a non-finite batch loss, a non-finite epoch loss / val loss, or an epoch
    loss more than ``explode`` times the first epoch's (a learning rate far too high grows the
    loss by orders of magnitude before it turns NaN). It stops at the batch, before the
    epoch-end callbacks, so neither the backup nor the best checkpoint ever holds that state.
    """

    def __init__(self, run: Path, cfg: TrainConfig, explode: float = 1e3):
        super().__init__()
        self.run, self.cfg, self.explode, self.first = run, cfg, explode, None

    def _stop(self, epoch: int, what: str):
        raise LightsegError(
            f"{self.run}: training diverged in epoch {epoch + 1} ({what}); lower train.learning_rate "
            f"(now {self.cfg.learning_rate:g}) or use train.optimizer=adamw, then rerun under a new name "
            f"(or delete {self.run}); best.keras, if any, holds the last finite epoch")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(self.epoch, f"loss {float(loss)} at batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for key in ("loss", "val_loss"):
            value = logs.get(key)
            if value is None:
                continue
            if not math.isfinite(float(value)):
                self._stop(epoch, f"{key} {float(value)}")
            if key == "loss" and self.first is None:
                self.first = float(value)
            if self.first and float(value) > self.explode * max(self.first, 1e-3):
                self._stop(epoch, f"{key} {float(value):.3g}, over {self.explode:g}x the first epoch's "
                                  f"{self.first:.3g}")


def all_finite(model: keras.Model) -> bool:
    """Whether every weight of ``model`` is finite."""
    return all(np.isfinite(w).all() for w in model.get_weights())


class SaveBest(keras.callbacks.Callback):
    """Save ``target(model)`` atomically whenever ``monitor`` improves (max).

    Unlike ModelCheckpoint it can save a part of the fitted model (the student inside a
    Distiller) and never leaves a half-written file.
    """

    def __init__(self, path: Path, monitor: str = MONITOR, history_csv: Path | None = None, target=None):
        super().__init__()
        self.path, self.monitor, self.history_csv = Path(path), monitor, history_csv
        self.best = None
        self.target = target or (lambda m: m)

    def on_epoch_begin(self, epoch, logs=None):
        if self.best is None:  # the first epoch of this process: a resumed run competes with its past
            past = best_so_far(self.history_csv, before_epoch=epoch) if self.history_csv else None
            self.best = -math.inf if past is None else past

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and value > self.best:
            target = self.target(self.model)
            if not all_finite(target):  # a NaN model scores Dice 0, not NaN: never keep it
                raise LightsegError(f"{self.path.parent}: non-finite weights after epoch {epoch + 1}; training "
                                    "diverged (lower train.learning_rate)")
            LOG.debug("epoch %d: %s improved %.4f -> %.4f; saving %s", epoch + 1, self.monitor, self.best, value,
                      self.path)
            self.best = float(value)
            save_model_atomic(target, self.path)


def fit_run(run: Path, fit_model: keras.Model, saved_model: keras.Model, splits, cfg: TrainConfig,
            extra_callbacks=(), suffix: str = ".keras", chief_run: Path | None = None) -> dict:
    """Fit ``fit_model`` with the run's callbacks; ``saved_model`` is what the checkpoints hold.

    They differ for distillation (fit the Distiller, save its student). Writes ``best`` and
    ``final`` models (``suffix`` ".h5" for QAT models, which do not survive .keras), CSV/JSON
    history, TensorBoard logs and curves into ``run``. ``chief_run`` (default ``run``) is the
    chief's run directory, read by every worker of a cluster: its ``backup/`` is
    BackupAndRestore's, and its ``history.csv`` gives a resumed run's best score so far. Every
    worker must take the same save decisions: a save reads the metrics' SyncOnRead variables
    through collectives, and a worker saving alone waits for peers that never join.

    Returns:
        The history ``{column: [per-epoch values]}``.
    """
    best_path, final_path, history_csv = run / f"best{suffix}", run / f"final{suffix}", run / "history.csv"
    chief_run = chief_run or run
    backup_dir = chief_run / "backup"
    for stale in run.glob(".*.partial.*"):  # a save that a kill interrupted (save_model_atomic's temp)
        stale.unlink()
    # Epoch-end order survives a kill at any moment: the history row first, then the best model,
    # the backup last. A kill before the backup makes the resumed run train that epoch again
    # (its row is replaced, its score competes again); the backup never runs ahead of the rest.
    callbacks = [
        DivergenceGuard(run, cfg),  # first: it stops before any file sees a diverged state
        keras.callbacks.CSVLogger(str(history_csv), append=True),
        SaveBest(best_path, MONITOR, chief_run / "history.csv", target=lambda _: saved_model),
        keras.callbacks.TensorBoard(str(run / "tensorboard"), write_graph=False, profile_batch=0),
        _FlushLog(early_stopping=cfg.early_stopping_patience > 0),
    ]
    if cfg.schedule == "plateau":
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor=MONITOR, mode="max", factor=0.5, patience=3))
    if cfg.early_stopping_patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=MONITOR, mode="max",
                                                       patience=cfg.early_stopping_patience))
    callbacks.extend(extra_callbacks)
    callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=True))

    fit_model.fit(splits.train, validation_data=splits.val, epochs=cfg.epochs, callbacks=callbacks,
                  verbose=cfg.verbose)

    chief = chief_run == run
    # Other workers may still be writing (then deleting) their epoch-end temp checkpoints
    # inside the chief's backup/: removing it under them failed a worker with NotFoundError.
    barrier(fit_model.distribute_strategy)
    if chief:  # the backup is the chief's (a worker's scratch run holds none): nothing to resume
        shutil.rmtree(backup_dir, ignore_errors=True)
    hist = read_history(history_csv)
    # A worker's scratch run has no best model when a resumed run's epochs did not beat the
    # chief's past best; whether training produced one is the chief's to say.
    if chief and not best_path.exists():
        raise LightsegError(f"{run}: training produced no checkpoint (diverged?); see {run / 'log.txt'}")
    write_json_atomic(run / "history.json", hist)
    plot_curves(hist, run / "curves.png")
    if not all_finite(saved_model):
        raise LightsegError(f"{run}: non-finite weights at the end of training; not saved as {final_path.name}")
    save_model_atomic(saved_model, final_path)
    LOG.info("best %s = %.4f; run directory %s", MONITOR, max(hist.get(MONITOR, [float("nan")])), run)
    return hist


