"""The ``lightseg`` logger (one console handler on stderr, one log file per run), the filter
that keeps TensorFlow's own console noise out of the CLI's output, and progress bars."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterable, Iterator, TypeVar

LOG = logging.getLogger("lightseg")
T = TypeVar("T")

# Whether stderr was a terminal before quiet_native_stderr pointed file descriptor 2 at its
# pipe (after that, isatty() says no); None outside that block.
_stderr_was_terminal: bool | None = None


def attach_log_file(path: Path) -> None:
    """Send the ``lightseg`` logger to ``path`` (appending) and to stderr, once each.

    The previous run's log file is detached, unless ``path`` lies inside that run's folder: a
    run made inside another (a pipeline stage's training run) logs to both files.
    """
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
            if Path(target).is_relative_to(Path(h.baseFilename).parent):
                continue
            LOG.removeHandler(h)
            h.close()
    fh = logging.FileHandler(target)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    LOG.addHandler(fh)


@contextlib.contextmanager
def log_files_restored() -> Iterator[None]:
    """On leaving the block, log to the files it started with: the runs it opened stop logging."""
    before = [h.baseFilename for h in LOG.handlers if isinstance(h, logging.FileHandler)]
    try:
        yield
    finally:
        for h in list(LOG.handlers):
            if isinstance(h, logging.FileHandler) and h.baseFilename not in before:
                LOG.removeHandler(h)
                h.close()
        for name in before:
            attach_log_file(Path(name))


class _RenamePaths(logging.Filter):
    """Rewrites ``old`` into ``new`` in every record's message."""

    def __init__(self, pairs: dict[str, str]):
        super().__init__()
        self.pairs = pairs

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        for old, new in self.pairs.items():
            msg = msg.replace(old, new)
        record.msg, record.args = msg, None
        return True


@contextlib.contextmanager
def log_paths_renamed(old: Path, new: Path) -> Iterator[None]:
    """Log lines written in the block name folder ``new`` where they say ``old``.

    For a folder renamed ``old`` -> ``new`` when the block succeeds (a stage's in-progress
    folder), so the log names where the files will be, not a folder that is gone.

    Args:
        old: the folder the block writes into.
        new: the name it gets when the block ends.
    """
    rename = _RenamePaths({str(old): str(new), str(old.resolve()): str(new.resolve())})
    LOG.addFilter(rename)
    try:
        yield
    finally:
        LOG.removeFilter(rename)


def format_duration(seconds: float) -> str:
    """``"4.2 s"`` under 10 s, ``"42 s"`` under a minute, else ``"3 min 07 s"``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def console_is_terminal() -> bool:
    """Whether a person watches stderr (a terminal), also inside :func:`quiet_native_stderr`."""
    return sys.stderr.isatty() if _stderr_was_terminal is None else _stderr_was_terminal


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "img") -> Iterable[T]:
    """``items`` behind a tqdm bar on stderr when it is a terminal; ``items`` unchanged otherwise.

    The bar clears itself when the loop ends, so the console keeps only the log lines; piped
    output and log files never hold bars.

    Args:
        items: what the loop runs over.
        desc: the bar's label.
        total: the number of items, when ``items`` has no ``len``.
        unit: what one item is.

    Returns:
        An iterable over ``items``.
    """
    if not console_is_terminal():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, leave=False, file=sys.stderr, dynamic_ncols=True)


# Lines TensorFlow, absl, XLA and the CUDA stub print on their own: C++ log lines
# ("I0000 00:00:...", "E0000 ... cuInit"), absl's pre-initialisation notice and the Python
# deprecation warnings. They read like errors on a machine without a GPU and drown the
# project's own output, so the CLI drops them unless --debug.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IWEF]\d{4} [\d:. ]+\d+ \S+:\d+\]|"
    r"WARNING:tensorflow:|WARNING:absl:|Instructions for updating:|This API was designed for TensorFlow v1|"
    r"To enable the following instructions: |fully_quantize: |Could not find cuda drivers|"
    r"INFO: Created TensorFlow Lite XNNPACK delegate)")

NOISE_STARTS = {b"W", b"I", b"E", b"F", b"T", b"f", b"C"}  # first letters of NOISE's lines


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Filter :data:`NOISE` lines out of everything written to file descriptor 2 (C++ included).

    File descriptor 2 is pointed at a pipe that a thread reads and forwards line by line to the
    real stderr, dropping noise; everything else (the project's messages, tracebacks, progress
    bars) passes unchanged. A line continuing a dropped warning ("Instructions for updating:"
    and the line after it) is dropped with it.
    """
    global _stderr_was_terminal
    if not enabled:
        yield
        return
    import logging as _logging

    _logging.getLogger("tensorflow").setLevel(_logging.ERROR)  # before TF adds its handler
    sys.stderr.flush()
    was_terminal, _stderr_was_terminal = _stderr_was_terminal, os.isatty(2)
    saved = os.dup(2)
    read_fd, write_fd = os.pipe()
    os.dup2(write_fd, 2)
    os.close(write_fd)

    out = os.dup(saved)  # the pump's own copy: `saved` is closed when the block ends

    def pump():
        drop_next, buf = False, b""

        def emit(line: bytes) -> None:
            nonlocal drop_next
            text = line.decode("utf-8", "replace")
            if drop_next:
                drop_next = False
            elif NOISE.match(text):
                drop_next = text.startswith("Instructions for updating:")
            else:
                os.write(out, line)

        try:
            while chunk := os.read(read_fd, 65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    emit(line + b"\n")
                # A progress bar redraws its line with \r and no newline: pass it on now, unless
                # it may be the start of a noise line still being written.
                if buf and (b"\r" in buf or buf[:1] not in NOISE_STARTS):
                    os.write(out, buf)
                    buf = b""
            if buf:
                emit(buf)
        finally:
            os.close(read_fd)
            os.close(out)

    thread = threading.Thread(target=pump, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees EOF and finishes
        os.close(saved)
        thread.join(timeout=5)
        _stderr_was_terminal = was_terminal
