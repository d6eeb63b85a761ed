"""Where a training step spends its time: a TensorFlow profiler trace of a few ``fit`` steps.

Usage: python experiments/profile_training.py [--models SPEC ...] [--size 128] [--batch 8]
       [--steps 4] [--plain] [--ops 12]

SPEC is ``name`` or ``name:{yaml options}``; the default is the three students
(``lightseg_student``, ``lightseg_student:{width: 0.5}``, ``rtseg``). Each model is compiled by
``trainer.compile_for_training`` (the fast path, or ``--plain`` for the reference path) and fed
by the project's augmented tf.data pipeline on a phantom dataset, as ``lightseg train`` does.
After a warm-up, ``--steps`` steps of ``Model.fit`` run under ``tf.profiler.experimental``; the
trace (``*.xplane.pb``) is read back and every op executed on TensorFlow's compute threads is
put in one bucket by its name scope:

  model forward / backward   ``<model>/...`` / ``gradient_tape/<model>/...``
  loss forward / backward    ``<loss>/...`` / ``gradient_tape/<loss>/...`` (DLCE terms inside)
  metric                     ``mean_fg_dice/...`` (the train-time Dice)
  optimizer                  ``<optimizer>/...`` (AdamW update, incl. its variable reads)
  input wait                 ``IteratorGetNext``: the step waiting for the tf.data pipeline
  other                      gradient sums of reused tensors, casts, Keras bookkeeping

Use ``--plain`` for the breakdown: the fast path runs 8 steps per call inside a ``while`` loop,
whose backward ops lose their ``gradient_tape/<model>`` scope and land in "other" (the ops of a
step are the same on both paths). Op times are per step (summed over the ops' own durations; with two inter-op threads two ops
can overlap, so the buckets can sum to a little more than the wall time). The input pipeline's
own cost is measured apart: the pipeline alone, ms of wall per batch.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import platform
import tempfile
import time

import yaml

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
import tensorflow as tf
import tf_keras as keras
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from lightseg_tf.config import DataConfig, LossConfig, TrainConfig
from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.tfdata import make_dataset
from lightseg_tf.models import build_model
from lightseg_tf.training.trainer import compile_for_training

STUDENTS = ("lightseg_student", "lightseg_student:{width: 0.5}", "rtseg")
BUCKETS = ("model forward", "model backward", "loss forward", "loss backward", "metric", "optimizer",
           "input wait", "other")


def parse_spec(spec: str) -> tuple[str, dict]:
    """``"name:{yaml}"`` -> ``(name, options)``."""
    name, _, opts = spec.partition(":")
    return name, (yaml.safe_load(opts) if opts else {})


def read_op_events(logdir: str):
    """Yield ``(scope, op_type, ms)`` of every op run on a TF compute thread in the trace under ``logdir``."""
    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    for plane in space.planes:
        meta = plane.event_metadata
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = meta[event.metadata_id].name
                if ":" in name and not name.startswith("ExecutorState"):
                    scope, op_type = name.rsplit(":", 1)
                    yield scope, op_type, event.duration_ps / 1e9


def bucket_of(scope: str, op_type: str, model: str, loss: str, metric: str, optimizer: str) -> str:
    """The breakdown bucket of one op (see the module docstring)."""
    if op_type == "IteratorGetNext":
        return "input wait"
    parts = scope.split("/")
    # Skip the scopes Keras' multi-step loop adds (``while/body/_1/...``) up to the first known one.
    start = next((i for i, p in enumerate(parts) if p in ("gradient_tape", model, loss, metric, optimizer)), 0)
    grad = parts[start] == "gradient_tape"
    head = parts[min(start + grad, len(parts) - 1)]
    if head == model:
        return "model backward" if grad else "model forward"
    if head == loss:
        return "loss backward" if grad else "loss forward"
    if head == metric:
        return "metric"
    if head == optimizer:
        return "optimizer"
    return "other"


def profile_one(spec: str, pipe: tf.data.Dataset, args, logdir: str) -> dict:
    """Trace ``args.steps`` fit steps of one model; returns the buckets, op types and wall time."""
    name, options = parse_spec(spec)
    keras.utils.set_random_seed(0)
    model = build_model(name, (args.size, args.size, 1), 4, **options)
    compile_for_training(model, TrainConfig(fast_path=not args.plain), LossConfig(terms={"dlce": 1.0}), 4,
                         steps_per_epoch=100)
    model.fit(pipe, epochs=1, steps_per_epoch=2, verbose=0)  # warm-up: traces the step
    tf.profiler.experimental.start(logdir)
    start = time.perf_counter()
    model.fit(pipe, epochs=1, steps_per_epoch=args.steps, verbose=0)
    wall = (time.perf_counter() - start) / args.steps * 1000
    tf.profiler.experimental.stop()
    buckets, types = collections.Counter(), collections.Counter()
    loss_name = model.loss.name
    for scope, op_type, ms in read_op_events(logdir):
        b = bucket_of(scope, op_type, model.name, loss_name, "mean_fg_dice", model.optimizer.name)
        buckets[b] += ms / args.steps
        if b.startswith("model"):
            types[f"{b.split()[1]}: {op_type}"] += ms / args.steps
    return {"spec": spec, "params": model.count_params(), "wall": wall, "buckets": buckets, "types": types}


def pipeline_ms_per_batch(pipe: tf.data.Dataset, batches: int = 20) -> float:
    """Wall ms per batch of the input pipeline alone (after a warm-up batch)."""
    it = iter(pipe)
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - start) / batches * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(STUDENTS))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--plain", action="store_true", help="profile the reference path (train.fast_path=false)")
    ap.add_argument("--ops", type=int, default=12, help="model op types listed per model")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_dataset(f"{tmp}/ph", 64, size=args.size, seed=0)
        data = read_dataset(f"{tmp}/ph")
        pipe = make_dataset(data, DataConfig(image_size=args.size, batch_size=args.batch), training=True).repeat()
        input_ms = pipeline_ms_per_batch(pipe)
        results = [profile_one(spec, pipe, args, f"{tmp}/trace{k}") for k, spec in enumerate(args.models)]

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} cores, {platform.machine()}, TF {tf.__version__}; {args.size}x{args.size}, "
          f"batch {args.batch}, {args.steps} traced steps, {'plain' if args.plain else 'fast'} path; "
          f"input pipeline alone: {input_ms:.1f} ms per batch\n")
    print("| ms per step (share) | " + " | ".join(f"{r['spec']} ({r['params']:,} p.)" for r in results) + " |")
    print("| --- |" + " ---: |" * len(results))
    for b in BUCKETS:
        cells = []
        for r in results:
            total = sum(r["buckets"].values())
            cells.append(f"{r['buckets'][b]:.1f} ({100 * r['buckets'][b] / total:.0f} %)")
        print(f"| {b} | " + " | ".join(cells) + " |")
    print("| **sum of ops** | " + " | ".join(f"**{sum(r['buckets'].values()):.1f}**" for r in results) + " |")
    print("| wall time of a traced step | " + " | ".join(f"{r['wall']:.1f}" for r in results) + " |")
    for r in results:
        print(f"\n{r['spec']}: top model op types (ms per step)")
        print("; ".join(f"{k} {v:.1f}" for k, v in r["types"].most_common(args.ops)))


if __name__ == "__main__":
    main()
