"""The console holds the project's own lines: TensorFlow / absl / CUDA noise is filtered (shown with --debug)."""

import subprocess
import sys

from lightseg_tf.core.log import NOISE

TINY = ["data.image_size=32", "data.batch_size=4", "data.phantom_n=8", "train.epochs=1", "train.verbose=0",
        "model.options={base_filters: 4, depth: 2}"]


def _stderr(args, tmp_path):
    done = subprocess.run([sys.executable, "-m", "lightseg_tf", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stderr.splitlines()


def test_a_tiny_training_run_prints_no_tensorflow_lines(tmp_path):
    lines = _stderr(["train", *TINY, f"run_root={tmp_path}", "name=quiet"], tmp_path)
    noise = [line for line in lines if NOISE.match(line) or "tensorflow" in line.lower() or "cuda" in line.lower()]
    assert noise == []
    assert any("parameters" in line for line in lines)  # the project's own log lines still show


def test_debug_shows_what_the_filter_drops(tmp_path):
    lines = _stderr(["--debug", "models", "list", "--size", "32", "--only", "unet"], tmp_path)
    assert any(NOISE.match(line) for line in lines)
    quiet = _stderr(["models", "list", "--size", "32", "--only", "unet"], tmp_path)
    assert not any(NOISE.match(line) for line in quiet)
