"""The execution runtime of a training: seeds, precision policy, distribution strategy, chief role.

Every training entry point (``train``, ``distill``, QAT fine-tuning, tuner trials and the
pipeline stages that call them) goes through :func:`configure_runtime` and builds its model,
optimiser and metrics inside the returned strategy's scope.

Batch size: ``data.batch_size`` is the GLOBAL batch. Keras splits each batch of the dataset
across the replicas (``batch_size / replicas`` images each), so a config gives the same
updates on one CPU, two GPUs or two machines; losses are averaged over the global batch
(Keras' compiled loss and the Distiller divide each replica's batch mean by the replica count;
the replicas' gradients are then summed).

Multi-worker: only the chief (``TF_CONFIG`` task ``chief``, or ``worker`` 0 when there is no
chief) writes the run directory. Other workers write their copies of logs, histories and
checkpoints into a scratch folder (:func:`writable_run_dir`) that is deleted at the end, as
Keras' own checkpoint callbacks do; BackupAndRestore reads the chief's backup on every worker,
so a restarted cluster resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import TrainConfig
from lightseg_tf.core.log import LOG
from lightseg_tf.errors import LightsegError

POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16", "on": "mixed_float16"}


def precision_policy(setting: str) -> str:
    """The Keras dtype policy name of ``train.mixed_precision``.

    ``auto`` is ``mixed_float16`` when a GPU is visible (tensor cores; the loss is scaled) and
    ``float32`` on CPU, where float16 kernels are slower than float32 ones; ``on`` is
    ``float16``; ``bfloat16`` needs no loss scaling and helps only on CPUs with AVX512-BF16 / AMX
    (docs/BENCHMARKS.md, "Scaling out").
    """
    if setting == "auto":
        return "mixed_float16" if tf.config.list_physical_devices("GPU") else "float32"
    if setting not in POLICIES:
        raise LightsegError(f"train.mixed_precision={setting!r}: choose from auto, {', '.join(POLICIES)}")
    return POLICIES[setting]


@functools.lru_cache(maxsize=None)  # one per process: a second multi-worker strategy cannot be made
def make_strategy(name: str) -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy ``name``: default (one device), mirrored (all local
    GPUs, or every logical device when there are none) or multi_worker (the cluster in
    ``TF_CONFIG``)."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        # One device of each kind is a one-replica mirror: still valid (tests use two logical CPUs).
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise LightsegError("train.strategy=multi_worker needs the cluster in the TF_CONFIG environment "
                                "variable (README, 'Scaling out'); none is set")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except json.JSONDecodeError as exc:
            raise LightsegError(f"TF_CONFIG is not valid JSON ({exc}); see README, 'Scaling out'") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name != "default":
        raise LightsegError(f"train.strategy={name!r}: choose default, mirrored or multi_worker")
    return tf.distribute.get_strategy()


def configure_runtime(cfg: TrainConfig, precision: str | None = None) -> tf.distribute.Strategy:
    """Seeds, determinism, the global dtype policy and the distribution strategy.

    Call it before any other TensorFlow op of the process: MultiWorkerMirroredStrategy must be
    created first.

    Args:
        cfg: the run's ``train`` settings.
        precision: a policy name that overrides ``cfg.mixed_precision`` (QAT runs in float32).

    Returns:
        The strategy; build the model, optimiser and metrics inside ``strategy.scope()``.
    """
    strategy = make_strategy(cfg.strategy)
    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic_ops:
        tf.config.experimental.enable_op_determinism()
    policy = precision or precision_policy(cfg.mixed_precision)
    if policy == "mixed_float16" and not tf.config.list_physical_devices("GPU"):
        _warn_float16_on_cpu()
    keras.mixed_precision.set_global_policy(policy)
    return strategy


@functools.lru_cache(maxsize=None)  # once per process: a pipeline trains several models
def _warn_float16_on_cpu() -> None:
    """Say once, in the project's words, what Keras' filtered compatibility warning says."""
    LOG.warning("train.mixed_precision: mixed_float16 without a GPU runs 3-4x slower than float32 on the "
                "CPUs measured (docs/BENCHMARKS.md, 'Scaling out'); train.mixed_precision=auto picks float32 here")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run directory (always, unless a non-chief worker)."""
    return bool(strategy.extended.should_checkpoint)


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Return only once every worker of a cluster has called it (a one-number all-reduce).

    On one replica it does nothing. Used before the chief deletes what other workers may still
    be writing (their BackupAndRestore temp checkpoints inside the chief's ``backup/``).
    """
    if strategy.num_replicas_in_sync <= 1:
        return

    @tf.function
    def all_reduce_one():
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)

    all_reduce_one()


def sync_batchnorm(model: keras.Model, strategy: tf.distribute.Strategy) -> int:
    """Make every BatchNormalization compute its batch statistics over all replicas.

    With ``batch_size / replicas`` images per replica, per-replica statistics would make a
    mirrored step differ from the same global batch on one device (and be noisy at the small
    batches segmentation uses); synchronised statistics make them equal.

    Returns:
        The number of layers changed (0 on one replica).
    """
    if strategy.num_replicas_in_sync <= 1:
        return 0
    changed = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized:
            # Set after the build, so the fused kernel chosen then must go too (it cannot sync).
            layer.synchronized, layer.fused = True, False
            changed += 1
    return changed


def writable_run_dir(run: Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes a run's files: ``run`` on the chief, a scratch folder elsewhere."""
    if is_chief(strategy):
        return run
    resolver = strategy.cluster_resolver
    return Path(tempfile.mkdtemp(prefix=f"lightseg-{resolver.task_type}{resolver.task_id}-"))


def release_run_dir(write_dir: Path, run: Path) -> None:
    """Delete a non-chief worker's scratch folder (nothing to do on the chief)."""
    if write_dir != run:
        shutil.rmtree(write_dir, ignore_errors=True)


def describe_runtime(strategy) -> str:
    """``", 2 replicas, mixed_float16"``-style suffix for the log ("" on one float32 device)."""
    parts = []
    if strategy.num_replicas_in_sync > 1:
        parts.append(f"{strategy.num_replicas_in_sync} replicas ({type(strategy).__name__})")
    policy = keras.mixed_precision.global_policy().name
    if policy != "float32":
        parts.append(policy)
    return "".join(f", {p}" for p in parts)
