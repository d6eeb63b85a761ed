"""Run directories: one folder per run holding its resolved config, logs, history and models.

What every later stage reads from a run lives here: its config, dataset and split
(:func:`open_run`), its history, and the names and atomic saving of its models.
"""

from __future__ import annotations

import csv
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from lightseg_tf.config import Config, DataConfig, config_identity, dump_config, load_config
from lightseg_tf.core.io import read_json_file, write_text_atomic
from lightseg_tf.core.log import LOG, attach_log_file
from lightseg_tf.data.dataset import SegDataset
from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.split import load_split
from lightseg_tf.errors import LightsegError

if TYPE_CHECKING:
    import tf_keras as keras

# The checkpoint criterion: validation mean foreground Dice.
MONITOR = "val_mean_fg_dice"
BEST_MODEL = "best.keras"
FINAL_MODEL = "final.keras"
# The confidence threshold calibrated on the run's VAL split (`lightseg calibrate RUN`).
CONFIDENCE_FILE = "confidence.json"


def open_run_dir(cfg: Config, run_dir: str | Path | None = None, allow_changes: bool = False) -> Path:
    """Create (or reopen, to resume) the run directory and write the resolved config.

    The default is ``{run_root}/{name}``, so rerunning the same command resumes the same run.
    Reopening a run whose stored config differs from ``cfg`` is an error naming the file:
    resuming with another config would mix two experiments in one folder. ``allow_changes``
    is for staged runs (``lightseg pipeline``), whose stage keys decide what a change redoes.
    """
    path = run_path(cfg, run_dir)
    path.mkdir(parents=True, exist_ok=True)
    text = dump_config(cfg)
    stored = path / "config.yaml"
    if stored.exists() and not allow_changes and _identity(stored) != config_identity(cfg):
        raise LightsegError(
            f"{stored}: this run directory holds a run with another config; "
            "choose another name= / --run-dir, or delete the folder to start over"
        )
    write_text_atomic(stored, text)
    attach_log_file(path / "log.txt")
    return path


def run_path(cfg: Config, run_dir: str | Path | None = None) -> Path:
    """The run directory a config names (``run_dir``, else ``{run_root}/{name}``); nothing is created."""
    return Path(run_dir) if run_dir else Path(cfg.run_root) / cfg.name


def _identity(stored: Path) -> dict | None:
    try:
        return config_identity(yaml.safe_load(stored.read_text()) or {})
    except yaml.YAMLError:
        return None


def resolve_dataset(cfg: DataConfig, run_dir: Path, create: bool = True) -> SegDataset:
    """The configured dataset, or the phantom inside the run directory when no path is set.

    ``create`` makes the phantom when it is missing (a new run); reading a finished run passes
    False, so opening a run never writes into it.
    """
    if cfg.path:
        return read_dataset(cfg.path, cfg.format)
    target = run_dir / "phantom"
    if not (target / "dataset.json").exists():
        if not create:
            raise LightsegError(f"{target}: the run's phantom data is missing; rerun the training command "
                                f"(it rewrites the same phantom) or set data.path")
        LOG.info("no data.path: writing %d phantom images to %s", cfg.phantom_n, target)
        write_phantom_dataset(target, cfg.phantom_n, size=max(cfg.image_size, 128), seed=cfg.phantom_seed,
                              unlabelled=cfg.phantom_unlabelled)
    return read_dataset(target, "lightseg")


def best_so_far(history_csv: Path, before_epoch: int | None = None) -> float | None:
    """Highest monitored value in an existing history (so a resumed run keeps its best).

    Only epochs before ``before_epoch`` count when it is given: later rows belong to epochs a
    killed run logged but did not back up, which the resumed run trains again.
    """
    hist = read_history(history_csv)
    values = [v for e, v in zip(hist.get("epoch", []), hist.get(MONITOR, []))
              if (before_epoch is None or e < before_epoch) and v == v]
    return max(values) if values else None


def read_history(history_csv: Path) -> dict[str, list[float]]:
    """The CSV history as ``{column: [values per epoch]}``, one row per epoch (last wins)."""
    if not history_csv.exists():
        return {}
    rows: dict[int, dict] = {}
    with history_csv.open() as f:
        for r in csv.DictReader(f):
            rows[int(r["epoch"])] = r
    cols = [c for c in (next(iter(rows.values())).keys() if rows else []) if c != "epoch"]
    ordered = [rows[k] for k in sorted(rows)]
    return {"epoch": sorted(rows), **{c: [float(r[c]) for r in ordered] for c in cols}}


def read_confidence(run_dir: str | Path) -> dict | None:
    """The run's calibrated confidence (``confidence.json``: score, threshold, calibrated_on, ...);
    None when the run has not been calibrated."""
    path = Path(run_dir) / CONFIDENCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LightsegError(f"{path}: not valid JSON ({exc}); rerun lightseg calibrate") from None


def calibrated_tta(calibration: dict) -> str:
    """The test-time augmentation a ``confidence.json`` was calibrated with ("none" when it says none:
    calibrations before TTA existed were all without)."""
    return (calibration.get("calibrated_on") or {}).get("tta") or "none"


def save_model_atomic(model: keras.Model, path: str | Path) -> None:
    """Save a model to ``path`` (.keras or .h5) through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with warnings.catch_warnings():
            # .h5 is chosen on purpose (QAT models reload only from it): Keras' "legacy format" nag is noise.
            warnings.filterwarnings("ignore", message="You are saving your model as an HDF5 file")
            model.save(str(tmp))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class RunData:
    """A finished run's config, dataset and split, as later stages (QAT, export) need them."""

    run_dir: Path
    cfg: Config
    dataset: SegDataset
    split: dict[str, list[str]]

    def part(self, side: str) -> SegDataset:
        return self.dataset.subset(self.split[side])


def is_pipeline_run(path: str | Path) -> bool:
    """Whether ``path`` is a ``lightseg pipeline`` run directory (it holds ``stages/``)."""
    return (Path(path) / "stages").is_dir()


def pipeline_model(run: str | Path) -> Path:
    """The model a ``lightseg pipeline`` run shipped: its export stage's int8 ``.tflite`` (else the first).

    The export stage's record is read, not ``pipeline.json``: that summary is written only when
    every stage has finished, while a run stopped in a later stage (clinic, report) already has
    its model.

    Args:
        run: the pipeline's run directory (the one it prints at the end).

    Returns:
        The ``.tflite`` path inside ``run/stages/export`` (resolved there: the run folder may have moved).

    Raises:
        LightsegError: the run has not reached its export stage yet.
    """
    run = Path(run)
    record = run / "stages" / "export" / "done.json"
    if not record.is_file():
        raise LightsegError(f"{run}: no exported model in this run yet ({record} is missing): a `lightseg "
                            "pipeline` run has one once its export stage is done, so resume it with the same "
                            "command; from a `lightseg study` pass one of its stages/models/NAME runs")
    files = (read_json_file(record, "export stage record").get("results") or {}).get("files") or {}
    if not files:
        raise LightsegError(f"{record}: lists no exported model; re-run `lightseg pipeline ... --from export`")
    return record.parent / Path(files.get("int8") or next(iter(files.values()))).name


def run_split_file(path: str | Path) -> Path | None:
    """The split file of a run directory: a training run's ``split.json``, a ``lightseg pipeline``
    run's ``stages/data/split.json`` (the one split all its stages share); None for a model file."""
    path = Path(path)
    if not path.is_dir():
        return None
    return path / "stages" / "data" / "split.json" if is_pipeline_run(path) else path / "split.json"


def pipeline_run_message(run: Path) -> str:
    """What to pass instead of a ``lightseg pipeline`` run directory where a training run is needed.

    Names the training runs inside it (``stages/<stage>/<name>/`` with a ``split.json``) and
    its shipped model, so the user can pick one.
    """
    runs = sorted(p.parent.relative_to(run).as_posix() for p in (run / "stages").glob("*/*/split.json"))
    inside = f"its training runs are {', '.join(runs)}" if runs else "it holds no finished training run yet"
    try:
        model = f"; its shipped model is {pipeline_model(run).relative_to(run).as_posix()}"
    except LightsegError:  # not exported yet
        model = ""
    return (f"{run}: a `lightseg pipeline` run directory, not one training run: {inside} (under {run}){model}. "
            "Pass one of those")


def open_run(run: str | Path) -> RunData:
    """Read a run directory made by ``train`` / ``distill`` (config, data, split)."""
    run = Path(run)
    if is_pipeline_run(run) and not (run / "split.json").is_file():
        raise LightsegError(pipeline_run_message(run))
    if not (run / "config.yaml").is_file():
        raise LightsegError(f"{run}: not a run directory (no config.yaml); pass the folder `lightseg train` made")
    cfg = load_config(run / "config.yaml")
    dataset = resolve_dataset(cfg.data, run, create=False)
    return RunData(run, cfg, dataset, load_split(run / "split.json", dataset))
