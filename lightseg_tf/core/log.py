"""The ``lightseg`` logger: one console handler (stderr) and one log file per run."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

LOG = logging.getLogger("lightseg")


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
