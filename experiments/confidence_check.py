"""Does the confidence flag ("low confidence: do not use") separate bad head measurements from good
ones on real HC18 scans? Two models, each with its threshold calibrated on its own VAL split:

(a) the phantom-trained LightSeg student that the demos ship (``student_int8.tflite``, measured on
    the devices' path), calibrated on a phantom VAL split like its training data (the quickstart's
    phantom: 120 images, seed 0, the default split), then measured on HC18 scans: how many are
    flagged, and the HC error of the flagged and unflagged ones;
(b) an HC18-trained rtseg run (``experiments/hc18_cpu.sh``), calibrated on its VAL split
    (``lightseg calibrate``), then measured on its TEST split: HC error of flagged vs unflagged.
    With ``--tflite`` also its int8 export, on the devices' path, with the same threshold.

The run is only read: its config, split and model are copied into ``--work`` and calibrated
there. Prints one table and writes ``confidence_check.json`` into ``--work``.

    .venv/bin/python experiments/confidence_check.py --run runs/hc18/rtseg_cpu [--data ../shared/datasets/hc18]
        [--phantom-model android_demo/app/src/test/resources/golden/student_int8.tflite]
        [--hc18-images test|all] [--work /tmp/confidence_check] [--tflite]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from lightseg_tf.data.phantom import write_phantom_dataset
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.split import load_split, make_split
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.evaluation.confidence import calibrate_confidence, calibrate_run
from lightseg_tf.evaluation.measure import hc_errors

GOLDEN = "android_demo/app/src/test/resources/golden/student_int8.tflite"


def separation(hc: dict) -> dict:
    """Share flagged and, for flagged and unflagged images, n, median / mean |HC error| (mm and %) and
    the share over 5 % (an image without a head counts as over)."""
    out = {"threshold": hc["confidence"]["threshold"], "n": len(hc["rows"]),
           "share_flagged": hc["confidence"]["share_flagged"]}
    for side, low in (("flagged", True), ("unflagged", False)):
        part = [r for r in hc["rows"] if (r["confidence_status"] == "low") == low]
        rel = np.array([abs(r["error_mm"]) / r["reference_hc_mm"] * 100 if r["error_mm"] is not None else np.inf
                        for r in part])
        mm = np.array([abs(r["error_mm"]) for r in part if r["error_mm"] is not None])
        out[side] = {"n": len(part), "no_head": int(np.isinf(rel).sum()),
                     "median_abs_mm": float(np.median(mm)) if len(mm) else None,
                     "mean_abs_mm": float(mm.mean()) if len(mm) else None,
                     "median_abs_pct": float(np.median(rel)) if len(rel) else None,
                     "share_over_5pct": float((rel > 5).mean()) if len(rel) else None}
    over = np.array([r["error_mm"] is None or abs(r["error_mm"]) / r["reference_hc_mm"] > 0.05 for r in hc["rows"]])
    low = np.array([r["confidence_status"] == "low" for r in hc["rows"]])
    out["over_5pct_caught"] = float((low & over).sum() / over.sum()) if over.any() else None
    scores = np.array([r["confidence"] for r in hc["rows"]])
    if over.any() and (~over).any():  # P(score of an image over 5 % < score of one within): the ranking alone
        s_b, s_g = scores[over], scores[~over]
        out["auc_over_5pct"] = float((s_b[:, None] < s_g[None]).mean() + 0.5 * (s_b[:, None] == s_g[None]).mean())
    return out


def line(name: str, s: dict) -> str:
    f, u = s["flagged"], s["unflagged"]

    def part(p):
        if not p["n"]:
            return f"{0:>4} {'-':>8} {'-':>8} {'-':>7}"
        med = "-" if p["median_abs_mm"] is None else f"{p['median_abs_mm']:.1f}"
        return f"{p['n']:>4} {med:>8} {p['median_abs_pct']:>7.1f}% {p['share_over_5pct']:>6.0%}"

    caught = "-" if s["over_5pct_caught"] is None else f"{s['over_5pct_caught']:.0%}"
    return (f"{name:<36}{s['threshold']:>5.2f}{s['n']:>5}{s['share_flagged']:>8.0%} | {part(f)} | {part(u)} | "
            f"{caught:>7}{s.get('auc_over_5pct', float('nan')):>6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", required=True, help="an HC18-trained run directory (read only)")
    ap.add_argument("--data", default="../shared/datasets/hc18")
    ap.add_argument("--phantom-model", default=GOLDEN)
    ap.add_argument("--hc18-images", default="test", choices=["test", "all"],
                    help="HC18 images for the phantom model: the run's TEST split or all 871")
    ap.add_argument("--work", default="/tmp/confidence_check")
    ap.add_argument("--tflite", action="store_true", help="also the run's model_int8.tflite, same threshold")
    args = ap.parse_args()
    t0 = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    hc18 = read_dataset(args.data, "hc18")
    split = load_split(Path(args.run) / "split.json", hc18)
    test = hc18.subset(split["test"])
    results = {}

    # (a) the phantom-trained student, calibrated on phantom VAL, on real scans
    phantom_root = work / "phantom_quickstart"
    if not (phantom_root / "dataset.json").exists():
        write_phantom_dataset(phantom_root, 120, size=128, seed=0)
    phantom = read_dataset(phantom_root, "lightseg")
    student = load_predictor(args.phantom_model)
    cal_a = calibrate_confidence(student, phantom.subset(make_split(phantom)["val"]), model=Path(args.phantom_model).name)
    cal_a.pop("rows")
    on_hc18 = test if args.hc18_images == "test" else hc18
    results["phantom_student_on_hc18"] = {"calibration": cal_a, **separation(hc_errors(student, on_hc18, calibration=cal_a))}
    on_phantom_test = phantom.subset(make_split(phantom)["test"])
    results["phantom_student_on_phantom_test"] = separation(hc_errors(student, on_phantom_test, calibration=cal_a))

    # (b) the HC18-trained run, calibrated on its VAL, on its TEST split
    run = work / "hc18_run"
    run.mkdir(exist_ok=True)
    for name in ("config.yaml", "split.json", "best.keras"):
        shutil.copy2(Path(args.run) / name, run / name)
    cal_b = calibrate_run(run)
    cal_b.pop("rows")
    keras_model = load_predictor(run)
    results["hc18_run_on_test"] = {"calibration": cal_b, **separation(hc_errors(keras_model, test))}
    if args.tflite and (Path(args.run) / "model_int8.tflite").exists():
        int8 = load_predictor(Path(args.run) / "model_int8.tflite")
        results["hc18_run_int8_on_test"] = separation(hc_errors(int8, test, calibration=cal_b))

    results["wall_s"] = time.perf_counter() - t0
    (work / "confidence_check.json").write_text(json.dumps(results, indent=2))
    print(f"{'model, images':<36}{'thr':>5}{'n':>5}{'flagged':>8} | {'flagged: n, |err| mm, %, >5%':<30} | "
          f"{'unflagged: n, |err| mm, %, >5%':<30} | {'caught':>7}{'AUC':>6}")
    print("(|err|: median absolute HC error; >5%: share of images off by more than 5 %; caught: share of those "
          "flagged; AUC: P(score of an image off by > 5 % < score of one within 5 %))")
    print(line("(a) phantom student on HC18 " + args.hc18_images, results["phantom_student_on_hc18"]))
    print(line("(a) phantom student on phantom test", results["phantom_student_on_phantom_test"]))
    print(line("(b) HC18 rtseg on HC18 test", results["hc18_run_on_test"]))
    if "hc18_run_int8_on_test" in results:
        print(line("(b) HC18 rtseg int8 on HC18 test", results["hc18_run_int8_on_test"]))
    for key, cal in (("phantom student", cal_a), ("HC18 rtseg", cal_b)):
        v = cal["val"]
        print(f"{key}: threshold {cal['threshold']:.2f} on {v['n']} VAL images, {v['bad']} bad, {v['flagged']} flagged "
              f"({v['flagged_bad']} bad), median score good {v['score_median_good']}, bad {v['score_median_bad']}")
    print(f"wall time {results['wall_s']:.0f} s; {work / 'confidence_check.json'}")


if __name__ == "__main__":
    main()
