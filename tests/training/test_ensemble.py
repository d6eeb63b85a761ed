"""Teacher cache, voting ensembles and the weight search, on synthetic caches."""

import json

import numpy as np
import pytest

from lightseg_tf.training.ensemble import (VoteProblem, build_ensemble_model, cross_validate_weights, majority_vote,
                                           vote_choice,
                                           mean_fg_dice_from_confusions, screen_teachers, soft_vote,
                                           summarise_confusions, tune_cache, tune_weights)
from lightseg_tf.errors import LightsegError
from lightseg_tf.objectives.metrics import score_image, summarise
from lightseg_tf.training.teacher_cache import CacheWriter, TeacherCache

C = 4


def _labels(n, size, rng):
    """Blocky label maps (8x8 tiles) so every class appears in most images."""
    tiles = rng.integers(0, C, (n, size // 8, size // 8))
    return tiles.repeat(8, 1).repeat(8, 2).astype(np.uint8)


def _perfect_and_noisy(n=12, size=32, seed=0):
    """Teacher 0 is right everywhere; teachers 1-3 are confidently wrong at random on 60% of pixels."""
    rng = np.random.default_rng(seed)
    labels = _labels(n, size, rng)
    probs = [np.eye(C, dtype=np.float32)[labels] * 0.9 + 0.1 / C]
    for _ in range(3):
        wrong = rng.random(labels.shape) < 0.6
        guess = np.where(wrong, rng.integers(0, C, labels.shape), labels)
        probs.append(np.eye(C, dtype=np.float32)[guess] * 0.9 + 0.1 / C)
    return [p.astype(np.float16) for p in probs], labels


def test_vote_shortcut_equals_voting_every_pixel():
    rng = np.random.default_rng(1)
    labels = _labels(6, 32, rng)
    probs = []
    for t in range(3):
        z = 3 * np.eye(C)[labels] + (t + 1) * rng.standard_normal(labels.shape + (C,))
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        probs.append(p.astype(np.float16))
    problem = VoteProblem(probs, labels, chunk=4)
    assert 0 < problem.disagreement < 1
    w = np.array([0.2, 0.5, 0.3])
    for method, pred in (("weighted", np.argmax(soft_vote(probs, w), -1)),
                         ("soft", np.argmax(soft_vote(probs), -1)),
                         ("majority", majority_vote(probs))):
        direct = summarise([score_image(p, y, C, surface=False) for p, y in zip(pred, labels)], list("bxyz"))
        fast = problem.confusions(method, w)
        assert mean_fg_dice_from_confusions(fast) == pytest.approx(direct["mean_fg_dice"], abs=1e-12)
        assert summarise_confusions(fast, list("bxyz"))["per_class"]["y"] == pytest.approx(direct["per_class"]["y"])


def test_majority_vote_ties_go_to_the_soft_vote_not_to_teacher_order():
    a = np.array([[0.6, 0.4, 0.0]])  # votes class 0
    b = np.array([[0.0, 0.9, 0.1]])  # votes class 1, more confidently
    assert majority_vote([a, b])[0] == 1 and majority_vote([b, a])[0] == 1
    c = np.array([[0.55, 0.45, 0.0]])
    assert majority_vote([a, c, b])[0] == 0  # a strict majority is never overturned


def test_search_gives_the_perfect_teacher_the_largest_weight_and_beats_plain_voting():
    probs, labels = _perfect_and_noisy()
    problem = VoteProblem(probs, labels)
    result = tune_weights(problem, trials=30, engine="optuna", seed=0)
    w = np.array(result["weights"])
    assert np.argmax(w) == 0 and w.sum() == pytest.approx(1.0)
    weighted = problem.mean_fg_dice("weighted", w)
    assert weighted > problem.mean_fg_dice("soft") + 0.05
    assert weighted > problem.mean_fg_dice("majority") + 0.05
    assert weighted == pytest.approx(result["mean_fg_dice"])
    assert len(result["trials"]) == 30 and result["trials"][0]["weights"] == [0.25] * 4  # equal weights first


def test_kerastuner_engine_searches_the_weights_too(tmp_path):
    probs, labels = _perfect_and_noisy(n=6)
    problem = VoteProblem(probs, labels)
    result = tune_weights(problem, trials=12, engine="kerastuner", seed=0, workdir=tmp_path)
    trials = result["trials"]
    assert len(trials) == 12 and trials[0]["weights"] == [0.25] * 4  # equal weights first, like optuna
    assert trials[0]["mean_fg_dice"] == pytest.approx(problem.mean_fg_dice("soft"))
    oracle = json.loads((tmp_path / "ensemble_weights" / "oracle.json").read_text())
    assert len(oracle["ongoing_trials"]) == 0 and len(list((tmp_path / "ensemble_weights").glob("trial_*"))) == 11
    assert len({tuple(t["weights"]) for t in trials}) >= 8  # the oracle proposes new points (it may repeat one)
    # It finds a vote led by the perfect teacher, better than plain soft voting. The GP oracle is
    # not reproducible run to run even with a seed: over 12 runs of 12 trials the gain was
    # 0.019-0.151 (with 6 trials it was sometimes 0), hence the loose bound.
    assert result["mean_fg_dice"] > problem.mean_fg_dice("soft") + 0.01 and np.argmax(result["weights"]) == 0


def _write_cache(root, probs, labels, names=("perfect", "n1", "n2", "n3")):
    n = len(labels)
    ids = [f"img{i:03d}" for i in range(n)]
    writer = CacheWriter(root, image_size=labels.shape[1], classes=["background", "a", "b", "c"],
                         splits={"train": ids[: n // 2], "val": ids[n // 2:], "test": []})
    for side, sl in (("train", slice(0, n // 2)), ("val", slice(n // 2, n))):
        writer.add_labels(side, labels[sl])
        for name, p in zip(names, probs):
            writer.add_probs(name, side, p[sl], source="synthetic")
    return root


def test_cache_round_trip_and_tune_writes_weights_and_table(tmp_path):
    probs, labels = _perfect_and_noisy(n=8)
    root = _write_cache(tmp_path / "cache", probs, labels)
    cache = TeacherCache(root)
    assert cache.teachers == ["perfect", "n1", "n2", "n3"] and cache.size == 32
    np.testing.assert_array_equal(cache.probs("n2", "val"), probs[2][4:])
    assert cache.probs("n2", "val").dtype == np.float16
    result = tune_cache(root, trials=15, engine="optuna")
    stored = json.loads((root / "ensemble_weights.json").read_text())
    assert max(stored["weights"], key=stored["weights"].get) == "perfect"
    rows = {r["model"]: r for r in stored["table"]}
    assert set(rows) == {"perfect", "n1", "n2", "n3", "soft voting", "majority voting", "weighted soft voting"}
    assert rows["weighted soft voting"]["mean_fg_dice"] > rows["soft voting"]["mean_fg_dice"]
    assert "| weighted soft voting |" in (root / "ensemble_table.md").read_text()
    assert result["weights"] == stored["weights"]
    # A teacher added later with TTA: the manifest says which views each teacher averaged.
    CacheWriter(root, image_size=32, classes=["background", "a", "b", "c"], splits=cache.splits).add_probs(
        "flipped", "val", probs[1][4:], source="synthetic", tta="flips")
    teachers = TeacherCache(root).manifest["teachers"]
    assert teachers["flipped"]["tta"] == "flips" and teachers["n1"]["tta"] == "none"


def test_corrupt_or_mismatched_cache_files_are_clear_errors(tmp_path):
    probs, labels = _perfect_and_noisy(n=4)
    root = _write_cache(tmp_path / "cache", probs, labels)
    with (root / "n1_val.npy").open("r+b") as f:  # flip bytes after the .npy header
        f.seek(-16, 2)
        f.write(b"\xff" * 16)
    with pytest.raises(LightsegError, match="SHA-256"):
        TeacherCache(root).probs("n1", "val")
    with pytest.raises(LightsegError, match="no teacher 'nope'"):
        TeacherCache(root).probs("nope", "val")
    with pytest.raises(LightsegError, match="expected"):
        CacheWriter(root, image_size=32, classes=["background", "a", "b", "c"],
                    splits=TeacherCache(root).splits).add_probs("x", "val", np.zeros((2, 16, 16, 4)))
    with pytest.raises(LightsegError, match="another split"):
        CacheWriter(root, image_size=32, classes=["background", "a", "b", "c"], splits={"train": ["z"], "val": []})
    with pytest.raises(LightsegError, match="not a teacher cache"):
        TeacherCache(tmp_path)


def test_ensemble_model_outputs_the_log_of_the_weighted_vote():
    import tf_keras as keras

    inp = keras.Input((8, 8, 1))
    m1 = keras.Model(inp, keras.layers.Conv2D(3, 1, name="a")(inp))
    m2 = keras.Model(inp, keras.layers.Conv2D(3, 1, name="b")(inp))
    ens = build_ensemble_model([m1, m2], [3, 1])
    x = np.random.default_rng(0).random((2, 8, 8, 1), dtype=np.float32)

    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    want = 0.75 * sm(m1.predict(x, verbose=0)) + 0.25 * sm(m2.predict(x, verbose=0))
    np.testing.assert_allclose(np.exp(ens.predict(x, verbose=0)), want, atol=1e-5)
    clone = keras.models.model_from_json(ens.to_json())
    assert clone.get_layer("weighted_soft_vote").vote_weights == [0.75, 0.25]


def test_a_subset_of_the_vote_problem_equals_the_problem_of_those_images():
    probs, labels = _perfect_and_noisy(n=8)
    whole = VoteProblem(probs, labels)
    pick = [1, 4, 6]
    direct = VoteProblem([p[pick] for p in probs], labels[pick])
    w = np.array([0.1, 0.5, 0.2, 0.2])
    np.testing.assert_array_equal(whole.subset(pick).confusions("weighted", w), direct.confusions("weighted", w))
    np.testing.assert_array_equal(whole.subset(pick).confusions("majority"), direct.confusions("majority"))


def test_a_teacher_that_fails_a_class_is_left_out_of_the_vote(tmp_path):
    probs, labels = _perfect_and_noisy(n=8)
    blind = np.asarray(probs[1], np.float32).copy()
    blind[..., 0] += blind[..., 3]  # never predicts class "c": it goes to the background
    blind[..., 3] = 0.0
    probs[1] = blind.astype(np.float16)
    problem = VoteProblem(probs, labels)
    out = screen_teachers(problem, ["perfect", "n1", "n2", "n3"], ["background", "a", "b", "c"], ratio=0.5)
    assert list(out) == ["n1"] and "c Dice 0.000" in out["n1"]
    assert screen_teachers(problem, ["perfect", "n1", "n2", "n3"], ["background", "a", "b", "c"], ratio=0) == {}
    root = _write_cache(tmp_path / "cache", probs, labels)
    result = tune_cache(root, trials=5, screen=0.5, folds=0)
    assert result["excluded"] == out and result["weights"]["n1"] == 0.0
    assert "Left out: n1" in (root / "ensemble_table.md").read_text()


def test_equal_weights_are_kept_unless_tuned_ones_win_on_held_out_folds(tmp_path):
    probs, labels = _perfect_and_noisy(n=12)
    cv = cross_validate_weights(VoteProblem(probs, labels), trials=15, folds=3)
    assert cv["tuned"] > cv["equal"]  # the perfect teacher is worth finding
    # two identical teachers: no weighting can beat equal, so equal is what ships
    same = [probs[1], probs[1].copy()]
    root = _write_cache(tmp_path / "cache", same, labels, names=("a", "b"))
    result = tune_cache(root, trials=10, folds=3, screen=0)
    assert result["cv"]["tuned"] == result["cv"]["equal"] and result["weights_from"] == "equal"
    assert result["weights"] == {"a": 0.5, "b": 0.5}
    assert result["cv"]["best_teacher"] == result["cv"]["equal"]  # a tie keeps the vote
    assert cross_validate_weights(VoteProblem(same, labels[:]).subset([0, 1, 2]), trials=3, folds=3) is None


def test_the_best_teacher_alone_replaces_a_vote_that_does_not_help(tmp_path, monkeypatch):
    """The check scores the teacher picked on the fit folds on the held-out ones; when it beats both
    votes there, the 'ensemble' is the teacher best on the whole split, with weight 1."""
    probs, labels = _perfect_and_noisy(n=12)
    cv = cross_validate_weights(VoteProblem(probs, labels), trials=3, folds=3)
    assert cv["best_teacher"] == pytest.approx(1.0)  # the perfect teacher, found on every fit part
    assert vote_choice({"folds": 3, "tuned": 0.7, "equal": 0.8, "best_teacher": 0.8}) == "equal"  # ties keep the vote
    assert vote_choice({"folds": 3, "tuned": 0.81, "equal": 0.8, "best_teacher": 0.805}) == "tuned"
    assert vote_choice({"folds": 3, "tuned": 0.81, "equal": 0.8, "best_teacher": 0.82}) == "best_teacher"
    # within the margin the equal vote stays: 0.7863 vs 0.7861 was noise in the demo (tuned lost on test)
    assert vote_choice({"folds": 3, "tuned": 0.7863, "equal": 0.7861, "best_teacher": 0.7785}) == "equal"
    assert vote_choice({"folds": 3, "tuned": 0.7863, "equal": 0.7861, "best_teacher": 0.7785}, margin=0) == "tuned"
    assert vote_choice({"folds": 3, "tuned": 0.79, "equal": 0.80, "best_teacher": 0.804}) == "equal"
    assert vote_choice(None) == "tuned"
    import lightseg_tf.training.ensemble as ensemble

    monkeypatch.setattr(ensemble, "cross_validate_weights",
                        lambda *a, **k: {"folds": 3, "tuned": 0.6, "equal": 0.7, "best_teacher": 0.9})
    root = _write_cache(tmp_path / "cache", probs, labels)
    result = tune_cache(root, trials=3, folds=3, screen=0)
    assert result["weights_from"] == "best_teacher"
    assert result["weights"] == {"perfect": 1.0, "n1": 0.0, "n2": 0.0, "n3": 0.0}
    assert "Weights: best teacher (3-fold held-out mean fg Dice on val: tuned 0.6000, equal 0.7000, best teacher " \
           "alone 0.9000)" in (root / "ensemble_table.md").read_text()
