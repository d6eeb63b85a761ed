"""The one tf.data pipeline every model trains and evaluates on.

decode -> letterbox (image bilinear, mask nearest) -> cache -> [oversample rare classes]
-> shuffle -> augment (albumentations, static shapes restored) -> batch -> prefetch.

Elements are ``(image float32 [B, S, S, 1] in [0, 1], mask int32 [B, S, S])``; with soft
targets (distillation), ``(image, (mask, soft float32 [B, S, S, C]))``, the soft map moved by
the same geometric augmentation as the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import tensorflow as tf

from lightseg_tf.config import DataConfig
from lightseg_tf.data.augment import augment_pair, build_augmenter
from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.data.letterbox import letterbox_image, letterbox_mask


@dataclass
class Splits:
    """Train/val/test pipelines plus the sub-datasets they were built from."""

    train: tf.data.Dataset
    val: tf.data.Dataset
    test: tf.data.Dataset | None
    datasets: dict[str, SegDataset]


def load_letterboxed(dataset: SegDataset, index: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode record ``index`` and letterbox it: float32 ``[S, S, 1]``, int32 ``[S, S]``."""
    image, mask = dataset.load_pair(dataset.records[index])
    image, _ = letterbox_image(image, size)
    return image.astype(np.float32), letterbox_mask(mask, size).astype(np.int32)


def load_letterboxed_image(dataset: SegDataset, index: int, size: int) -> np.ndarray:
    """Decode record ``index``'s image alone (it may have no mask) and letterbox it: float32 ``[S, S, 1]``."""
    image, _ = letterbox_image(dataset.load_image(dataset.records[index]), size)
    return image.astype(np.float32)


def letterboxed_sample(dataset: SegDataset, size: int, n: int = 64) -> np.ndarray:
    """The first ``n`` images of ``dataset`` letterboxed as in training: float32 ``[n, S, S, 1]``.

    The representative sample for int8 calibration and for QAT's initial ranges.
    """
    return np.stack([load_letterboxed(dataset, i, size)[0] for i in range(min(n, len(dataset)))])


def repeat_counts(dataset: SegDataset, factor: float, rare_fraction: float) -> np.ndarray:
    """How many times each image is drawn per epoch under class-balanced oversampling.

    A foreground class is rare when fewer than ``rare_fraction`` of the images contain it;
    an image holding any rare class is repeated ``round(factor)`` times, others once.

    Returns:
        int64 ``[N]`` repeat counts.
    """
    n = len(dataset)
    if factor <= 1:
        return np.ones(n, np.int64)
    presence = np.zeros((n, dataset.num_classes), bool)
    for i, rec in enumerate(dataset.records):
        if rec.mask is not None:  # an unlabelled image (teacher-labelled) is never repeated
            presence[i, np.unique(dataset.load_mask(rec))] = True
    share = presence.mean(axis=0)
    rare = np.flatnonzero((share < rare_fraction) & (np.arange(dataset.num_classes) > 0))
    holds_rare = presence[:, rare].any(axis=1) if rare.size else np.zeros(n, bool)
    return np.where(holds_rare, int(round(factor)), 1).astype(np.int64)


def make_dataset(dataset: SegDataset, cfg: DataConfig, *, training: bool, seed: int = 0,
                 soft_targets: Callable[[int], np.ndarray] | None = None, num_classes: int | None = None,
                 ) -> tf.data.Dataset:
    """Build the pipeline over every record of ``dataset``.

    Args:
        dataset: the records (already restricted to one split).
        cfg: data config (image size, batch, cache, shuffle, augmentation, determinism).
        training: shuffle, oversample and augment when True; plain ordered batches otherwise.
        seed: seed for shuffling and, in deterministic mode, augmentation.
        soft_targets: ``i -> [S, S, C]`` probabilities of letterboxed record ``i`` (a teacher's).
            A record without a mask then gets their argmax as its mask (a pseudo-label).
        num_classes: C of the soft targets (default: the dataset's).

    Returns:
        A batched, prefetched ``tf.data.Dataset`` of ``(image, mask)``, or of
        ``(image, (mask, soft))`` when ``soft_targets`` is given.
    """
    size = cfg.image_size
    n = len(dataset)
    parallel = 1 if cfg.deterministic else tf.data.AUTOTUNE
    shapes = [[size, size, 1], [size, size]]
    types = [tf.float32, tf.int32]
    if soft_targets is not None:
        shapes.append([size, size, num_classes or dataset.num_classes])
        types.append(tf.float32)

    def _load(i):
        if soft_targets is None:
            return load_letterboxed(dataset, int(i), size)
        soft = np.asarray(soft_targets(int(i)), np.float32)
        if dataset.records[int(i)].mask is None:
            return load_letterboxed_image(dataset, int(i), size), soft.argmax(-1).astype(np.int32), soft
        return (*load_letterboxed(dataset, int(i), size), soft)

    def _fix(*xs):  # numpy_function forgets static shapes
        return tuple(tf.ensure_shape(x, s) for x, s in zip(xs, shapes))

    ds = tf.data.Dataset.range(n)
    ds = ds.map(lambda i: _fix(*tf.numpy_function(_load, [i], types, stateful=False)),
                num_parallel_calls=parallel, deterministic=True)
    if cfg.cache:
        ds = ds.cache()
    if training:
        counts = repeat_counts(dataset, cfg.oversample_rare, cfg.rare_class_fraction)
        if (counts > 1).any():
            reps = tf.data.Dataset.from_tensor_slices(counts)
            ds = tf.data.Dataset.zip((ds, reps)).flat_map(
                lambda xy, k: tf.data.Dataset.from_tensors(xy).repeat(k)
            )
        ds = ds.shuffle(min(cfg.shuffle_buffer, int(counts.sum())), seed=seed,
                        reshuffle_each_iteration=True)
        aug = build_augmenter(cfg.augment, seed=seed if cfg.deterministic else None)
        if aug is not None:
            def _augment(element_seed, image, mask, soft=None):
                if cfg.deterministic:
                    aug.set_random_seed(int(element_seed))
                return augment_pair(aug, image, mask, soft)

            seeds = tf.data.Dataset.random(seed=seed).map(lambda s: s % (2**31))
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda xs, s: _fix(*tf.numpy_function(_augment, [s, *xs], types)),
                num_parallel_calls=parallel, deterministic=cfg.deterministic,
            )
    if soft_targets is not None:
        ds = ds.map(lambda x, y, t: (x, (y, t)))
    ds = ds.batch(cfg.batch_size, drop_remainder=False)
    options = tf.data.Options()
    options.deterministic = cfg.deterministic
    # Multi-worker: each worker keeps its share of the elements (no image twice per epoch). The
    # default (FILE) finds no files behind Dataset.range and falls back with a warning.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def build_datasets(dataset: SegDataset, split: dict[str, list[str]], cfg: DataConfig, seed: int = 0) -> Splits:
    """Train (augmented), val and test pipelines from one dataset and its split."""
    parts = {k: dataset.subset(v) for k, v in split.items() if v}
    return Splits(
        train=make_dataset(parts["train"], cfg, training=True, seed=seed),
        val=make_dataset(parts["val"], cfg, training=False),
        test=make_dataset(parts["test"], cfg, training=False) if "test" in parts else None,
        datasets=parts,
    )
