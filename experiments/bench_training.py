"""Training throughput of the students and the plain U-Net: the plain path vs the fast path.

Usage: python experiments/bench_training.py [--models SPEC ...] [--size 128] [--batch 8]
       [--steps 6] [--repeats 5] [--xla] [--bf16]

SPEC is ``name`` or ``name:{yaml options}``; the default is the three students
(``lightseg_student`` full and half width, ``rtseg``) and the ~1.3 M-parameter plain U-Net
reference (``unet:{base_filters: 13, depth: 4}``). Every model trains on the project's augmented
tf.data pipeline (phantom data, as ``lightseg train`` feeds it), compiled by
``trainer.compile_for_training`` twice:

  before   ``train.fast_path=false``: the plain path (today's code path before issue 17)
  after    ``train.fast_path=true``: the fast path ``lightseg train`` uses by default
  after + XLA  (``--xla``) the fast path with ``train.jit_compile=true``
  after + bf16 (``--bf16``) the fast path with ``train.mixed_precision=bfloat16`` (the model built
               under Keras' ``mixed_bfloat16`` policy; pays only where the CPU has AMX or
               AVX512-BF16)

Side by side in one process, interleaved (repeat r runs every model and variant once), so machine
noise hits every variant alike; each cell is the median over repeats of images / wall time of
``--steps`` steps after a warm-up that traces the step. "img/CPU-s" divides by the process's CPU
time instead of the wall time: on a machine shared with other work it moves much less than the
wall time does. Effective GFLOP/s = 3 x forward FLOPs (forward + backward) x images/s.

The machine's dense-convolution figure, measured in the same repeats: a 3x3 convolution,
128 -> 128 channels at 128x128, batch 8, fp32 (TensorFlow's oneDNN kernels, forward + backward,
the same kernels training uses; and LiteRT/XNNPACK forward with 2 threads, the issue's figure).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time

import numpy as np
import yaml

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.config import DataConfig, LossConfig, TrainConfig
from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.tfdata import make_dataset
from lightseg_tf.deploy.model_stats import count_flops
from lightseg_tf.deploy.runtime import make_interpreter
from lightseg_tf.models import build_model
from lightseg_tf.training.distribute import precision_policy
from lightseg_tf.training.trainer import compile_for_training

MODELS = ("lightseg_student", "lightseg_student:{width: 0.5}", "rtseg", "unet:{base_filters: 13, depth: 4}")
CLASSES = 4


def cpu_seconds() -> float:
    """User + system CPU time of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, images: int) -> tuple[float, float]:
    """``(images / wall s, images / CPU s)`` of one call of ``fn``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return images / (time.perf_counter() - wall), images / max(cpu_seconds() - cpu, 1e-9)


class DenseConv:
    """The machine's dense 3x3 convolution GFLOP/s, fp32: TF forward + backward and LiteRT forward."""

    def __init__(self, channels: int = 128, size: int = 128, batch: int = 8, threads: int = 2):
        self.x = tf.random.normal((batch, size, size, channels))
        self.w = tf.Variable(tf.random.normal((3, 3, channels, channels), stddev=0.05))
        self.flops = 2 * batch * size * size * 9 * channels * channels  # one forward
        conv = keras.Sequential([keras.Input((size, size, channels), batch_size=1),
                                 keras.layers.Conv2D(channels, 3, padding="same")])
        self.interp = make_interpreter(tf.lite.TFLiteConverter.from_keras_model(conv).convert(), threads=threads)
        self.interp.allocate_tensors()
        self.tfl_input = self.interp.get_input_details()[0]["index"]
        self.tfl_image = np.random.rand(1, size, size, channels).astype(np.float32)
        self.batch = batch
        self.train_step()
        self.tflite()

    @tf.function
    def _fwd_bwd(self):
        with tf.GradientTape() as tape:
            tape.watch(self.x)
            loss = tf.reduce_sum(tf.nn.conv2d(self.x, self.w, 1, "SAME"))
        return tape.gradient(loss, [self.x, self.w])

    def train_step(self) -> float:
        """GFLOP/s of forward + backward (3x the forward FLOPs)."""
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), self._fwd_bwd())
        return 3 * self.flops / (time.perf_counter() - start) / 1e9

    def tflite(self, runs: int = 4) -> float:
        """GFLOP/s of LiteRT forward passes of one image."""
        self.interp.set_tensor(self.tfl_input, self.tfl_image)
        start = time.perf_counter()
        for _ in range(runs):
            self.interp.invoke()
        return runs * self.flops / self.batch / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--xla", action="store_true", help="also time the fast path with XLA (jit_compile)")
    ap.add_argument("--bf16", action="store_true", help="also time the fast path in mixed bfloat16")
    args = ap.parse_args()
    variants = {"before": TrainConfig(fast_path=False), "after": TrainConfig(fast_path=True)}
    if args.xla:
        variants["after + XLA"] = TrainConfig(fast_path=True, jit_compile=True)
    if args.bf16:
        variants["after + bf16"] = TrainConfig(fast_path=True, mixed_precision="bfloat16")
    loss_cfg = LossConfig(terms={"dlce": 1.0})  # the students' DLCE
    images = args.steps * args.batch

    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_dataset(f"{tmp}/ph", 64, size=args.size, seed=0)
        data = read_dataset(f"{tmp}/ph")
        runs, info = {}, {}
        for spec in args.models:
            name, _, opts = spec.partition(":")
            options = yaml.safe_load(opts) if opts else {}
            for label, train_cfg in variants.items():
                pipe = make_dataset(data, DataConfig(image_size=args.size, batch_size=args.batch),
                                    training=True).repeat()
                keras.utils.set_random_seed(0)
                # The policy applies to layers built under it, as configure_runtime sets it for a run.
                keras.mixed_precision.set_global_policy(precision_policy(train_cfg.mixed_precision))
                model = build_model(name, (args.size, args.size, 1), CLASSES, **options)
                compile_for_training(model, train_cfg, loss_cfg, CLASSES, steps_per_epoch=100)
                keras.mixed_precision.set_global_policy("float32")
                fit = (lambda m=model, p=pipe: m.fit(p, epochs=1, steps_per_epoch=args.steps, verbose=0))
                fit()  # warm-up: traces the step
                runs[spec, label] = fit
            info[spec] = (model.count_params(), count_flops(model) / 1e9)
        dense = DenseConv()
        rates = {k: [] for k in runs}
        conv = {"TF oneDNN fwd+bwd": [], "LiteRT fwd, 2 threads": []}
        for _ in range(args.repeats):
            conv["TF oneDNN fwd+bwd"].append(dense.train_step())
            conv["LiteRT fwd, 2 threads"].append(dense.tflite())
            for key, fit in runs.items():
                rates[key].append(timed(fit, images))

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"{cpu}, {os.cpu_count()} cores, {platform.machine()}, TF {tf.__version__}; {args.size}x{args.size}, "
          f"batch {args.batch}, {args.steps} steps x {args.repeats} repeats, interleaved; load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v)) for k, v in rates.items()}
    dense_gf = {k: statistics.median(v) for k, v in conv.items()}
    print("dense 3x3 conv 128->128 at 128x128, fp32: " + ", ".join(f"{k} {v:.1f} GFLOP/s"
                                                                  for k, v in dense_gf.items()))
    ref = dense_gf["TF oneDNN fwd+bwd"]
    after = [v for v in variants if v != "before"]
    print("\n| model | params | fwd GFLOPs/img | " + " | ".join(f"{v} img/s" for v in variants)
          + " | " + " | ".join(f"{v} / before" for v in after) + " | " + " | ".join(f"{v} GFLOP/s (% dense)"
                                                                                for v in variants)
          + " | img/CPU-s " + " / ".join(variants) + " |")
    print("| --- |" + " ---: |" * (3 + 2 * len(variants) + len(after)))
    for spec in args.models:
        params, gflops = info[spec]
        ips = [med[spec, v][0] for v in variants]
        cells = [f"{params:,}", f"{gflops:.3f}", *(f"{r:.2f}" for r in ips),
                 *(f"{med[spec, v][0] / med[spec, 'before'][0]:.2f}" for v in after),
                 *(f"{3 * gflops * r:.1f} ({100 * 3 * gflops * r / ref:.0f} %)" for r in ips),
                 " / ".join(f"{med[spec, v][1]:.2f}" for v in variants)]
        print(f"| {spec} | " + " | ".join(cells) + " |")
    print("\nall repeats (images/s):")
    for key, v in rates.items():
        print(f"  {key[0]} {key[1]}: {[round(r[0], 2) for r in v]}")


if __name__ == "__main__":
    main()
