"""Why does a distilled student lose a class? Per-class soft loss and confidence against the teachers.

Usage: python experiments/kd_diagnose.py PIPELINE_RUN STUDENT_RUN [STUDENT_RUN ...] [--images 16]
       [--temperature 2] [--split train]

For each student (a run directory, e.g. those of experiments/kd_seeds.sh) on the first
``--images`` images of the split, with the soft targets the distillation used (the weighted
vote of the pipeline run's teacher cache):
  - the pixel-mean T^2 KL term and its mean over the pixels of each true class,
  - the student's and the teachers' mean probability of the true class on those pixels,
  - the mean gradient of the soft (KL) and hard (config loss) terms on the true class's logit
    there (negative = pushes that logit up), scaled by the pixel count.
A student with a lower pixel-mean KL than the labels-only one but p(true) near 0 on a small
class has found the degenerate optimum of the pixel mean: fit the background, drop the class.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
import tensorflow as tf

from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.tfdata import load_letterboxed
from lightseg_tf.models.saving import load_trained_model
from lightseg_tf.objectives.distill_losses import pixel_kl, soft_loss
from lightseg_tf.objectives.losses import build_loss
from lightseg_tf.runs import open_run
from lightseg_tf.training.distillation import probs_to_logits
from lightseg_tf.training.ensemble import load_weights, soft_vote
from lightseg_tf.training.teacher_cache import TeacherCache


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pipeline_run", help="pipeline run whose stages/cache and stages/ensemble the students used")
    ap.add_argument("students", nargs="+", help="student run directories")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--split", default="train")
    args = ap.parse_args()

    stages = Path(args.pipeline_run) / "stages"
    cache = TeacherCache(stages / "cache")
    weights = load_weights(stages / "ensemble" / "ensemble_weights.json", cache.teachers)
    dataset = read_dataset(cache.manifest["data"]["path"], cache.manifest["data"].get("format"))
    part = dataset.subset(cache.splits[args.split])
    probs = [cache.probs(t, args.split) for t in cache.teachers]
    idx = range(min(args.images, len(part)))
    pairs = [load_letterboxed(part, i, cache.size) for i in idx]
    images, masks = np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
    targets = np.stack([soft_vote([p[i] for p in probs], weights) for i in idx])
    teacher = probs_to_logits(targets)
    classes = cache.classes
    print(f"{args.split}, {len(idx)} images, T {args.temperature}; teachers {cache.teachers}, weights "
          f"{np.round(weights, 3).tolist()}; teachers' p(true): "
          + ", ".join(f"{c} {targets[..., k][masks == k].mean():.3f}" for k, c in enumerate(classes)))
    for run in args.students:
        model = load_trained_model(run)
        hard_loss = build_loss(open_run(run).cfg.loss)
        logits = tf.convert_to_tensor(model(images, training=False))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(logits)
            soft = soft_loss("kl", teacher, logits, args.temperature, masks)
            hard = hard_loss(masks, logits)
        g_soft, g_hard = (tape.gradient(x, logits).numpy() for x in (soft, hard))
        t = args.temperature
        per_pixel = t * t * pixel_kl(teacher, logits, t).numpy()
        p_student = tf.nn.softmax(logits, -1).numpy()
        print(f"\n{run}: pixel-mean T^2 KL {float(soft):.4f}, hard loss {float(hard):.4f}")
        print(f"  {'class':<12}{'KL':>8}{'p(true)':>9}{'dKL/dz':>9}{'dhard/dz':>10}")
        for k, c in enumerate(classes):
            sel = masks == k
            if not sel.any():
                continue
            print(f"  {c:<12}{per_pixel[sel].mean():>8.3f}{p_student[..., k][sel].mean():>9.3f}"
                  f"{g_soft[..., k][sel].mean() * sel.size:>9.3f}{g_hard[..., k][sel].mean() * sel.size:>10.3f}")


if __name__ == "__main__":
    main()
