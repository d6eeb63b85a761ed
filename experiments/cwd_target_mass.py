"""Where does the channel-wise (cwd) distillation target put each class? Its share on the class's pixels.

Usage: python experiments/cwd_target_mass.py PIPELINE_RUN [--split train] [--temperatures 1 2 4]

cwd (Shu et al., ICCV 2021) turns each class map of the teachers' weighted vote into a
distribution over the image's pixels, ``softmax(log p_c / T)`` over pixels, and the student
matches it. For every class and T this prints the median (over the images holding the class) of
the target's mass on the pixels labelled with that class: near 1, the target says "the class is
here"; near 0, it says "the class is spread over the image", which fights the hard loss.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)

from lightseg_tf.objectives.distill_losses import channel_log_distributions
from lightseg_tf.training.distillation import probs_to_logits
from lightseg_tf.training.ensemble import load_weights, soft_vote
from lightseg_tf.training.teacher_cache import TeacherCache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline_run", help="pipeline run whose stages/cache and stages/ensemble a distillation used")
    ap.add_argument("--split", default="train")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    args = ap.parse_args()

    stages = Path(args.pipeline_run) / "stages"
    cache = TeacherCache(stages / "cache")
    weights = load_weights(stages / "ensemble" / "ensemble_weights.json", cache.teachers)
    targets = soft_vote([cache.probs(t, args.split) for t in cache.teachers], weights)  # [N, S, S, C]
    labels = cache.labels(args.split).reshape(len(targets), -1)  # [N, S*S]
    logits = probs_to_logits(targets)
    print(f"{args.split}, {len(targets)} images, teachers {cache.teachers}; median share of the cwd target's "
          "mass on the class's own pixels")
    print(f"{'T':>5}" + "".join(f"{c:>12}" for c in cache.classes))
    for t in args.temperatures:
        mass = np.exp(channel_log_distributions(logits, t).numpy())  # [N, C, S*S]
        cells = []
        for k in range(len(cache.classes)):
            on = labels == k
            has = on.any(axis=1)
            share = (mass[:, k, :] * on).sum(axis=1)[has]
            cells.append(f"{np.median(share):>12.3f}" if has.any() else f"{'-':>12}")
        print(f"{t:>5g}" + "".join(cells))


if __name__ == "__main__":
    main()
