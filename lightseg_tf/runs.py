"""Run directories: one folder per run holding its resolved config, logs and outputs."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import yaml

from lightseg_tf.config import Config, config_identity, dump_config
from lightseg_tf.errors import LightsegError
from lightseg_tf.io_utils import write_text_atomic

LOG = logging.getLogger("lightseg")


def open_run_dir(cfg: Config, run_dir: str | Path | None = None, allow_changes: bool = False) -> Path:
    """Create (or reopen, to resume) the run directory and write the resolved config.

    The default is ``{run_root}/{name}``, so rerunning the same command resumes the same run.
    Reopening a run whose stored config differs from ``cfg`` is an error naming the file:
    resuming with another config would mix two experiments in one folder. ``allow_changes``
    is for staged runs (``lightseg pipeline``), whose stage keys decide what a change redoes.
    """
    path = Path(run_dir) if run_dir else Path(cfg.run_root) / cfg.name
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


def _identity(stored: Path) -> dict | None:
    try:
        return config_identity(yaml.safe_load(stored.read_text()) or {})
    except yaml.YAMLError:
        return None


def attach_log_file(path: Path) -> None:
    """Send the ``lightseg`` logger to ``path`` (appending) and to stderr, once each."""
    LOG.setLevel(logging.DEBUG)  # DEBUG lines (per-epoch logs) go to the file only
    LOG.propagate = False  # TF installs a root handler; without this every line prints twice
    if not any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None) is sys.stderr
               for h in LOG.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("%(message)s"))
        console.setLevel(logging.INFO)
        LOG.addHandler(console)
    target = str(path.resolve())
    for h in list(LOG.handlers):
        if isinstance(h, logging.FileHandler):
            if h.baseFilename == target:
                return
            LOG.removeHandler(h)
            h.close()
    fh = logging.FileHandler(target)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(fh)
