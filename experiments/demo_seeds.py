"""Issue 18's demo criteria over several seeds of the whole quickstart chain (`make demo`'s config).

Runs ``lightseg pipeline --config CONFIG train.seed=S data.phantom_seed=S run_root=ROOT/seedS`` for
each seed not yet finished (a finished chain is only re-read: the pipeline skips done stages), then
prints one row per seed and the mean +- sample SD: the vote and its best teacher on the same
letterboxed test maps, both students and the int8 file (made from the shipped student) on the
test split at original resolution, which student shipped, the chain's wall time. The seed reaches the phantom images, the teachers
(except a teacher spec with its own ``seed``) and the students; the split rule is fixed.
Earlier finished chains of the same config (e.g. ``make demo``'s ``runs/quickstart``) join the
table with ``--runs``.

Seeds equal to a teacher spec's own seed (the quickstart's unet_s2: 2) are refused: the other
teacher would become its copy.

Usage: PYTHONPATH=. .venv/bin/python experiments/demo_seeds.py --seeds 1 3 4 --root runs/demo_seeds
       [--runs runs/quickstart] [--config experiments/quickstart.yaml]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

COLUMNS = ["best teacher", "vote", "vote - best", "labels only", "distilled", "distilled - labels",
           "int8", "int8 - shipped"]


def chain_row(run_dir: Path) -> dict:
    """The demo criteria of one finished chain, read from its stages' ``done.json``."""
    done = {}
    for stage in ("ensemble", "evaluate"):
        f = run_dir / "stages" / stage / "done.json"
        if not f.exists():
            raise SystemExit(f"{run_dir}: stage {stage} not finished (no {f}); run the chain first")
        done[stage] = json.loads(f.read_text())
    seconds = sum(json.loads(f.read_text()).get("seconds", 0.0) for f in (run_dir / "stages").glob("*/done.json"))
    ens, ev = done["ensemble"]["results"], done["evaluate"]["results"]
    table = {r["model"]: r["mean_fg_dice"] for r in ens["table"]}
    teachers = [m for m in table if m not in ("soft voting", "majority voting", "weighted soft voting")]
    best = max(teachers, key=table.get)
    rows = ev["rows"]
    int8 = next(v["mean_fg_dice"] for k, v in rows.items() if k.startswith("student int8"))
    dist = rows["student, distilled (Keras)"]["mean_fg_dice"]
    labels = rows["student, labels only (Keras)"]["mean_fg_dice"]
    vote = table["weighted soft voting"]
    return {"run": str(run_dir), "seconds": seconds, "weights": ens.get("weights_from", ""),
            "best teacher name": best, "best teacher": table[best], "vote": vote, "vote - best": vote - table[best],
            "labels only": labels, "distilled": dist, "distilled - labels": dist - labels,
            "int8": int8, "int8 - shipped": int8 - (dist if ev["shipped"] == "distilled" else labels),
            "shipped": ev["shipped"]}


def markdown(rows: list[dict]) -> str:
    """Rows of :func:`chain_row` plus mean +- SD as a markdown table (test mean foreground Dice)."""
    head = "| run | wall | " + " | ".join(COLUMNS) + " | vote weights | shipped |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 4)]
    for r in rows:
        cells = [f"{r[c]:+.4f}" if " - " in c else f"{r[c]:.4f}" for c in COLUMNS]
        cells[0] = f"{r['best teacher name']} {r['best teacher']:.4f}"
        lines.append(f"| {r['run']} | {r['seconds']:.0f} s | " + " | ".join(cells) + f" | {r['weights']} | {r['shipped']} |")
    if len(rows) > 1:
        cells = []
        for c in COLUMNS:
            vals = [r[c] for r in rows]
            fmt = "{:+.4f}" if " - " in c else "{:.4f}"
            cells.append(f"{fmt.format(statistics.mean(vals))} +- {statistics.stdev(vals):.4f}")
        lines.append(f"| mean +- SD ({len(rows)}) | {statistics.mean(r['seconds'] for r in rows):.0f} s | "
                     + " | ".join(cells) + " | | |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[], help="chains to run (or re-read) under ROOT/seedS")
    ap.add_argument("--root", default="runs/demo_seeds")
    ap.add_argument("--runs", nargs="*", default=[], help="finished chain folders to add to the table")
    ap.add_argument("--config", default="experiments/quickstart.yaml")
    args = ap.parse_args(argv)
    config = yaml.safe_load(Path(args.config).read_text())
    name = config["name"]
    fixed = {spec["seed"] for spec in (config.get("pipeline", {}).get("teachers") or {}).values() if "seed" in spec}
    if clash := sorted(fixed & set(args.seeds)):
        # train.seed S would give the seedless teacher the same seed (and data) as that one
        ap.error(f"seed(s) {clash} are a teacher's own seed in {args.config}: pick others")
    dirs = [Path(r) for r in args.runs]
    for seed in args.seeds:
        root = Path(args.root) / f"seed{seed}"
        t0 = time.time()
        cmd = [sys.executable, "-m", "lightseg_tf", "pipeline", "--config", args.config,
               f"train.seed={seed}", f"data.phantom_seed={seed}", f"run_root={root}"]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        print(f"seed {seed}: {time.time() - t0:.0f} s", flush=True)
        dirs.append(root / name)
    print(markdown([chain_row(d) for d in dirs]))


if __name__ == "__main__":
    main()
