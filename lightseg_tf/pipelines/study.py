"""Comparative studies (``lightseg study``): several models, one pipeline, one split, one table.

The UltraSeg-Bench protocol: every model is trained on the same data and split with the best
checkpoint on validation mean Dice, scored on train, validation and test at original
resolution (test also with horizontal-flip TTA), and the generalisation gaps (train -> test,
val -> test) are tabulated for Dice and IoU. Runs resume stage by stage like ``lightseg pipeline``.
"""

from __future__ import annotations

from pathlib import Path

from lightseg_tf.pipelines.chain import check_model_specs, prepare_data, summary_scores, train_models
from lightseg_tf.config import Config, config_identity, config_to_dict
from lightseg_tf.core.io import write_json_atomic, write_text_atomic
from lightseg_tf.runs import open_run_dir
from lightseg_tf.core.workflow import Stage, run_stages


def gap_rows(results: dict) -> list[dict]:
    """One row per model: mean foreground Dice/IoU on each split, with TTA, and the gaps."""
    rows = []
    for name, r in results.items():
        row = {"model": name}
        for split in ("train", "val", "test", "test_hflip"):
            if split in r:
                row[f"{split}_dice"], row[f"{split}_iou"] = r[split]["mean_fg_dice"], r[split]["mean_fg_iou"]
        for metric in ("dice", "iou"):
            row[f"gap_train_test_{metric}"] = row["train_" + metric] - row["test_" + metric]
            row[f"gap_val_test_{metric}"] = row["val_" + metric] - row["test_" + metric]
        rows.append(row)
    return rows


def gap_markdown(rows: list[dict]) -> str:
    """The study's table (values in percent)."""
    keys = [k for k in rows[0] if k != "model"]
    lines = ["| model | " + " | ".join(k.replace("_", " ") for k in keys) + " |", "|---|" + "---|" * len(keys)]
    lines += [f"| {r['model']} | " + " | ".join(f"{100 * r[k]:.2f}" for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def run_study(cfg: Config, run_dir: str | Path | None = None, start: str | None = None,
              only: str | None = None) -> dict:
    """Train and score every ``cfg.study.models`` entry; writes ``study.md`` / ``study.json``.

    Returns:
        ``{"run_dir", "rows", "table"}``.
    """
    from lightseg_tf.evaluation.evaluate import evaluate_run

    sc = cfg.study
    check_model_specs(sc.models, "study.models")
    run = open_run_dir(cfg, run_dir, allow_changes=True)

    def models(ctx, out):
        results = train_models(cfg, ctx, out, sc.models, cfg.train.epochs, tta=sc.tta)
        for name in sc.models:
            for split in ("train", "val"):
                results[name][split] = summary_scores(evaluate_run(out / name, split))
        return results

    def table(ctx, out):
        rows = gap_rows(ctx.results["models"])
        write_json_atomic(out / "study.json", rows)
        write_text_atomic(out / "study.md", gap_markdown(rows) + "\n")
        return {"rows": rows}

    stages = [
        Stage("data", lambda ctx, out: prepare_data(cfg, out), reads=config_to_dict(cfg.data)),
        Stage("models", models, reads={"models": sc.models, "tta": sc.tta, "train": config_identity(cfg)["train"],
                                       "loss": config_to_dict(cfg.loss)}, depends=("data",)),
        Stage("table", table, depends=("models",)),
    ]
    ctx = run_stages(stages, run, start=start, only=only)
    rows = ctx.results.get("table", {}).get("rows", [])
    return {"run_dir": str(run), "rows": rows, "table": gap_markdown(rows) if rows else ""}
