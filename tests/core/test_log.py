"""Progress bars reach a person at a terminal, through the noise filter, and nothing else."""

import os
import pty
import subprocess
import sys

import pytest

from lightseg_tf.core.log import format_duration

BAR = ("from lightseg_tf.core.log import progress, quiet_native_stderr\n"
       "import time\n"
       "with quiet_native_stderr():\n"
       "    for _ in progress(range(3), 'bar-test', unit='step'):\n"
       "        time.sleep(0.05)\n")


def _stderr_of_bar(terminal: bool) -> str:
    if not terminal:
        return subprocess.run([sys.executable, "-c", BAR], capture_output=True, text=True, timeout=60,
                              check=True).stderr
    master, slave = pty.openpty()
    try:
        subprocess.run([sys.executable, "-c", BAR], stderr=slave, stdout=subprocess.DEVNULL, timeout=60, check=True)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the pty's other end is closed: all read
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    return out.decode()


def test_a_progress_bar_shows_on_a_terminal_and_never_in_a_pipe():
    shown = _stderr_of_bar(terminal=True)
    assert "bar-test:" in shown and "/3 [" in shown and "\r" in shown  # passed through the filter's pipe
    assert _stderr_of_bar(terminal=False) == ""


@pytest.mark.parametrize("seconds, text", [(0.04, "0.0 s"), (4.25, "4.2 s"), (42.4, "42 s"), (187.9, "3 min 07 s")])
def test_durations_read_at_their_scale(seconds, text):
    assert format_duration(seconds) == text
