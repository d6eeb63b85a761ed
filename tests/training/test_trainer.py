"""The training engine end to end on a tiny phantom (32 px, 8 filters)."""

import csv
import json

import numpy as np
import pytest
import tf_keras as keras

from lightseg_tf.config import load_config
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.saving import load_trained_model
from lightseg_tf.training.trainer import train

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


class _Snapshots(keras.callbacks.Callback):
    """Keeps each epoch's weights; zeroes the weights during the last epoch so it cannot be the best."""

    def __init__(self, last):
        super().__init__()
        self.last, self.weights, self.val = last, [], []

    def on_train_batch_end(self, batch, logs=None):
        if self._epoch == self.last:
            self.model.set_weights([np.zeros_like(w) for w in self.model.get_weights()])

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.val.append(logs["val_mean_fg_dice"])


def test_run_directory_holds_config_history_curves_and_models(tmp_path):
    cfg = load_config(None, [*TINY, "train.epochs=3", f"run_root={tmp_path}", "name=r1"])
    snaps = _Snapshots(last=2)
    result = train(cfg, extra_callbacks=[snaps])
    run = result.run_dir
    # best.keras holds the best validation epoch's weights (the first of equals), final.keras the last's.
    best_epoch = int(np.argmax(snaps.val))
    assert best_epoch < 2 and snaps.val[2] <= max(snaps.val[:2])
    for name, epoch in (("best.keras", best_epoch), ("final.keras", 2)):
        saved = load_trained_model(run / name).get_weights()
        assert all(np.array_equal(a, b) for a, b in zip(saved, snaps.weights[epoch])), name
    for name in ("config.yaml", "history.csv", "history.json", "curves.png", "best.keras",
                 "final.keras", "split.json", "log.txt"):
        assert (run / name).is_file(), name
    assert (run / "tensorboard").is_dir()
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [0, 1, 2] and hist["val_mean_fg_dice"] == pytest.approx(snaps.val)
    model = load_trained_model(run)
    assert model.output_shape == (None, 32, 32, 4)
    # A finished run is reused, not retrained.
    again = train(cfg)
    assert again.epochs_run == 3 and _epochs_in(run / "history.csv") == [0, 1, 2]


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
    from lightseg_tf.training.trainer import set_bn_momentum

    inner = build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2)
    outer = keras.Sequential([inner])
    n_bn = sum(isinstance(layer, keras.layers.BatchNormalization) for layer in inner.layers)
    assert set_bn_momentum(outer, 0.9) == n_bn > 0
    assert all(layer.momentum == 0.9 for layer in inner.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def test_recalibrate_bn_sets_moving_stats_to_the_data():
    from lightseg_tf.training.trainer import recalibrate_bn

    inp = keras.Input((4, 4, 1))
    bn = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inp, bn(inp))
    x = np.random.default_rng(0).normal(3.0, 2.0, (100, 4, 4, 1)).astype(np.float32)
    recalibrate_bn(model, x, batch_size=25)
    # the cumulative average of 4 equal batch means is the data mean
    assert float(bn.moving_mean.numpy()[0]) == pytest.approx(float(x.mean()), abs=1e-4)
    assert bn.momentum == 0.99


@pytest.mark.parametrize("lr", ["1e20", "1e3"])
def test_a_diverging_run_stops_with_one_line_and_saves_nothing_non_finite(tmp_path, lr):
    cfg = load_config(None, [*TINY, "train.epochs=3", "train.optimizer=sgd", "train.schedule=constant",
                             f"train.learning_rate={lr}", f"run_root={tmp_path}", "name=boom"])
    with pytest.raises(LightsegError, match="training diverged in epoch .*lower train.learning_rate"):
        train(cfg)
    run = tmp_path / "boom"
    assert not (run / "final.keras").exists()
    if (run / "best.keras").exists():  # an earlier, finite epoch may be kept: it must be finite
        assert all(np.isfinite(w).all() for w in load_trained_model(run / "best.keras").get_weights())


def test_a_finished_run_with_a_non_finite_history_is_not_reused(tmp_path):
    cfg = load_config(None, [*TINY, "train.epochs=1", f"run_root={tmp_path}", "name=old"])
    run = train(cfg).run_dir
    rows = (run / "history.csv").read_text().splitlines()
    header = rows[0].split(",")
    values = rows[1].split(",")
    values[header.index("val_loss")] = "nan"  # as a run saved before the divergence guard
    (run / "history.csv").write_text("\n".join([rows[0], ",".join(values)]) + "\n")
    with pytest.raises(LightsegError, match="non-finite val_loss"):
        train(cfg)


def test_a_kill_while_saving_the_best_model_loses_no_epoch(tmp_path, monkeypatch):
    """Killed inside the first best-model save: the resumed run has every epoch and the right best.

    (Before the fix the backup was written first: the killed epoch's history row was lost and it
    never competed for best.)"""
    import lightseg_tf.training.trainer as trainer

    cfg = load_config(None, [*TINY, "train.epochs=4", f"run_root={tmp_path}", "name=k"])
    real_save, saves = trainer.save_model_atomic, []

    def killed_on_the_first_best(model, path):
        saves.append(path.name)
        if saves.count("best.keras") == 1:
            raise KeyboardInterrupt("killed while saving best.keras")
        real_save(model, path)

    first = _Snapshots(last=-1)
    monkeypatch.setattr(trainer, "save_model_atomic", killed_on_the_first_best)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, extra_callbacks=[first])
    killed_epoch = len(first.weights)  # its row was logged, its backup never written
    monkeypatch.setattr(trainer, "save_model_atomic", real_save)
    second = _Snapshots(last=-1)
    train(cfg, extra_callbacks=[second])
    run = tmp_path / "k"
    hist = json.loads((run / "history.json").read_text())
    assert hist["epoch"] == [0, 1, 2, 3]
    assert len(second.weights) == 4 - killed_epoch  # the killed epoch is trained again
    weights = {**dict(enumerate(first.weights[:killed_epoch])), **dict(zip(range(killed_epoch, 4), second.weights))}
    best_epoch = int(np.argmax(hist["val_mean_fg_dice"]))
    saved = load_trained_model(run / "best.keras").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(saved, weights[best_epoch]))


def test_reading_a_run_never_writes_into_it_and_a_stale_partial_save_is_cleared(tmp_path):
    import shutil

    from lightseg_tf.runs import open_run

    cfg = load_config(None, [*TINY, "train.epochs=1", f"run_root={tmp_path}", "name=ro"])
    run = train(cfg).run_dir
    shutil.rmtree(run / "phantom")
    with pytest.raises(LightsegError, match="phantom data is missing"):
        open_run(run)
    assert not (run / "phantom").exists()  # opening did not regenerate it
    (run / ".best.partial.keras").write_bytes(b"half a model")  # left by a kill inside a save
    (run / "final.keras").unlink()
    train(cfg)  # training (not reading) may write the phantom again, and clears the stale save
    assert not (run / ".best.partial.keras").exists() and (run / "phantom").is_dir()
