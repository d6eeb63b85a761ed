import numpy as np
import tensorflow as tf

from lightseg_tf.config import AugmentConfig, DataConfig
from lightseg_tf.data.tfdata import build_datasets, make_dataset, repeat_counts
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.split import make_split


def _cfg(**kw):
    return DataConfig(**{"image_size": 48, "batch_size": 4, **kw})


def test_shapes_dtypes_static_and_value_range(phantom_dir):
    ds = read_dataset(phantom_dir)
    splits = build_datasets(ds, make_split(ds, 0.25, 0.25, seed=0), _cfg())
    assert splits.train.element_spec[0].shape.as_list() == [None, 48, 48, 1]
    assert splits.train.element_spec[1].shape.as_list() == [None, 48, 48]
    for name in ("train", "val", "test"):
        n = 0
        for x, y in getattr(splits, name):
            assert x.dtype == tf.float32 and y.dtype == tf.int32
            assert x.shape[1:] == (48, 48, 1) and y.shape[1:] == (48, 48)
            assert 0.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
            assert set(np.unique(y.numpy())) <= {0, 1, 2, 3}
            n += x.shape[0]
        assert n == len(splits.datasets[name])


def test_deterministic_mode_repeats_exactly(phantom_dir):
    ds = read_dataset(phantom_dir)
    cfg = _cfg(deterministic=True)

    def first_epoch():
        return [(x.numpy(), y.numpy()) for x, y in make_dataset(ds, cfg, training=True, seed=7)]

    a, b = first_epoch(), first_epoch()
    assert len(a) == len(b) == 4
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_eval_pipeline_is_plain_letterbox(phantom_dir):
    """Validation batches are un-augmented and in record order."""
    from lightseg_tf.data.tfdata import load_letterboxed

    ds = read_dataset(phantom_dir)
    x, y = next(iter(make_dataset(ds, _cfg(), training=False)))
    for k in range(4):
        img, mask = load_letterboxed(ds, k, 48)
        np.testing.assert_array_equal(x[k].numpy(), img)
        np.testing.assert_array_equal(y[k].numpy(), mask)


def test_oversampling_repeats_images_with_rare_classes(phantom_dir):
    ds = read_dataset(phantom_dir)
    holds_lv = np.array([3 in np.unique(ds.load_mask(r)) for r in ds.records])
    # LV counts as rare when the threshold is above its share of images.
    counts = repeat_counts(ds, factor=3, rare_fraction=holds_lv.mean() + 0.01)
    np.testing.assert_array_equal(counts, np.where(holds_lv, 3, 1))
    np.testing.assert_array_equal(repeat_counts(ds, factor=1, rare_fraction=1.0), np.ones(len(ds)))
    cfg = _cfg(oversample_rare=3, rare_class_fraction=holds_lv.mean() + 0.01,
               augment=AugmentConfig(enabled=False))
    total = sum(int(x.shape[0]) for x, _ in make_dataset(ds, cfg, training=True))
    assert total == int(counts.sum())


def test_an_image_without_a_mask_gets_the_soft_targets_argmax_as_label(tmp_path):
    from lightseg_tf.data.phantom import write_phantom_dataset

    ds = read_dataset(write_phantom_dataset(tmp_path / "p", 3, size=64, unlabelled=2))
    rng = np.random.default_rng(0)
    soft = rng.dirichlet(np.ones(4), size=(len(ds), 32, 32)).astype(np.float32)
    x, (y, t) = next(iter(make_dataset(ds, _cfg(image_size=32, batch_size=5), training=False,
                                       soft_targets=lambda i: soft[i])))
    assert x.shape == (5, 32, 32, 1)
    np.testing.assert_array_equal(y.numpy()[3:], soft[3:].argmax(-1))  # the pseudo-labels
    assert not np.array_equal(y.numpy()[:3], soft[:3].argmax(-1))  # the annotated ones keep their masks
    np.testing.assert_allclose(t.numpy(), soft, atol=1e-6)
    assert repeat_counts(ds, 3.0, 0.5).tolist()[3:] == [1, 1]  # never oversampled: no mask to find a rare class in
