"""The ``lightseg`` logger (one console handler on stderr, one log file per run) and the filter
that keeps TensorFlow's own console noise out of the CLI's output."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
from pathlib import Path
from typing import Iterator

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
    if not enabled:
        yield
        return
    import logging as _logging

    _logging.getLogger("tensorflow").setLevel(_logging.ERROR)  # before TF adds its handler
    sys.stderr.flush()
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
