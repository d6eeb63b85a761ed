"""HC18 rows for docs/BENCHMARKS.md from the CSVs ``lightseg evaluate --biometry --postprocess`` wrote.

For each STEM (``model_int8``, ``model_int8_hflip``, ...: the ``eval_test_<STEM>_*`` files in RUN):
Dice raw and with the ellipse post-processing, the latter with its 95 % interval over subjects
(:func:`lightseg_tf.objectives.metrics.subject_bootstrap_ci`) and by quartile of the reference HC
(:func:`lightseg_tf.evaluation.measure.hc_quartiles`, the HC table's own split),
then the HC error (abs mean with its interval, signed mean) and the share the confidence flag marks.

Usage: PYTHONPATH=. .venv/bin/python experiments/hc18_table.py RUN STEM [STEM ...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def row(run: Path, stem: str) -> str:
    from lightseg_tf.core.io import read_csv
    from lightseg_tf.evaluation.measure import hc_quartiles
    from lightseg_tf.objectives.metrics import subject_bootstrap_ci

    post = read_csv(run / f"eval_test_{stem}_postprocessed_per_image.csv", "evaluation CSV", dicts=True)
    raw = json.loads((run / f"eval_test_{stem}_summary.json").read_text())["mean_fg_dice"]
    hc_rows = read_csv(run / f"eval_test_{stem}_hc_per_image.csv", "HC error CSV", dicts=True)
    hc = json.loads((run / f"eval_test_{stem}_hc_summary.json").read_text())
    subject = {r["id"]: r["subject"] for r in post}
    dice = {r["id"]: float(r["dice_head"]) for r in post}
    refs = [{"id": r["id"], "reference_hc_mm": float(r["reference_hc_mm"])} for r in hc_rows]
    quartiles = [np.mean([dice[r["id"]] for r in part]) for _, _, part in hc_quartiles(refs)]
    ids = [r["id"] for r in refs]
    d_lo, d_hi = subject_bootstrap_ci([dice[i] for i in ids], [subject[i] for i in ids])
    errors = [(r["id"], abs(float(r["error_mm"]))) for r in hc_rows if r["error_mm"] not in ("", None)]
    h_lo, h_hi = subject_bootstrap_ci([e for _, e in errors], [subject[i] for i, _ in errors])
    flagged = (hc.get("confidence") or {}).get("share_flagged")
    return (f"| {stem} | {raw:.4f} | {np.mean(list(dice.values())):.4f} ({d_lo:.4f}-{d_hi:.4f}) | "
            + " | ".join(f"{q:.4f}" for q in quartiles)
            + f" | {hc['mean_abs']:.2f} ({h_lo:.2f}-{h_hi:.2f}) | {hc['mean_signed']:+.2f} | "
            + (f"{100 * flagged:.1f} % |" if flagged is not None else "- |"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("stems", nargs="+")
    args = ap.parse_args()
    print("| file | Dice raw | Dice ellipse (95 % interval) | Q1 | Q2 | Q3 | Q4 | HC abs mm (95 % interval) "
          "| signed | flagged |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for stem in args.stems:
        print(row(args.run, stem))


if __name__ == "__main__":
    main()
