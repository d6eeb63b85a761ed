"""Black-box knowledge distillation: a student learns from the labels and the teachers' ensemble.

loss = alpha * hard(y, s) + (1 - alpha) * soft(t, s)

with ``hard`` the config's loss (DLCE for LightSeg: Dice + Lovász-Softmax + cross-entropy),
``s`` the student's logits and ``t`` the ensemble's logits, the log of the weighted soft vote
of the cached teacher probabilities. ``soft`` is ``distill.soft_loss``
(:mod:`lightseg_tf.objectives.distill_losses`); ``kl`` is the paper's
``T^2 * KL(softmax(t / T) || softmax(s / T))``. Hinton, Vinyals, Dean, "Distilling the knowledge in a
neural network", 2015 (the T^2 keeps the soft gradients' scale independent of T); Alzubaidi
et al., LightSeg, 2023 (alpha 0.5, the DLCE loss, the weighted ensemble as teacher).

Images of the split's ``unlabelled`` side (no mask) join the training set when the cache holds
the teachers' probabilities for them (``distill.unlabelled``): their hard label is the vote's
argmax (a pseudo-label: Lee, "Pseudo-label", ICML 2013 workshop), their soft target the vote,
as in Hinton et al.'s transfer set. The labels-only twin cannot use them: that is what the
teachers add when annotations are scarce and scans are not.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import Config, with_overrides
from lightseg_tf.errors import LightsegError
from lightseg_tf.objectives.distill_losses import SOFT_LOSSES, soft_loss
from lightseg_tf.objectives.metrics import MeanForegroundDice
from lightseg_tf.core.log import LOG
from lightseg_tf.runs import open_run_dir, run_path

EPS = 1e-7


def probs_to_logits(probs):
    """Logits whose softmax is ``probs`` (log, floored so a zero probability stays finite)."""
    return tf.math.log(tf.maximum(tf.cast(probs, tf.float32), EPS))


class Distiller(keras.Model):
    """Wraps a student; ``fit`` on ``(image, (mask, teacher_probs))`` distils it.

    With ``teacher`` (a Keras model emitting logits, e.g. :func:`lightseg_tf.training.ensemble.build_ensemble_model`)
    the soft targets are computed online instead and the data are plain ``(image, mask)``;
    the teacher is frozen and never updated. Only the student is saved (``distiller.student``).

    Args:
        student: the model being trained (plain or QAT-wrapped), emitting logits ``[B, S, S, C]``.
        hard_loss: loss on (int mask ``[B, S, S]``, student logits), e.g. ``build_loss(cfg.loss)``.
        num_classes: C, for the mean foreground Dice metric.
        alpha: weight of the hard loss (1 = no distillation, 0 = teacher only).
        temperature: T of the softened distributions.
        soft_loss: the soft term, one of :data:`lightseg_tf.objectives.distill_losses.SOFT_LOSSES`.
    """

    def __init__(self, student: keras.Model, hard_loss, num_classes: int, alpha: float = 0.5,
                 temperature: float = 2.0, teacher: keras.Model | None = None, soft_loss: str = "cwd",
                 **kwargs):
        super().__init__(name=kwargs.pop("name", "distiller"), **kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise LightsegError(f"distill.alpha must lie in [0, 1], got {alpha}")
        if temperature <= 0:
            raise LightsegError(f"distill.temperature must be > 0, got {temperature}")
        if soft_loss not in SOFT_LOSSES:
            raise LightsegError(f"unknown distill.soft_loss {soft_loss!r}; choose from {list(SOFT_LOSSES)}")
        self.soft_loss = soft_loss
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.trainable = False
        self.hard_loss = hard_loss
        self.alpha, self.temperature = float(alpha), float(temperature)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.hard_tracker = keras.metrics.Mean(name="hard_loss")
        self.soft_tracker = keras.metrics.Mean(name="soft_loss")
        self.dice = MeanForegroundDice(num_classes)

    @property
    def metrics(self):
        return [self.loss_tracker, self.hard_tracker, self.soft_tracker, self.dice]

    def call(self, images, training=False):
        return self.student(images, training=training)

    def _targets(self, data):
        images, y = data
        if isinstance(y, (tuple, list)):
            mask, teacher_probs = y
            return images, mask, probs_to_logits(teacher_probs)
        if self.teacher is None:
            raise LightsegError("Distiller got (image, mask) batches but has no teacher model; "
                                "feed (image, (mask, teacher_probs)) or pass teacher=")
        return images, y, self.teacher(images, training=False)

    def compute_losses(self, mask, teacher_logits, student_logits):
        """``(total, hard, soft)`` float32 scalars: means over this replica's share of the batch."""
        if isinstance(self.hard_loss, keras.losses.Loss):
            # Its per-image values: a Loss' own reduction (AUTO) is refused under tf.distribute.
            hard = tf.reduce_mean(self.hard_loss.call(mask, student_logits))
        else:
            hard = tf.reduce_mean(self.hard_loss(mask, student_logits))
        soft = soft_loss(self.soft_loss, teacher_logits, student_logits, self.temperature, mask)
        return self.alpha * hard + (1.0 - self.alpha) * soft, hard, soft

    def _record(self, mask, student_logits, total, hard, soft):
        self.loss_tracker.update_state(total)
        self.hard_tracker.update_state(hard)
        self.soft_tracker.update_state(soft)
        self.dice.update_state(mask, student_logits)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, mask, teacher_logits = self._targets(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = self.student(images, training=True)
            total, hard, soft = self.compute_losses(mask, teacher_logits, logits)
            objective = total + (tf.add_n(self.student.losses) if self.student.losses else 0.0)
            # The replicas' gradients are summed: each contributes its mean / replicas, so the
            # update is that of the global batch's mean (Keras' compiled loss scales the same way).
            objective = objective / replicas
        # minimize() applies loss scaling when mixed precision wrapped the optimizer.
        self.optimizer.minimize(objective, self.student.trainable_variables, tape=tape)
        return self._record(mask, logits, total, hard, soft)

    def test_step(self, data):
        images, mask, teacher_logits = self._targets(data)
        logits = self.student(images, training=False)
        return self._record(mask, logits, *self.compute_losses(mask, teacher_logits, logits))


def ensemble_weights(cfg: Config, cache, teachers: list[str]) -> np.ndarray:
    """The configured weights: ``distill.weights_file``, else the cache's tuned ones, else equal."""
    from lightseg_tf.training.ensemble import load_weights, normalise_weights

    path = Path(cfg.distill.weights_file) if cfg.distill.weights_file else cache.root / "ensemble_weights.json"
    if cfg.distill.weights_file or path.exists():
        return load_weights(path, teachers)
    LOG.info("no ensemble_weights.json in %s: the teachers vote with equal weights", cache.root)
    return normalise_weights(np.ones(len(teachers)), len(teachers))


def _unlabelled_sides(dc, cache, teachers: list[str]) -> list[str]:
    """``["unlabelled"]`` when the student also distils on the split's unlabelled images, else ``[]``.

    Never on the labels alone (alpha 1: the teachers' argmax is not a label), and only where the
    cache holds every voting teacher's probabilities for them.
    """
    from lightseg_tf.data.split import UNLABELLED

    if not dc.unlabelled or dc.alpha == 1.0 or not cache.splits.get(UNLABELLED):
        return []
    missing = [t for t in teachers if UNLABELLED not in cache.manifest["teachers"][t]["files"]]
    if missing:
        LOG.warning("the split has %d unlabelled images but the cache %s has no probabilities of %s for them; "
                    "distilling on the labelled ones (add them: lightseg teachers predict ... --splits unlabelled)",
                    len(cache.splits[UNLABELLED]), cache.root, ", ".join(missing))
        return []
    return [UNLABELLED]


def _initial_student(cfg: Config, shape, num_classes: int, train) -> keras.Model:
    """The student to distil (new or ``distill.init_from``), QAT-wrapped when ``distill.qat``.

    ``train`` (the TRAIN split) gives the images QAT's initial activation ranges come from.
    """
    from lightseg_tf.models import build_model
    from lightseg_tf.models.saving import load_trained_model, with_policy
    from lightseg_tf.training.trainer import set_bn_momentum

    if cfg.distill.init_from:
        # Loaded in float32; trained under this run's policy (a mixed one keeps float32 logits).
        student = with_policy(load_trained_model(cfg.distill.init_from), keras.mixed_precision.global_policy().name)
        if tuple(student.input_shape[1:]) != tuple(shape) or student.output_shape[-1] != num_classes:
            raise LightsegError(f"{cfg.distill.init_from}: model takes {student.input_shape[1:]} -> "
                                f"{student.output_shape[-1]} classes; this distillation needs {shape} -> {num_classes}")
    else:
        student = build_model(cfg.model.name, shape, num_classes, **cfg.model.options)
    if cfg.train.bn_momentum is not None:
        set_bn_momentum(student, cfg.train.bn_momentum)
    if cfg.distill.qat:
        from lightseg_tf.data.tfdata import letterboxed_sample
        from lightseg_tf.models.qat import quantize_for_qat

        # QAT ranges start where the student's tensors are on TRAIN images, not at [-6, 6].
        student = quantize_for_qat(student, calibration=letterboxed_sample(train, shape[0]))
    return student


def distill(cfg: Config, run_dir: str | Path | None = None, extra_callbacks=(), overwrite: bool = False):
    """Distil ``cfg.model`` from the teacher cache ``cfg.distill.cache``; a normal run directory results.

    The split and the image side are the cache's (the teachers'; ``data.image_size`` follows the
    cache), so later stages (quantize, export, evaluate) treat the run like any trained one. Resumes like :func:`lightseg_tf.training.trainer.train`.

    Returns:
        :class:`lightseg_tf.training.trainer.TrainResult`.
    """
    from lightseg_tf.training.distribute import configure_runtime, is_chief, release_run_dir, writable_run_dir
    from lightseg_tf.training.teacher_cache import TeacherCache
    from lightseg_tf.training.trainer import finished_run

    dc = cfg.distill
    if not dc.cache:
        raise LightsegError("distill.cache is empty: set it to a folder made by `lightseg teachers predict`")
    cache = TeacherCache(dc.cache)
    if cfg.data.image_size != cache.size:  # the cache's probabilities fix the student's input side
        LOG.info("data.image_size %d -> %d, the side of the cache's teacher probabilities", cfg.data.image_size,
                 cache.size)
        cfg = with_overrides(cfg, {"data.image_size": cache.size})
    # First: a multi-worker strategy must precede any other op. QAT's fake-quant graph is float32.
    strategy = configure_runtime(cfg.train, precision="float32" if dc.qat else None)
    run = open_run_dir(cfg, run_dir) if is_chief(strategy) else run_path(cfg, run_dir)
    suffix = ".h5" if dc.qat else ".keras"
    if not overwrite and (done := finished_run(run, suffix)) is not None:
        return done
    out = writable_run_dir(run, strategy)
    try:
        return _distill_run(cfg, cache, run, out, strategy, suffix, extra_callbacks)
    finally:
        release_run_dir(out, run)


def _distill_run(cfg: Config, cache, run: Path, out: Path, strategy, suffix: str, extra_callbacks):
    """The body of :func:`distill`: ``out`` is where this process writes (``run`` on the chief)."""
    from lightseg_tf.data.tfdata import Splits, make_dataset
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.inspect import require_valid
    from lightseg_tf.data.split import UNLABELLED, check_split, save_split
    from lightseg_tf.training.distribute import describe_runtime, sync_batchnorm
    from lightseg_tf.training.ensemble import soft_vote
    from lightseg_tf.objectives.losses import build_loss
    from lightseg_tf.training.trainer import FAST_STEPS_PER_EXECUTION, TrainResult, fit_run, make_optimizer

    dc = cfg.distill
    data = cache.manifest.get("data", {})
    dataset = read_dataset(cfg.data.path or data.get("path"), cfg.data.format or data.get("format"))
    if list(dataset.classes) != cache.classes:
        raise LightsegError(f"{dataset.root}: classes {list(dataset.classes)} differ from the cache's {cache.classes}")
    split = cache.splits
    check_split(split, dataset, where=str(cache.root / "manifest.json"))
    save_split(split, out / "split.json", source=str(cache.root))
    teachers = cache.select(dc.teachers)
    weights = ensemble_weights(cfg, cache, teachers)
    if dc.qat and dc.init_from:
        what = (f"quantization-aware fine-tuning of {dc.init_from} for {cfg.train.epochs} epoch(s): weights and "
                "activations pass through int8 fake quantizers, so the int8 export keeps what it learns")
        teach = "still distilled from the teachers"
    else:
        what, teach = f"distilling {cfg.model.name} for {cfg.train.epochs} epoch(s)", "from the teachers"
    if dc.alpha == 1.0:
        LOG.info("%s, on the labels alone (alpha 1)", what)
    else:
        LOG.info("%s, %s %s (weights %s), alpha %.2f, T %.1f, soft loss %s", what, teach, ", ".join(teachers),
                 np.round(weights, 3).tolist(), dc.alpha, dc.temperature, dc.soft_loss)

    parts = {k: dataset.subset(v) for k, v in split.items() if v}
    require_valid(dataset.subset([i for side in ("train", "val") for i in split[side]]))
    train_sides = ["train", *_unlabelled_sides(dc, cache, teachers)]
    train_set = dataset.subset([i for side in train_sides for i in split[side]])
    if len(train_sides) > 1:
        LOG.info("training on %d labelled and %d unlabelled images (labelled by the vote)", len(split["train"]),
                 len(split[UNLABELLED]))

    def targets(*sides):
        """Record ``i`` of ``sides`` laid end to end -> the vote's ``[S, S, C]`` probabilities."""
        arrays = [[cache.probs(t, side) for t in teachers] for side in sides]
        starts = np.cumsum([0, *(len(a[0]) for a in arrays)])

        def vote(i):
            k = int(np.searchsorted(starts, i, side="right")) - 1
            return soft_vote([p[i - starts[k]] for p in arrays[k]], weights)
        return vote

    splits = Splits(
        train=make_dataset(train_set, cfg.data, training=True, seed=cfg.train.seed,
                           soft_targets=targets(*train_sides), num_classes=cache.num_classes),
        val=make_dataset(parts["val"], cfg.data, training=False, soft_targets=targets("val"),
                         num_classes=cache.num_classes),
        test=None, datasets=parts)
    steps = math.ceil(len(train_set) / cfg.data.batch_size)
    shape = (cfg.data.image_size, cfg.data.image_size, 1)
    with strategy.scope():
        student = _initial_student(cfg, shape, cache.num_classes, parts["train"])
        sync_batchnorm(student, strategy)
        distiller = Distiller(student, build_loss(cfg.loss), cache.num_classes, dc.alpha, dc.temperature,
                              soft_loss=dc.soft_loss)
        # The fast path's grouped steps (issue 17), as compile_for_training gives a plain student.
        distiller.compile(optimizer=make_optimizer(cfg.train, steps), jit_compile=cfg.train.jit_compile,
                          steps_per_execution=FAST_STEPS_PER_EXECUTION if cfg.train.fast_path else 1)
        distiller(np.zeros((1, *shape), np.float32))  # BackupAndRestore can only restore a built model
    if not dc.qat:  # the QAT wrapper's count adds its quantizer variables: not the student's size
        LOG.info("student %s: %s parameters%s", cfg.model.name, f"{student.count_params():,}",
                 describe_runtime(strategy))
    hist = fit_run(out, distiller, student, splits, cfg.train, extra_callbacks, suffix=suffix,
                   chief_run=run)
    return TrainResult(run, run / f"best{suffix}", hist, len(hist.get("epoch", [])))
