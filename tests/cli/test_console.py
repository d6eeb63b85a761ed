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
    return done.stderr.split("\n")  # not splitlines(): a progress bar's \r must stay visible


def test_a_tiny_training_run_prints_no_tensorflow_lines(tmp_path):
    # mixed_float16 without a GPU: Keras' multi-line "may run slowly" warning becomes one project line
    lines = _stderr(["train", *TINY, "train.epochs=3", "train.mixed_precision=float16", f"run_root={tmp_path}",
                     "name=quiet"], tmp_path)
    noise = [line for line in lines if NOISE.match(line) or "tensorflow" in line.lower() or "cuda" in line.lower()]
    assert noise == [] and not any("run slowly" in line for line in lines)
    assert sum("mixed_float16 without a GPU" in line for line in lines) == 1
    assert any("parameters" in line for line in lines)  # the project's own log lines still show
    assert any(line.startswith("epoch 2/3 took ") and line.endswith(" for the 1 left") for line in lines)
    assert len(lines) == len(set(lines))  # nothing said twice (the one empty line is the last newline)
    assert not any("\r" in line for line in lines)  # no progress bar when stderr is not a terminal


def test_debug_shows_what_the_filter_drops(tmp_path):
    lines = _stderr(["--debug", "models", "list", "--size", "32", "--only", "unet"], tmp_path)
    assert any(NOISE.match(line) for line in lines)
    quiet = _stderr(["models", "list", "--size", "32", "--only", "unet"], tmp_path)
    assert not any(NOISE.match(line) for line in quiet)
