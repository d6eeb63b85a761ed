"""Hyperparameter search: each trial is a short training (or, with ``distill.cache``, distillation) run.

The search space is ``cfg.search.space``: dotted config keys mapped to ``{low, high[, log]}``
or ``{choices: [...]}``. Two engines, each with its own resume and distribution mechanism:

- **Optuna** (TPE or random sampler): trials live in an RDB storage (``search.storage``, default
  a SQLite file in the run directory). Any number of processes, on one machine or several,
  running the same command with the same storage URL share the study; a rerun resumes it and
  a trial whose process died is marked failed by heartbeat and retried once.
- **KerasTuner** (BayesianOptimization or Hyperband oracle): state is in ``RUN/kerastuner``; a
  rerun reloads it. For several processes, KerasTuner's chief/worker mode is configured by
  environment variables, exactly as its docs say: the chief has ``KERASTUNER_TUNER_ID=chief``,
  workers ``tuner0``, ``tuner1``...; all share ``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT``.

Each trial's run directory is ``RUN/trials/<id>``; the table of trials (CSV + markdown) and the
best config (YAML, ready for ``lightseg train`` / ``lightseg distill``) go to the run directory.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

from lightseg_tf.config import Config, dump_config, with_overrides
from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import atomic_path, write_json_atomic, write_text_atomic
from lightseg_tf.core.log import LOG
from lightseg_tf.runs import open_run_dir


def _check_space(space: dict[str, dict[str, Any]]) -> None:
    for key, spec in space.items():
        if "choices" in spec:
            if not spec["choices"]:
                raise LightsegError(f"search.space.{key}: empty choices")
        elif not {"low", "high"} <= set(spec) or not spec["low"] < spec["high"]:
            raise LightsegError(f"search.space.{key}: give {{low, high}} with low < high, or {{choices: [...]}}")


def _is_int_range(spec) -> bool:
    return isinstance(spec["low"], int) and isinstance(spec["high"], int) and not spec.get("log")


def trial_config(cfg: Config, params: dict[str, Any], trial_id: str, epochs: int | None = None) -> Config:
    """The config of one trial: ``cfg`` with ``params`` applied, its own name, quiet output."""
    values = dict(params)
    values["train.epochs"] = int(epochs or cfg.search.epochs)
    values["name"] = f"{cfg.name}-{trial_id}"
    values["train.verbose"] = 0
    return with_overrides(cfg, values)


def run_trial(cfg: Config, run_dir: Path) -> float:
    """Train or distil ``cfg`` in ``run_dir``; returns the best validation mean foreground Dice."""
    import tf_keras as keras

    from lightseg_tf.runs import MONITOR

    keras.backend.clear_session()
    if cfg.distill.cache:
        from lightseg_tf.training.distillation import distill

        result = distill(cfg, run_dir)
    else:
        from lightseg_tf.training.trainer import train

        result = train(cfg, run_dir)
    values = [v for v in result.history.get(MONITOR, []) if math.isfinite(v)]
    return max(values) if values else 0.0


def tune(cfg: Config, run_dir: str | Path | None = None) -> dict:
    """Run (or resume) the search ``cfg.search``; returns the best trial and the table.

    Returns:
        ``{"best_value", "best_params", "best_config" (path), "trials" (rows), "table_md"}``.
    """
    sc = cfg.search
    _check_space(sc.space)
    run = open_run_dir(cfg, run_dir)
    (run / "trials").mkdir(exist_ok=True)
    if sc.engine == "optuna":
        rows = _optuna(cfg, run)
    elif sc.engine == "kerastuner":
        rows = _kerastuner(cfg, run)
    else:
        raise LightsegError(f"unknown search engine {sc.engine!r}; use optuna or kerastuner")
    if rows is None:  # a KerasTuner worker: the chief keeps the record and writes the results
        return {"engine": sc.engine, "worker": os.environ.get("KERASTUNER_TUNER_ID"), "trials": []}
    done = [r for r in rows if r["value"] is not None]
    if not done:
        raise LightsegError(f"{run}: no trial finished; see {run / 'log.txt'}")
    best = max(done, key=lambda r: r["value"])
    best_cfg = with_overrides(cfg, {**best["params"], "name": f"{cfg.name}-best"})
    write_text_atomic(run / "best_config.yaml", dump_config(best_cfg))
    table = _write_table(run, rows)
    result = {"engine": sc.engine, "algorithm": sc.algorithm, "best_value": best["value"],
              "best_params": best["params"], "best_trial": best["trial"],
              "best_config": str(run / "best_config.yaml"), "trials": rows, "table_md": table}
    write_json_atomic(run / "search.json", result)
    return result


def _write_table(run: Path, rows: list[dict]) -> str:
    keys = sorted({k for r in rows for k in r["params"]})
    with atomic_path(run / "trials.csv") as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["trial", "state", "val_mean_fg_dice", *keys])
        for r in rows:
            w.writerow([r["trial"], r["state"], r["value"], *(r["params"].get(k) for k in keys)])
    lines = ["| trial | state | val mean fg Dice | " + " | ".join(keys) + " |", "|---|---|---|" + "---|" * len(keys)]
    for r in sorted(rows, key=lambda r: -(r["value"] if r["value"] is not None else -1)):
        v = "-" if r["value"] is None else f"{r['value']:.4f}"
        cells = [(f"{x:.4g}" if isinstance(x, float) else str(x)) for x in (r["params"].get(k) for k in keys)]
        lines.append(f"| {r['trial']} | {r['state']} | {v} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    write_text_atomic(run / "trials.md", table + "\n")
    return table


# ------------------------------------------------------------------------------------ optuna

def _optuna(cfg: Config, run: Path) -> list[dict]:
    import optuna

    sc = cfg.search
    storage = _optuna_storage(sc.storage or f"sqlite:///{(run / 'optuna.db').resolve()}")
    # Workers sharing a study must not share a sampler seed, or they propose the same values.
    seed = sc.seed if not sc.storage else (sc.seed * 1_000_003 + os.getpid()) % 2**31
    sampler = (optuna.samplers.RandomSampler(seed=seed) if sc.algorithm == "random"
               else optuna.samplers.TPESampler(seed=seed))
    if sc.algorithm not in ("tpe", "random"):
        raise LightsegError(f"search.algorithm {sc.algorithm!r} is a KerasTuner one; Optuna takes tpe or random")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=sampler, direction="maximize",
                                load_if_exists=True)

    def objective(trial):
        params = {}
        for key, spec in sc.space.items():
            if "choices" in spec:
                params[key] = trial.suggest_categorical(key, list(spec["choices"]))
            elif _is_int_range(spec):
                params[key] = trial.suggest_int(key, spec["low"], spec["high"])
            else:
                params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                                  log=bool(spec.get("log")))
        tid = f"optuna_{trial.number:04d}"
        LOG.info("trial %s: %s", tid, params)
        return run_trial(trial_config(cfg, params, tid), run / "trials" / tid)

    # A shared study counts every worker's trials: stop once the total reaches search.trials.
    remaining = sc.trials - len([t for t in study.trials if t.state.is_finished()])
    if remaining > 0:
        study.optimize(objective, callbacks=[optuna.study.MaxTrialsCallback(
            sc.trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))])
    return [{"trial": f"optuna_{t.number:04d}", "state": t.state.name.lower(), "value": t.value,
             "params": dict(t.params)} for t in study.trials]


def _optuna_storage(url: str, attempts: int = 5):
    """The RDB storage; a worker that races another creating the tables retries (SQLite has no
    transactional schema creation across processes), a trial whose process died is retried once."""
    import time

    import sqlalchemy.exc
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    for attempt in range(attempts):
        try:
            return RDBStorage(url, heartbeat_interval=30, grace_period=120,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


# -------------------------------------------------------------------------------- kerastuner

def _kerastuner(cfg: Config, run: Path) -> list[dict] | None:
    import keras_tuner as kt

    sc = cfg.search
    hps = kt.HyperParameters()
    for key, spec in sc.space.items():
        if "choices" in spec:
            hps.Choice(key, list(spec["choices"]))
        elif _is_int_range(spec):
            hps.Int(key, spec["low"], spec["high"])
        else:
            hps.Float(key, float(spec["low"]), float(spec["high"]), sampling="log" if spec.get("log") else "linear")
    objective = kt.Objective("val_mean_fg_dice", "max")
    if sc.algorithm == "hyperband":
        oracle = kt.oracles.HyperbandOracle(objective, max_epochs=sc.epochs, factor=3, hyperband_iterations=1,
                                            hyperparameters=hps, seed=sc.seed, max_retries_per_trial=0)
    elif sc.algorithm in ("bayesian", "tpe"):
        oracle = kt.oracles.BayesianOptimizationOracle(objective, max_trials=sc.trials, hyperparameters=hps,
                                                       seed=sc.seed, num_initial_points=min(sc.trials, 3))
    else:
        oracle = kt.oracles.RandomSearchOracle(objective, max_trials=sc.trials, hyperparameters=hps, seed=sc.seed)

    class _RunTuner(kt.Tuner):
        """Each trial is a lightseg run; KerasTuner only proposes the values and keeps the record."""

        def run_trial(self, trial, *args, **kwargs):
            values = trial.hyperparameters.values
            params = {k: values[k] for k in sc.space if k in values}
            epochs = values.get("tuner/epochs")  # Hyperband's budget for this trial
            tid = f"kt_{trial.trial_id}"
            LOG.info("trial %s: %s", tid, params)
            return {"val_mean_fg_dice": run_trial(trial_config(cfg, params, tid, epochs), run / "trials" / tid)}

    tuner = _RunTuner(oracle=oracle, directory=str(run), project_name="kerastuner", overwrite=False)
    if sc.algorithm == "hyperband" and sc.trials:
        LOG.info("hyperband: the number of trials follows from search.epochs (max epochs), not search.trials")
    tuner.search(verbose=0)
    if os.environ.get("KERASTUNER_ORACLE_IP") and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        return None
    rows = []
    for trial in tuner.oracle.trials.values():
        values = trial.hyperparameters.values
        rows.append({"trial": f"kt_{trial.trial_id}", "state": str(trial.status).lower(),
                     "value": trial.score, "params": {k: values[k] for k in sc.space if k in values}})
    return rows
