"""Throughput of the shared tf.data pipeline (images/s), with and without online augmentation.

Usage: python experiments/bench_pipeline.py [--size 256] [--n 256] [--batch 8] [--repeats 5]

Writes a phantom dataset to a temporary folder, warms the cache with one pass, then times
``--repeats`` full epochs of each variant (interleaved, so machine noise hits all alike) and
prints the median images/s of each and their ratio. Images are consumed as a training loop
would (each batch pulled to the host), with no model attached: this is the pipeline's ceiling.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
from lightseg_tf.config import AugmentConfig, DataConfig
from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.tfdata import make_dataset
from lightseg_tf.data.readers import read_dataset


def epoch_rate(ds) -> float:
    start, n = time.perf_counter(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return n / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_phantom_dataset(f"{tmp}/ph", args.n, size=args.size, seed=0)
        data = read_dataset(f"{tmp}/ph")
        variants = {
            "no augmentation": DataConfig(image_size=args.size, batch_size=args.batch,
                                          augment=AugmentConfig(enabled=False)),
            "online augmentation (default)": DataConfig(image_size=args.size, batch_size=args.batch),
            "online augmentation, deterministic": DataConfig(image_size=args.size, batch_size=args.batch,
                                                             deterministic=True),
        }
        pipelines = {k: make_dataset(data, cfg, training=True) for k, cfg in variants.items()}
        for ds in pipelines.values():
            epoch_rate(ds)  # fills the cache (decode + letterbox happen once)
        rates = {k: [] for k in pipelines}
        for _ in range(args.repeats):
            for k, ds in pipelines.items():
                rates[k].append(epoch_rate(ds))
    base = statistics.median(rates["no augmentation"])
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; size {args.size}, n {args.n}, "
          f"batch {args.batch}, median of {args.repeats} epochs")
    print(f"{'variant':<38}{'images/s':>10}{'vs no aug':>11}   all runs")
    for k, r in rates.items():
        med = statistics.median(r)
        print(f"{k:<38}{med:10.0f}{med / base:11.2f}   {json.dumps([round(v) for v in r])}")


if __name__ == "__main__":
    main()
