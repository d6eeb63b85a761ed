"""Latency of .tflite exports side by side, e.g. a model without and with TTA built in.

Each round times every file once (:func:`lightseg_tf.evaluation.benchmark.tflite_latency`: the
median of ``--runs`` single-image invocations, XNNPACK, ``--threads``); the table holds the
median over ``--rounds`` interleaved rounds and the ratio to the first file (same machine, same
run: a ratio survives a noisy machine better than a time).

Usage: PYTHONPATH=. .venv/bin/python experiments/bench_tta.py A.tflite B.tflite [...] [--threads 1]
       [--runs 20] [--rounds 5]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from lightseg_tf.evaluation.benchmark import tflite_latency

    times = {m: [] for m in args.models}
    arena = {}
    for _ in range(args.rounds):
        for m in args.models:
            ms, arena[m] = tflite_latency(m, args.threads, args.runs)
            times[m].append(ms)
    base = statistics.median(times[args.models[0]])
    print(f"| model | TTA | ms (median of {args.rounds} rounds x {args.runs} runs, {args.threads} thread) "
          f"| x first | arena MiB |\n|---|---|---|---|---|")
    for m in args.models:
        card = json.loads(m.with_suffix(".json").read_text())
        tta = (card.get("test_time_augmentation") or {}).get("mode", "none")
        med = statistics.median(times[m])
        print(f"| {m.name} | {tta} | {med:.1f} | {med / base:.2f} | {arena[m]:.1f} |")


if __name__ == "__main__":
    main()
