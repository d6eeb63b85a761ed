"""Ensembles of teachers: soft, weighted soft and majority voting, and the search of the weights.

Voting is computed on the teacher cache (:mod:`lightseg_tf.training.teacher_cache`), so a trial of the
weight search costs milliseconds. The speed comes from an exact shortcut: where every teacher's
argmax agrees on a class, any convex combination of their probabilities has that argmax too
(``p_k^t >= p_j^t`` for all t implies ``sum_t w_t p_k^t >= sum_t w_t p_j^t``), and so does the
majority vote. Those pixels' confusion counts are computed once; a trial only re-votes the
pixels where teachers disagree (a few percent once teachers are trained).

The weighted soft-voting ensemble of LightSeg (Alzubaidi et al., 2023) tunes one weight per
teacher on the simplex to maximise validation mean foreground Dice.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import write_json_atomic, write_text_atomic
from lightseg_tf.objectives.metrics import overlap_from_counts, summarise
from lightseg_tf.core.log import LOG

METHODS = ("soft", "weighted", "majority")


def normalise_weights(weights, n: int) -> np.ndarray:
    """Non-negative weights scaled to sum 1 (uniform when all are zero); float64 ``[n]``."""
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.size != n:
        raise LightsegError(f"{w.size} ensemble weights for {n} teachers")
    if (w < 0).any() or not np.isfinite(w).all():
        raise LightsegError(f"ensemble weights must be finite and >= 0, got {w.tolist()}")
    return w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)


def soft_vote(probs: list[np.ndarray] | np.ndarray, weights=None) -> np.ndarray:
    """Weighted mean of teacher probabilities ``[T, ..., C] -> [..., C]`` (float32).

    ``weights=None`` is plain soft voting (equal weights).
    """
    n = len(probs)
    w = normalise_weights(np.ones(n) if weights is None else weights, n)
    out = np.zeros(np.shape(probs[0]), np.float32)
    for wt, p in zip(w, probs):
        if wt:
            out += np.float32(wt) * np.asarray(p, np.float32)
    return out


def majority_vote(probs: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Per-pixel majority of the teachers' argmax ``[T, ..., C] -> [...]`` int.

    Ties (e.g. two teachers against two) go to the class with the higher soft vote among
    the tied ones, so the result never depends on teacher order.
    """
    c = np.shape(probs[0])[-1]
    votes = sum(np.eye(c, dtype=np.float32)[np.argmax(np.asarray(p), -1)] for p in probs)
    # Soft vote in [0, 1] breaks ties without ever overturning a strict majority (votes differ by >= 1).
    return np.argmax(votes + 0.5 * soft_vote(probs), axis=-1)


class VoteProblem:
    """Teachers' probabilities and labels of one split, prepared for fast repeated voting.

    Args:
        probs: per teacher, ``[N, H, W, C]`` probabilities (memory-mapped float16 is fine).
        labels: ``[N, H, W]`` class ids.
        chunk: images processed at a time while preparing (bounds memory).
    """

    def __init__(self, probs: list[np.ndarray], labels: np.ndarray, chunk: int = 16):
        if not probs:
            raise LightsegError("an ensemble needs at least one teacher")
        shapes = {tuple(p.shape) for p in probs}
        if len(shapes) != 1 or tuple(probs[0].shape[:3]) != tuple(labels.shape):
            raise LightsegError(f"teacher probabilities {sorted(shapes)} do not match labels {list(labels.shape)}")
        self.n_teachers = len(probs)
        n, h, w, c = probs[0].shape
        self.num_classes = c
        self.n_images = n
        self.fixed = np.zeros((n, c, c), np.int64)  # confusion (true, pred) of agreeing pixels
        d_probs, d_img, d_true = [], [], []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            block = [np.asarray(p[start:stop], np.float32).reshape(stop - start, h * w, c) for p in probs]
            arg = np.stack([np.argmax(b, -1) for b in block])  # [T, n, HW]
            agree = (arg == arg[0]).all(axis=0)
            true = np.asarray(labels[start:stop], np.int64).reshape(stop - start, h * w)
            img = np.broadcast_to(np.arange(start, stop)[:, None], true.shape)
            self.fixed += np.bincount((img[agree] * c + true[agree]) * c + arg[0][agree],
                                      minlength=n * c * c).reshape(n, c, c)
            d_probs.append(np.stack([b[~agree] for b in block]))  # [T, K, C]
            d_img.append(img[~agree])
            d_true.append(true[~agree])
        self.d_probs = np.concatenate(d_probs, axis=1)
        self.d_img = np.concatenate(d_img)
        self.d_true = np.concatenate(d_true)
        self.disagreement = self.d_img.size / float(n * h * w)

    def confusions(self, method: str = "weighted", weights=None) -> np.ndarray:
        """Per-image confusion matrices ``[N, C, C]`` (rows true, columns predicted) of a vote."""
        if method == "majority":
            pred = majority_vote(list(self.d_probs))
        elif method in ("soft", "weighted"):
            w = None if method == "soft" else weights
            pred = np.argmax(soft_vote(list(self.d_probs), w), -1)
        else:
            raise LightsegError(f"unknown voting method {method!r}; choose from {list(METHODS)}")
        c, n = self.num_classes, self.n_images
        flat = (self.d_img * c + self.d_true) * c + pred
        return self.fixed + np.bincount(flat, minlength=n * c * c).reshape(n, c, c)

    def subset(self, images) -> "VoteProblem":
        """The same problem restricted to ``images`` (indices into this one's images), renumbered."""
        images = np.asarray(images, np.int64)
        new_id = np.full(self.n_images, -1, np.int64)
        new_id[images] = np.arange(images.size)
        keep = new_id[self.d_img] >= 0
        out = object.__new__(VoteProblem)
        out.n_teachers, out.num_classes, out.n_images = self.n_teachers, self.num_classes, int(images.size)
        out.fixed = self.fixed[images]
        out.d_probs, out.d_img, out.d_true = self.d_probs[:, keep], new_id[self.d_img[keep]], self.d_true[keep]
        out.disagreement = self.disagreement
        return out

    def teacher_confusions(self, t: int) -> np.ndarray:
        """Confusion matrices of teacher ``t`` alone (one-hot weights)."""
        return self.confusions("weighted", np.eye(self.n_teachers)[t])

    def mean_fg_dice(self, method: str = "weighted", weights=None) -> float:
        """Mean over foreground classes of the per-image Dice (both-empty pairs skipped)."""
        return mean_fg_dice_from_confusions(self.confusions(method, weights))


def counts_from_confusions(cms: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per-image, per-class (tp, fp, fn, tn), each ``[N, C]``, from confusion matrices ``[N, C, C]``."""
    tp = np.diagonal(cms, axis1=1, axis2=2).astype(np.int64)
    fp = cms.sum(axis=1) - tp
    fn = cms.sum(axis=2) - tp
    tn = cms.sum(axis=(1, 2))[:, None] - tp - fp - fn
    return tp, fp, fn, tn


def mean_fg_dice_from_confusions(cms: np.ndarray) -> float:
    """The same number as ``summarise(...)["mean_fg_dice"]``, vectorised for search loops."""
    dice = overlap_from_counts(*counts_from_confusions(cms))["dice"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = np.nanmean(dice, axis=0)[1:]
    per_class = per_class[np.isfinite(per_class)]
    return float(per_class.mean()) if per_class.size else float("nan")


def summarise_confusions(cms: np.ndarray, classes: list[str]) -> dict:
    """:func:`lightseg_tf.objectives.metrics.summarise` of per-image confusion matrices (overlap metrics only)."""
    tp, fp, fn, tn = counts_from_confusions(cms)
    scores = []
    for i in range(len(cms)):
        counts = {"tp": tp[i], "fp": fp[i], "fn": fn[i], "tn": tn[i]}
        scores.append({**overlap_from_counts(tp[i], fp[i], fn[i], tn[i]), **counts})
    return summarise(scores, classes)


# ---------------------------------------------------------------------------------- search

def tune_weights(problem: VoteProblem, trials: int = 100, engine: str = "optuna", seed: int = 0,
                 workdir: str | Path | None = None) -> dict:
    """Bayesian search of the weighted soft-voting weights maximising mean foreground Dice.

    Each teacher gets a raw weight in [0, 1]; the vote uses them normalised onto the simplex.
    ``engine="optuna"`` uses Optuna's TPE sampler (Bergstra et al., NeurIPS 2011);
    ``engine="kerastuner"`` KerasTuner's BayesianOptimization oracle (a Gaussian process),
    which keeps its state in ``workdir``. Equal weights are always evaluated first, so the
    result is never worse than plain soft voting on the tuning split.

    Returns:
        ``{"weights": [T] normalised, "mean_fg_dice": best, "trials": [{"weights", "mean_fg_dice"}],
        "engine", "seconds"}``.
    """
    n = problem.n_teachers
    history: list[dict] = []

    def objective(raw) -> float:
        w = normalise_weights(raw, n)
        score = problem.mean_fg_dice("weighted", w)
        history.append({"weights": [round(float(x), 6) for x in w], "mean_fg_dice": score})
        return score

    t0 = time.perf_counter()
    if engine == "optuna":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        study.enqueue_trial({f"w{t}": 1.0 for t in range(n)})
        study.optimize(lambda tr: objective([tr.suggest_float(f"w{t}", 0.0, 1.0) for t in range(n)]),
                       n_trials=trials)
    elif engine == "kerastuner":
        # The oracle starts from random points, not from the hyperparameters' defaults: score
        # equal weights ourselves so the result can never fall below plain soft voting.
        objective([1.0] * n)
        if trials > 1:
            _kerastuner_search(objective, n, trials - 1, seed, workdir)
    else:
        raise LightsegError(f"unknown search engine {engine!r}; use optuna or kerastuner")
    best = max(history, key=lambda h: (np.nan_to_num(h["mean_fg_dice"], nan=-1.0)))
    return {"engine": engine, "weights": best["weights"], "mean_fg_dice": best["mean_fg_dice"],
            "trials": history, "seconds": round(time.perf_counter() - t0, 3)}


def _kerastuner_search(objective, n: int, trials: int, seed: int, workdir) -> None:
    """Drive KerasTuner's BayesianOptimization oracle with ``objective`` (no Keras model needed)."""
    import tempfile

    import keras_tuner as kt

    class _WeightTuner(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            return {"mean_fg_dice": objective([hp.Float(f"w{t}", 0.0, 1.0) for t in range(n)])}

    hps = kt.HyperParameters()
    for t in range(n):
        hps.Float(f"w{t}", 0.0, 1.0)
    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective("mean_fg_dice", "max"), max_trials=trials, hyperparameters=hps,
        num_initial_points=min(trials, max(2, n + 1)), seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        tuner = _WeightTuner(oracle=oracle, directory=str(workdir or tmp), project_name="ensemble_weights",
                             overwrite=True)
        tuner.search_space_summary = lambda *a, **k: None  # keep the CLI's output to our own table
        tuner.search(verbose=0)


def screen_teachers(problem: VoteProblem, teachers: list[str], classes: list[str],
                    ratio: float = 0.5) -> dict[str, str]:
    """Teachers that fail a class: ``{name: reason}`` for each whose Dice on some foreground class
    is below ``ratio`` x the best teacher's on that class (``ratio`` 0 screens nothing).

    A teacher that never learnt a small structure (Dice 0 on LV) only drags the soft vote's
    probability of that class down; the weight search can zero it on the tuning split, but with
    few validation images it may keep a little of it, and the student distils the failure.
    """
    if ratio <= 0 or len(teachers) < 2:
        return {}
    per_class = np.array([[summarise_confusions(problem.teacher_confusions(t), classes)["per_class"][c]["dice"]
                           for c in classes[1:]] for t in range(len(teachers))], np.float64)
    best = np.nanmax(per_class, axis=0)
    out = {}
    for t, name in enumerate(teachers):
        bad = [(c, per_class[t, i], best[i]) for i, c in enumerate(classes[1:])
               if best[i] > 0 and not per_class[t, i] >= ratio * best[i]]
        if bad:
            out[name] = "; ".join(f"{c} Dice {d:.3f} < {ratio:g} x best {b:.3f}" for c, d, b in bad)
    if len(out) == len(teachers):  # never screen everyone: keep the best on the mean
        out.pop(teachers[int(np.nanargmax(np.nanmean(per_class, axis=1)))])
    return out


def cross_validate_weights(problem: VoteProblem, trials: int, engine: str = "optuna", seed: int = 0,
                           folds: int = 3) -> dict | None:
    """K-fold check of tuned weights, equal weights and the best single teacher on images none was
    chosen on.

    The images are shuffled (``seed``) into ``folds`` parts; on all parts but one the weights are
    tuned and the best teacher (highest mean fg Dice) is picked, and the held-out part is voted
    with the tuned weights, with equal weights, and predicted by that teacher alone. The per-image
    confusions of all held-out parts are pooled into one mean foreground Dice per variant.

    Returns:
        ``{"folds", "tuned", "equal", "best_teacher"}`` (pooled held-out Dice), or None with fewer
        than 2 images per fold.
    """
    n = problem.n_images
    if folds < 2 or n < 2 * folds:
        return None
    order = np.random.default_rng(seed).permutation(n)
    cms: dict[str, list] = {"tuned": [], "equal": [], "best_teacher": []}
    for k in range(folds):
        held = np.sort(order[k::folds])
        fit = problem.subset(np.setdiff1d(order, held))
        w = tune_weights(fit, trials, engine, seed)["weights"]
        best = _best_teacher(fit)
        part = problem.subset(held)
        cms["tuned"].append(part.confusions("weighted", w))
        cms["equal"].append(part.confusions("soft"))
        cms["best_teacher"].append(part.teacher_confusions(best))
    return {"folds": folds, **{k: mean_fg_dice_from_confusions(np.concatenate(v)) for k, v in cms.items()}}


def _best_teacher(problem: VoteProblem) -> int:
    """Index of the teacher with the highest mean foreground Dice on ``problem``'s images."""
    return int(np.argmax([mean_fg_dice_from_confusions(problem.teacher_confusions(t))
                          for t in range(problem.n_teachers)]))


# Held-out mean fg Dice by which tuned weights or one teacher must beat the equal vote to replace
# it. The pooled held-out Dice of a few dozen validation images moves by a few tenths of a point
# with the images drawn: the demo's check once chose tuned weights for 0.7863 vs 0.7861, and they
# scored 0.768 on test where the equal vote scored 0.772 (docs/BENCHMARKS.md, issue 18).
CHOICE_MARGIN = 0.005


def vote_choice(cv: dict | None, margin: float = CHOICE_MARGIN) -> str:
    """What the ensemble stage uses, from :func:`cross_validate_weights`: ``"equal"`` weights (the
    regularised vote) unless ``"tuned"`` ones beat them on held-out folds by more than ``margin``,
    and ``"best_teacher"`` alone when it beats the chosen vote there by more than ``margin`` (a
    vote is only worth distilling when it helps); ``"tuned"`` without a check."""
    if cv is None:
        return "tuned"
    vote = "tuned" if cv["tuned"] > cv["equal"] + margin else "equal"
    return "best_teacher" if cv["best_teacher"] > cv[vote] + margin else vote


# --------------------------------------------------------------------------------- reports

def ensemble_table(problem: VoteProblem, teachers: list[str], classes: list[str], weights) -> list[dict]:
    """One row per teacher and per ensemble: mean foreground Dice/IoU and per-class Dice/IoU."""
    rows = []
    variants = [(name, problem.teacher_confusions(t)) for t, name in enumerate(teachers)]
    variants += [("soft voting", problem.confusions("soft")), ("majority voting", problem.confusions("majority")),
                 ("weighted soft voting", problem.confusions("weighted", weights))]
    for name, cms in variants:
        s = summarise_confusions(cms, classes)
        row = {"model": name, "mean_fg_dice": s["mean_fg_dice"], "mean_fg_iou": s["mean_fg_iou"]}
        for cname in classes[1:]:
            row[f"{cname}_dice"] = s["per_class"][cname]["dice"]
            row[f"{cname}_iou"] = s["per_class"][cname]["iou"]
        rows.append(row)
    return rows


def table_markdown(rows: list[dict]) -> str:
    """Rows of :func:`ensemble_table` as a markdown table (values in percent)."""
    keys = [k for k in rows[0] if k != "model"]
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for r in rows:
        cells = ["-" if r[k] is None else f"{100 * r[k]:.2f}" for k in keys]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tune_cache(cache_dir: str | Path, trials: int = 100, engine: str = "optuna", teachers=(), split: str = "val",
               seed: int = 0, out: str | Path | None = None, report_split: str | None = None,
               screen: float = 0.5, folds: int = 3, margin: float = CHOICE_MARGIN) -> dict:
    """Tune the weights on a teacher cache and write ``ensemble_weights.json`` + ``ensemble_table.md``.

    Teachers that fail a class on ``split`` are left out of the vote (:func:`screen_teachers`,
    ``screen`` 0 keeps all). The weights of the others are searched on ``split``, but used only
    if ``folds``-fold cross-validation shows tuned weights beating equal ones on held-out
    images by more than ``margin`` (:func:`cross_validate_weights`): a few validation images let a search fit their
    noise (a demo run put 0.994 on one of two teachers and lost to that teacher on test), and
    equal weights are the regularised choice it must beat. When the best teacher alone beats
    both votes on the held-out folds, it is the "ensemble" (weight 1): a vote of one good and
    one weaker teacher can sit below the good one (:func:`vote_choice`). The table of each teacher vs the
    three votes is computed on ``report_split`` (default: ``test`` when the cache holds it, else
    ``split``), so the weighted ensemble is not judged on the images its weights were fitted to.

    Returns:
        The written result: teachers, weights, engine, splits, the search trials and the table,
        ``excluded`` (teacher -> reason), ``cv`` (held-out Dice of tuned weights, equal weights
        and the best teacher alone) and ``weights_from`` ("tuned", "equal" or "best_teacher").
    """
    from lightseg_tf.training.teacher_cache import TeacherCache

    cache = TeacherCache(cache_dir)
    names = cache.select(list(teachers))
    t0 = time.perf_counter()
    probs = [cache.probs(t, split) for t in names]
    labels = cache.labels(split)
    problem = VoteProblem(probs, labels)
    prep = time.perf_counter() - t0
    LOG.info("%d teachers on %d %s images; they disagree on %.2f%% of pixels", len(names), problem.n_images,
             split, 100 * problem.disagreement)
    excluded = screen_teachers(problem, names, cache.classes, screen)
    for name, why in excluded.items():
        LOG.warning("teacher %s left out of the vote: %s", name, why)
    kept = [t for t, name in enumerate(names) if name not in excluded]
    voters = problem if not excluded else VoteProblem([probs[t] for t in kept], labels)
    out = Path(out or cache_dir)
    search = tune_weights(voters, trials, engine, seed, workdir=out / "kerastuner")
    cv = cross_validate_weights(voters, trials, engine, seed, folds) if len(kept) > 1 else None
    choice = vote_choice(cv, margin)
    if choice == "tuned":
        kept_w = search["weights"]
    elif choice == "equal":
        kept_w = normalise_weights(np.ones(len(kept)), len(kept)).tolist()
    else:
        kept_w = np.eye(len(kept))[_best_teacher(voters)].tolist()
    weights = [0.0] * len(names)
    for t, w in zip(kept, kept_w):
        weights[t] = float(w)
    if cv is not None:
        LOG.info("weights cross-validated on %d folds of %s: tuned %.4f vs equal %.4f vs the best teacher alone "
                 "%.4f held-out mean fg Dice -> %s", cv["folds"], split, cv["tuned"], cv["equal"],
                 cv["best_teacher"], choice.replace("_", " "))
    if report_split is None:
        has_test = bool(cache.splits.get("test")) and all(
            "test" in cache.manifest["teachers"][t]["files"] for t in names)
        report_split = "test" if has_test else split
    shown = problem if report_split == split else VoteProblem([cache.probs(t, report_split) for t in names],
                                                               cache.labels(report_split))
    rows = ensemble_table(shown, names, cache.classes, weights)
    result = {"teachers": names, "weights": dict(zip(names, weights)), "split": split,
              "table_split": report_split, "engine": engine, "trials": trials,
              "mean_fg_dice": problem.mean_fg_dice("weighted", weights), "excluded": excluded, "cv": cv,
              "weights_from": choice, "prepare_seconds": round(prep, 3),
              "search_seconds": search["seconds"], "disagreement": problem.disagreement, "table": rows,
              "history": search["trials"]}
    write_json_atomic(out / "ensemble_weights.json", result)
    notes = "".join(f"Left out: {name} ({why}).\n" for name, why in excluded.items())
    if cv is not None:
        notes += (f"Weights: {choice.replace('_', ' ')} ({cv['folds']}-fold held-out mean fg Dice on {split}: "
                  f"tuned {cv['tuned']:.4f}, equal {cv['equal']:.4f}, best teacher alone {cv['best_teacher']:.4f}).\n")
    write_text_atomic(out / "ensemble_table.md", f"Tuned on {split}, scored on {report_split}.\n{notes}\n"
                      + table_markdown(rows) + "\n")
    return result


def load_weights(path: str | Path, teachers: list[str]) -> np.ndarray:
    """Normalised weights for ``teachers`` from an ``ensemble_weights.json`` (missing ones weigh 0)."""
    path = Path(path)
    try:
        stored = json.loads(path.read_text())["weights"]
    except (OSError, ValueError, KeyError) as exc:
        raise LightsegError(f"{path}: cannot read ensemble weights ({exc}); run `lightseg ensemble tune`") from None
    return normalise_weights([float(stored.get(t, 0.0)) for t in teachers], len(teachers))


def build_ensemble_model(models: list, weights=None, name: str = "ensemble"):
    """One Keras model: the weighted soft vote of ``models`` (each emitting logits).

    Outputs the log of the weighted mean probability, so it behaves as logits everywhere
    (argmax = the vote, softmax = the vote's probabilities) and can serve as an online teacher.
    """
    import tf_keras as keras

    from lightseg_tf.models.blocks import WeightedSoftVote

    w = normalise_weights(np.ones(len(models)) if weights is None else weights, len(models))
    inp = keras.Input(models[0].input_shape[1:], name="image")
    logits = [m(inp, training=False) for m in models]
    out = WeightedSoftVote(vote_weights=[float(x) for x in w], name="weighted_soft_vote")(logits)
    return keras.Model(inp, out, name=name)
