"""The training engine end to end on a tiny phantom (32 px, 8 filters)."""

import csv
import json

import numpy as np
import pytest
import tf_keras as keras

from lightseg_tf.config import load_config
from lightseg_tf.errors import LightsegError
from lightseg_tf.training import load_trained_model, train

TINY = ["data.image_size=32", "data.batch_size=4", "data.phantom_n=12", "model.options={base_filters: 4, depth: 2}",
        "train.verbose=0", "data.augment.enabled=false"]


class _StopAt(keras.callbacks.Callback):
    """Simulates a killed process: raises after ``epoch`` epochs have completed."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("killed")


def _epochs_in(history_csv):
    with open(history_csv) as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)]


def test_run_directory_holds_config_history_curves_and_models(tmp_path):
    cfg = load_config(None, [*TINY, "train.epochs=2", f"run_root={tmp_path}", "name=r1"])
    result = train(cfg)
    run = result.run_dir
    for name in ("config.yaml", "history.csv", "history.json", "curves.png", "best.keras",
                 "final.keras", "split.json", "log.txt"):
        assert (run / name).is_file(), name
    assert (run / "tensorboard").is_dir()
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [0, 1] and len(hist["val_mean_fg_dice"]) == 2
    model = load_trained_model(run)
    assert model.output_shape == (None, 32, 32, 4)
    # A finished run is reused, not retrained.
    again = train(cfg)
    assert again.epochs_run == 2 and _epochs_in(run / "history.csv") == [0, 1]


def test_killed_run_resumes_to_the_same_final_epoch_count(tmp_path):
    cfg = load_config(None, [*TINY, "train.epochs=4", f"run_root={tmp_path}", "name=resume"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, extra_callbacks=[_StopAt(2)])
    assert _epochs_in(tmp_path / "resume" / "history.csv") == [0, 1]
    assert (tmp_path / "resume" / "backup").exists()
    result = train(cfg)  # the same command again
    assert _epochs_in(tmp_path / "resume" / "history.csv") == [0, 1, 2, 3]
    assert result.epochs_run == 4
    assert not (tmp_path / "resume" / "backup").exists()


def test_reopening_a_run_with_another_config_is_refused(tmp_path):
    cfg = load_config(None, [*TINY, "train.epochs=1", f"run_root={tmp_path}", "name=x"])
    train(cfg)
    other = load_config(None, [*TINY, "train.epochs=3", f"run_root={tmp_path}", "name=x"])
    with pytest.raises(LightsegError, match="config.yaml"):
        train(other)


def test_loading_a_wrong_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(np.random.default_rng(0).bytes(100))
    with pytest.raises(LightsegError, match="model.keras"):
        load_trained_model(bad)


def test_bn_momentum_is_set_on_every_batchnorm_including_nested():
    from lightseg_tf.models import build_model
    from lightseg_tf.training import set_bn_momentum

    inner = build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2)
    outer = keras.Sequential([inner])
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in inner.layers)
    assert set_bn_momentum(outer, 0.9) == n_bn > 0
    assert all(layer.momentum == 0.9 for layer in inner.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_recalibrate_bn_sets_moving_stats_to_the_data():
    from lightseg_tf.training import recalibrate_bn

    inp = keras.Input((4, 4, 1))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inp, bn(inp))
    x = np.random.default_rng(0).normal(3.0, 2.0, (100, 4, 4, 1)).astype(np.float32)
    recalibrate_bn(model, x, batch_size=25)
    # the cumulative average of 4 equal batch means is the data mean
    assert float(bn.moving_mean.numpy()[0]) == pytest.approx(float(x.mean()), abs=1e-4)
    assert bn.momentum == 0.99
