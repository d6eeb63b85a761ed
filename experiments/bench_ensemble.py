"""Ensemble-weight search speed: N trials on a cache of T teachers x V validation images at S px.

Builds a teacher cache in the real layout (float16 memmaps + manifest) whose teachers are
noisy copies of blocky label maps, tuned so that the teachers disagree on about the share of
pixels that trained teachers do (``--disagree``), then times ``lightseg_tf.training.ensemble.tune_cache``
(preparation and search separately) for each engine.

    .venv/bin/python experiments/bench_ensemble.py --images 200 --size 256 --teachers 4 --trials 100
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from lightseg_tf.training.ensemble import tune_cache
from lightseg_tf.training.teacher_cache import CacheWriter


def make_cache(root, images: int, size: int, teachers: int, classes: int, disagree: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    tiles = rng.integers(0, classes, (images, size // 16, size // 16))
    labels = tiles.repeat(16, 1).repeat(16, 2).astype(np.uint8)
    ids = [f"v{i:04d}" for i in range(images)]
    writer = CacheWriter(root, image_size=size, classes=[f"c{k}" for k in range(classes)],
                         splits={"train": [], "val": ids, "test": []})
    writer.add_labels("val", labels)
    for t in range(teachers):
        wrong = rng.random(labels.shape) < disagree * (0.5 + t / teachers)
        guess = np.where(wrong, rng.integers(0, classes, labels.shape), labels)
        probs = np.full(labels.shape + (classes,), 0.3 / (classes - 1), np.float16)
        np.put_along_axis(probs, guess[..., None].astype(np.int64), np.float16(0.7), axis=-1)
        writer.add_probs(f"teacher{t}", "val", probs)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--teachers", type=int, default=4)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--disagree", type=float, default=0.04, help="about this share of pixels per teacher is wrong")
    ap.add_argument("--engines", default="optuna,kerastuner")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_cache(tmp, args.images, args.size, args.teachers, args.classes, args.disagree)
        for engine in args.engines.split(","):
            t0 = time.perf_counter()
            res = tune_cache(tmp, args.trials, engine, split="val", out=tmp)
            rows.append({"engine": engine, "trials": args.trials, "images": args.images, "size": args.size,
                         "teachers": args.teachers, "disagreement": round(res["disagreement"], 4),
                         "prepare_s": res["prepare_seconds"], "search_s": res["search_seconds"],
                         "total_s": round(time.perf_counter() - t0, 2), "best_mean_fg_dice": round(res["mean_fg_dice"], 4)})
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
