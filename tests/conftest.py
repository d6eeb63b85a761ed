"""Shared fixtures: tiny phantom datasets and the optional real data in ../shared/datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow is imported)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def phantom_dir(tmp_path_factory) -> Path:
    """16 phantom images of 64x64 in the native layout."""
    from lightseg_tf.data.phantom import write_phantom_dataset

    return write_phantom_dataset(tmp_path_factory.mktemp("phantom") / "ph", n=16, size=64, seed=3)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` when present; skips the test otherwise."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real data not available: {SHARED_DATASETS} is absent (a fresh clone has no ../shared)")
    return SHARED_DATASETS


def phantom_arrays(n: int, size: int = 64, seed: int = 5):
    """``n`` letterboxed phantom images ``[n, size, size, 1]`` and masks ``[n, size, size]``."""
    import numpy as np

    from lightseg_tf.data.letterbox import letterbox_image, letterbox_mask
    from lightseg_tf.data.phantom import make_phantom

    xs, ys = [], []
    for i in range(n):
        img, mask, _ = make_phantom(2 * size, np.random.default_rng([seed, i]))
        xs.append(letterbox_image(img, size)[0])
        ys.append(letterbox_mask(mask, size))
    return np.stack(xs), np.stack(ys)


def tiny_unet(size: int, num_classes: int = 4, head_scale: float = 20.0):
    """A seeded untrained 2-level U-Net (4 base filters) whose head is scaled up, so its logits
    are not near-ties and its class maps are varied: the tiny model of the export tests."""
    import tf_keras as keras

    from lightseg_tf.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("unet", (size, size, 1), num_classes, base_filters=4, depth=2)
    head = model.get_layer("logits")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * head_scale, bias])
    return model
