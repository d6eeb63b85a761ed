"""``lightseg pipeline`` (the whole LightSeg chain) and ``lightseg study`` (model comparisons), resumable."""

from __future__ import annotations

import json

from lightseg_tf.cli import add_config_args, config_from_args

STAGES = "data, teachers, cache, ensemble, distill, baseline, select, qat, export, evaluate, clinic, report"


def register(sub) -> None:
    p = sub.add_parser("pipeline", help="the main job: teachers -> ensemble -> distilled student -> QAT -> int8 -> report",
                       description=f"Stages: {STAGES}. A finished stage is skipped when its config is "
                                   "unchanged; a stopped run resumes in the stage it was in.")
    add_config_args(p)
    p.add_argument("--from", dest="start", default=None, metavar="STAGE", help="re-run this stage and all later")
    p.add_argument("--only", default=None, metavar="STAGE", help="run just this stage (earlier ones must be done)")
    p.add_argument("--json", action="store_true", help="print the stages' results as JSON")
    p.set_defaults(func=run_pipeline_cmd)

    p = sub.add_parser("study", help="compare models under one pipeline: test with/without TTA, generalisation gaps")
    add_config_args(p)
    p.add_argument("--from", dest="start", default=None, metavar="STAGE", help="re-run this stage (data, models, table)")
    p.add_argument("--only", default=None, metavar="STAGE", help="run just this stage")
    p.set_defaults(func=run_study_cmd)


def run_study_cmd(args) -> int:
    from lightseg_tf.pipelines.study import run_study

    out = run_study(config_from_args(args), args.run_dir, args.start, args.only)
    print(out["table"])
    print(f"\nrun directory: {out['run_dir']}")
    return 0


def run_pipeline_cmd(args) -> int:
    from lightseg_tf.pipelines.chain import run_pipeline

    out = run_pipeline(config_from_args(args), args.run_dir, args.start, args.only)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    rows = out["results"].get("evaluate", {}).get("rows", {})
    if rows:
        print(f"\n{'model':<32}{'test mean fg Dice':>18}  note")
        for name, r in rows.items():
            print(f"{name:<32}{r['mean_fg_dice']:>18.4f}  {r.get('note', '')}".rstrip())
    if sel := out["results"].get("select"):
        print(f"\nshipped: the {sel['shipped']} student ({sel['reason']})")
    print(f"\nrun directory: {out['run_dir']}")
    if "model" in out:
        print(f"int8 model:    {out['model']}")
    if "report" in out:
        print(f"report:        {out['report']}")
    return 0
