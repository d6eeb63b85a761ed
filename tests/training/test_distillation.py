"""The Distiller's loss and train step, soft targets through the pipeline, and distillation runs."""

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import AugmentConfig, DataConfig, load_config
from lightseg_tf.training.distillation import Distiller, probs_to_logits
from lightseg_tf.objectives.losses import SegmentationLoss
from lightseg_tf.models import build_model

from conftest import phantom_arrays

TINY_UNET = {"base_filters": 4, "depth": 2}


def _hand_kl(t_logits, s_logits, temperature):
    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pt, ps = sm(t_logits / temperature), sm(s_logits / temperature)
    return temperature**2 * np.mean(np.sum(pt * np.log(pt / ps), axis=-1))


def _two_by_two():
    rng = np.random.default_rng(0)
    mask = np.array([[[0, 1], [2, 1]]], np.int32)
    return mask, rng.normal(size=(1, 2, 2, 3)).astype(np.float32), rng.normal(size=(1, 2, 2, 3)).astype(np.float32)


def test_alpha_one_is_exactly_dlce():
    mask, t, s = _two_by_two()
    d = Distiller(build_model("unet", (32, 32, 1), 3, **TINY_UNET), SegmentationLoss("dlce"), 3, alpha=1.0)
    total, hard, _ = d.compute_losses(mask, t, s)
    assert float(total) == pytest.approx(float(SegmentationLoss("dlce")(mask, s)), abs=1e-6)
    assert float(total) == pytest.approx(float(hard))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_alpha_zero_is_the_t_squared_kl_computed_by_hand(temperature):
    mask, t, s = _two_by_two()
    d = Distiller(build_model("unet", (32, 32, 1), 3, **TINY_UNET), SegmentationLoss("dlce"), 3, alpha=0.0,
                  temperature=temperature, soft_loss="kl")
    total, _, soft = d.compute_losses(mask, t, s)
    assert float(total) == pytest.approx(_hand_kl(t, s, temperature), rel=1e-4)
    assert float(soft) == pytest.approx(float(total))


@pytest.mark.parametrize("name", ["cwd", "dice"])
def test_the_configured_soft_term_is_the_one_trained(name):
    from lightseg_tf.objectives.distill_losses import soft_loss

    mask, t, s = _two_by_two()
    d = Distiller(build_model("unet", (32, 32, 1), 3, **TINY_UNET), SegmentationLoss("dlce"), 3, alpha=0.25,
                  temperature=2.0, soft_loss=name)
    total, hard, soft = d.compute_losses(mask, t, s)
    assert float(soft) == pytest.approx(float(soft_loss(name, t, s, 2.0, mask)), rel=1e-6)
    assert float(total) == pytest.approx(0.25 * float(hard) + 0.75 * float(soft), rel=1e-6)
    with pytest.raises(Exception, match="unknown distill.soft_loss 'mse'"):
        Distiller(build_model("unet", (32, 32, 1), 3, **TINY_UNET), SegmentationLoss("dlce"), 3, soft_loss="mse")


def test_cached_probabilities_become_logits_with_the_same_softmax():
    p = np.array([[0.7, 0.2, 0.1, 0.0]], np.float16)
    # float16 rounding leaves the stored row summing to 1.0001; softmax renormalises it
    np.testing.assert_allclose(tf.nn.softmax(probs_to_logits(p)).numpy(), p.astype(np.float32), atol=2e-4)


def test_a_train_step_changes_the_student_and_never_the_teacher():
    x, y = phantom_arrays(4, 32)
    student = build_model("unet", (32, 32, 1), 4, **TINY_UNET)
    teacher = build_model("unet", (32, 32, 1), 4, base_filters=6, depth=2)
    before_s = [w.copy() for w in student.get_weights()]
    before_t = [w.copy() for w in teacher.get_weights()]  # BN moving stats included
    d = Distiller(student, SegmentationLoss("dlce"), 4, alpha=0.5, teacher=teacher)
    d.compile(optimizer=keras.optimizers.Adam(1e-2))
    logs = d.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert {"loss", "hard_loss", "soft_loss", "mean_fg_dice"} <= set(logs)
    assert logs["loss"][0] == pytest.approx(0.5 * logs["hard_loss"][0] + 0.5 * logs["soft_loss"][0], rel=1e-4)
    assert any(not np.array_equal(a, b) for a, b in zip(before_s, student.get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(before_t, teacher.get_weights()))
    assert d.evaluate(x, y, verbose=0, return_dict=True)["soft_loss"] >= 0


def test_qat_wrapped_student_trains_in_the_distiller():
    from lightseg_tf.models.qat import quantize_for_qat

    x, y = phantom_arrays(4, 32)
    probs = np.eye(4, dtype=np.float32)[y] * 0.9 + 0.025
    student = quantize_for_qat(build_model("lightseg_student", (32, 32, 1), 4, width=0.25))
    d = Distiller(student, SegmentationLoss("dlce"), 4)
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [w.numpy().copy() for w in student.trainable_weights]
    hist = d.fit(x, (y, probs), batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(hist["loss"][0])
    changed = [not np.array_equal(a, w.numpy()) for a, w in zip(before, student.trainable_weights)]
    assert len(changed) > 10 and all(changed), f"{changed.count(False)} of {len(changed)} weights did not train"


def test_soft_targets_move_with_the_mask_under_augmentation(phantom_dir):
    from lightseg_tf.data.tfdata import make_dataset
    from lightseg_tf.data.readers import read_dataset

    ds = read_dataset(phantom_dir)
    cfg = DataConfig(image_size=32, batch_size=4, augment=AugmentConfig(affine=1.0, hflip=0.5, elastic=0.5))

    def onehot(i):  # a "teacher" that is exactly the ground truth
        from lightseg_tf.data.tfdata import load_letterboxed

        return np.eye(ds.num_classes, dtype=np.float32)[load_letterboxed(ds, i, 32)[1]]

    x, (y, soft) = next(iter(make_dataset(ds, cfg, training=True, soft_targets=onehot)))
    assert x.shape == (4, 32, 32, 1) and y.shape == (4, 32, 32) and soft.shape == (4, 32, 32, ds.num_classes)
    np.testing.assert_allclose(soft.numpy().sum(-1), 1.0, atol=1e-6)
    assert (np.argmax(soft.numpy(), -1) == y.numpy()).mean() > 0.99


# --------------------------------------------------------------------------- end to end (CLI)

def _lightseg(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "lightseg_tf", *map(str, args)], cwd=cwd, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


TEACHER = ["data.image_size=32", "data.batch_size=4", "data.phantom_n=16", "train.epochs=2", "train.verbose=0",
           "data.augment.enabled=false", "model.name=unet"]


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory):
    """Two tiny U-Net teachers on one phantom split, and their cache with tuned weights."""
    root = tmp_path_factory.mktemp("kd")
    _lightseg("train", *TEACHER, "model.options={base_filters: 4, depth: 2}", "name=t1", f"run_root={root}", cwd=root)
    _lightseg("train", *TEACHER, "model.options={base_filters: 6, depth: 2}", "name=t2", f"run_root={root}",
              f"data.path={root / 't1' / 'phantom'}", f"data.split_file={root / 't1' / 'split.json'}", cwd=root)
    _lightseg("teachers", "predict", root / "t1", root / "t2", "--out", root / "cache", cwd=root)
    _lightseg("ensemble", "tune", "--cache", root / "cache", "--trials", "5", cwd=root)
    return root


@pytest.mark.slow
def test_teachers_predict_tune_and_distill_from_the_command_line(teacher_cache):
    root = teacher_cache
    manifest = json.loads((root / "cache" / "manifest.json").read_text())
    assert list(manifest["teachers"]) == ["t1", "t2"]
    split = json.loads((root / "t1" / "split.json").read_text())
    assert manifest["splits"]["val"] == split["val"]
    assert set(json.loads((root / "cache" / "ensemble_weights.json").read_text())["weights"]) == {"t1", "t2"}
    _lightseg("distill", "data.image_size=32", "data.batch_size=4", "train.epochs=1", "train.verbose=0",
              "model.name=lightseg_student", "model.options={width: 0.25}", f"distill.cache={root / 'cache'}",
              "name=student", f"run_root={root}", cwd=root)
    run = root / "student"
    assert (run / "best.keras").exists() and (run / "final.keras").exists()
    hist = json.loads((run / "history.json").read_text())
    assert {"hard_loss", "soft_loss", "val_soft_loss", "val_mean_fg_dice"} <= set(hist)
    assert json.loads((run / "split.json").read_text())["val"] == split["val"]
    student = keras.models.load_model(run / "best.keras", compile=False)
    assert student.name != "distiller" and student.output_shape[-1] == 4


@pytest.mark.slow
def test_a_cache_at_another_side_holds_the_teachers_answers_moved_there(teacher_cache):
    """A 32-px teacher cached for a 16-px student: its probabilities area-averaged with the content aligned."""
    from lightseg_tf.data.letterbox import letterbox_mask, letterbox_params, reletterbox_probs
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.training.teacher_cache import TeacherCache

    root = teacher_cache
    _lightseg("teachers", "predict", root / "t1", "--out", root / "cache16", "--size", "16", "--splits", "val",
              cwd=root)
    small, full = TeacherCache(root / "cache16"), TeacherCache(root / "cache")
    assert small.size == 16 and small.manifest["teachers"]["t1"]["input_size"] == 32
    got, ref = small.probs("t1", "val"), full.probs("t1", "val")
    dataset = read_dataset(root / "t1" / "phantom")
    ids = small.splits["val"]
    for k, record in enumerate(dataset.subset(ids).records):
        image, mask = dataset.load_pair(record)
        h, w = image.shape[:2]
        want = reletterbox_probs(ref[k], letterbox_params(h, w, 32), letterbox_params(h, w, 16))
        np.testing.assert_allclose(got[k], want, atol=2e-3)
        np.testing.assert_array_equal(small.labels("val")[k], letterbox_mask(mask, 16))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["optuna", "kerastuner"])
def test_two_trial_search_of_each_engine(teacher_cache, engine):
    root = teacher_cache
    out = _lightseg("tune", "--engine", engine, "--trials", "2", "--json", "data.image_size=32", "data.batch_size=4",
                    "model.name=lightseg_student", "model.options={width: 0.25}", f"distill.cache={root / 'cache'}",
                    "search.epochs=1", "search.algorithm=" + ("tpe" if engine == "optuna" else "random"),
                    "search.space={distill.alpha: {low: 0.2, high: 0.8}, model.options.width: {choices: [0.25, 0.5]}}",
                    f"name=search-{engine}", f"run_root={root}", cwd=root)
    result = json.loads(out)
    assert len([r for r in result["trials"] if r["value"] is not None]) == 2
    assert 0.2 <= result["best_params"]["distill.alpha"] <= 0.8
    best = load_config(result["best_config"])
    assert best.distill.alpha == pytest.approx(result["best_params"]["distill.alpha"])
    assert best.model.options["width"] == result["best_params"]["model.options.width"]
    assert (root / f"search-{engine}" / "trials.csv").exists()


@pytest.mark.slow
def test_a_killed_distillation_resumes_to_the_same_final_epoch_count(teacher_cache, tmp_path):
    import csv

    from lightseg_tf.training.distillation import distill

    class _StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt("killed")

    cfg = load_config(None, ["data.image_size=32", "data.batch_size=4", "train.epochs=3", "train.verbose=0",
                             "model.name=lightseg_student", "model.options={width: 0.25}",
                             f"distill.cache={teacher_cache / 'cache'}", "name=resumed", f"run_root={tmp_path}"])
    with pytest.raises(KeyboardInterrupt):
        distill(cfg, extra_callbacks=[_StopAt()])
    result = distill(cfg)
    with open(result.run_dir / "history.csv") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == [0, 1, 2]


def test_unlabelled_images_join_only_a_real_distillation_with_every_teacher_cached(caplog):
    from types import SimpleNamespace

    from lightseg_tf.config import DistillConfig
    from lightseg_tf.training.distillation import _unlabelled_sides

    files = {"a": {"files": {"train": {}, "unlabelled": {}}}, "b": {"files": {"train": {}, "unlabelled": {}}}}
    cache = SimpleNamespace(splits={"train": ["1"], "unlabelled": ["u1", "u2"]}, manifest={"teachers": files},
                            root="CACHE")
    assert _unlabelled_sides(DistillConfig(), cache, ["a", "b"]) == ["unlabelled"]
    assert _unlabelled_sides(DistillConfig(unlabelled=False), cache, ["a", "b"]) == []
    assert _unlabelled_sides(DistillConfig(alpha=1.0), cache, ["a", "b"]) == []  # labels only: no pseudo-labels
    del files["b"]["files"]["unlabelled"]
    assert _unlabelled_sides(DistillConfig(), cache, ["a", "b"]) == []
    assert "no probabilities of b for them" in caplog.text and "--splits unlabelled" in caplog.text
    assert _unlabelled_sides(DistillConfig(), SimpleNamespace(splits={"train": ["1"]}), ["a"]) == []
