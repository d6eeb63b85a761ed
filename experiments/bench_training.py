"""Training throughput (images/s) of a ~1.3 M-parameter network at 256x256, batch 8.

Usage: python experiments/bench_training.py [--model NAME] [--options YAML] [--size 256]
       [--batch 8] [--steps 12] [--repeats 3]

Side by side in one run, interleaved so machine noise hits every variant alike:
  reference   plain tf_keras: Model.fit on in-memory numpy arrays, default compile
  pipeline    the project's tf.data pipeline (cached, augmented, prefetched) + compiled step
  pipeline+xla  the same with XLA (jit_compile=True)
Each variant reports the median over repeats of (images / wall time) of ``--steps`` steps
after a warm-up epoch that traces the step function.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import yaml

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import DataConfig, LossConfig
from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.tfdata import load_letterboxed, make_dataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.models import build_model, get_model_spec


def _compile(model, jit: bool, num_classes: int):
    from lightseg_tf.objectives.metrics import MeanForegroundDice

    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=build_loss(LossConfig()),
                  metrics=[MeanForegroundDice(num_classes)], jit_compile=jit)
    return model


def _timed_fit(model, data, steps: int, batch: int) -> float:
    start = time.perf_counter()
    if isinstance(data, tuple):
        model.fit(data[0][: steps * batch], data[1][: steps * batch], batch_size=batch, epochs=1, verbose=0,
                  shuffle=True)
    else:
        model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="registered model (default lightseg_student, else unet)")
    ap.add_argument("--options", default=None, help="builder options as YAML, e.g. '{base_filters: 13}'")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    name = args.model
    if name is None:
        try:
            get_model_spec("lightseg_student")
            name = "lightseg_student"
        except Exception:
            name = "unet"
    options = yaml.safe_load(args.options) if args.options else ({"base_filters": 13} if name == "unet" else {})
    shape, classes = (args.size, args.size, 1), 4

    with tempfile.TemporaryDirectory() as tmp:
        n = args.steps * args.batch
        write_phantom_dataset(f"{tmp}/ph", n, size=args.size, seed=0)
        data = read_dataset(f"{tmp}/ph")
        arrays = [load_letterboxed(data, i, args.size) for i in range(n)]
        x = np.stack([a[0] for a in arrays])
        y = np.stack([a[1] for a in arrays])
        pipe = make_dataset(data, DataConfig(image_size=args.size, batch_size=args.batch), training=True).repeat()

        variants = {}
        for label, jit, source in (("reference (numpy fit)", False, (x, y)),
                                   ("pipeline (tf.data)", False, pipe),
                                   ("pipeline + XLA", True, pipe)):
            keras.utils.set_random_seed(0)
            model = _compile(build_model(name, shape, classes, **options), jit, classes)
            _timed_fit(model, source, args.steps, args.batch)  # warm-up: traces the step
            variants[label] = (model, source)
        params = variants["reference (numpy fit)"][0].count_params()
        rates = {k: [] for k in variants}
        for _ in range(args.repeats):
            for k, (model, source) in variants.items():
                rates[k].append(_timed_fit(model, source, args.steps, args.batch))

    base = statistics.median(rates["reference (numpy fit)"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}; model {name} "
          f"{options} ({params:,} params), {args.size}x{args.size}, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats")
    print(f"{'variant':<26}{'images/s':>10}{'ratio':>8}   runs")
    for k, r in rates.items():
        med = statistics.median(r)
        print(f"{k:<26}{med:10.2f}{med / base:8.2f}   {[round(v, 2) for v in r]}")


if __name__ == "__main__":
    main()
