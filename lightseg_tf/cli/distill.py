"""``lightseg teachers predict``, ``lightseg ensemble tune``, ``lightseg distill`` and ``lightseg tune``."""

from __future__ import annotations

import json

from lightseg_tf.cli import add_config_args, config_from_args
from lightseg_tf.models.tta import TTA_CHOICES, TTA_HELP


def register(sub) -> None:
    p = sub.add_parser("teachers", help="teacher outputs as data (the distillation cache)")
    tsub = p.add_subparsers(dest="teachers_command", metavar="ACTION")
    tsub.required = True
    q = tsub.add_parser("predict", help="run trained teachers once and cache their probabilities")
    q.add_argument("runs", nargs="+", metavar="RUN", help="teacher run directories (one shared split)")
    q.add_argument("--out", required=True, help="cache folder (created, or extended with more teachers)")
    q.add_argument("--data", default=None, help="dataset folder (default: the runs' own)")
    q.add_argument("--format", default=None, help="reader name for --data (default: detect)")
    q.add_argument("--splits", default="train,val", help="comma-separated splits to cache (default train,val; "
                   "add unlabelled to distil on the split's images without masks)")
    q.add_argument("--tta", default="none", choices=TTA_CHOICES, help=TTA_HELP)
    q.add_argument("--batch-size", type=int, default=8)
    q.add_argument("--size", type=int, default=None,
                   help="side of the cached probabilities, i.e. the student's input (default: the first "
                        "teacher's); each teacher still sees the images at its own side")
    q.set_defaults(func=run_predict)

    p = sub.add_parser("ensemble", help="voting ensembles of cached teachers")
    esub = p.add_subparsers(dest="ensemble_command", metavar="ACTION")
    esub.required = True
    q = esub.add_parser("tune", help="search the weighted soft-voting weights on the validation split")
    q.add_argument("--cache", required=True, help="teacher cache folder")
    q.add_argument("--trials", type=int, default=100)
    q.add_argument("--engine", default="optuna", choices=["optuna", "kerastuner"])
    q.add_argument("--teachers", default="", help="comma-separated subset of the cache's teachers")
    q.add_argument("--split", default="val", help="split to tune on (default val)")
    q.add_argument("--report-split", default=None,
                   help="split of the comparison table (default: test when cached, else --split)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--screen", type=float, default=0.5,
                   help="leave out a teacher whose Dice on a class is below this x the best's (0 keeps all)")
    q.add_argument("--folds", type=int, default=3,
                   help="use tuned weights only if they beat equal ones in this K-fold check (0: always)")
    q.add_argument("--margin", type=float, default=0.005,
                   help="held-out mean fg Dice by which tuned weights (or one teacher) must beat the equal vote")
    q.add_argument("--out", default=None, help="folder for ensemble_weights.json (default: the cache)")
    q.add_argument("--json", action="store_true", help="print the result as JSON")
    q.set_defaults(func=run_ensemble_tune)

    p = sub.add_parser("distill", help="distil a student from a teacher cache (custom train_step)")
    add_config_args(p)
    p.add_argument("--overwrite", action="store_true", help="retrain even if the run finished")
    p.set_defaults(func=run_distill)

    p = sub.add_parser("tune", help="search training / distillation hyperparameters")
    add_config_args(p)
    p.add_argument("--engine", default=None, choices=["optuna", "kerastuner"], help="overrides search.engine")
    p.add_argument("--trials", type=int, default=None, help="overrides search.trials")
    p.add_argument("--json", action="store_true", help="print the best trial as JSON")
    p.set_defaults(func=run_tune)


def run_predict(args) -> int:
    from lightseg_tf.training.teacher_cache import TeacherCache, predict_teachers

    splits = [s for s in args.splits.split(",") if s]
    out = predict_teachers(args.runs, args.out, splits, args.batch_size, args.tta, args.data, args.format,
                           size=args.size)
    cache = TeacherCache(out)
    print(f"{out}: teachers {cache.teachers}, splits {splits}, {cache.size}x{cache.size}, classes {cache.classes}")
    return 0


def run_ensemble_tune(args) -> int:
    from lightseg_tf.training.ensemble import table_markdown, tune_cache

    teachers = [t for t in args.teachers.split(",") if t]
    result = tune_cache(args.cache, args.trials, args.engine, teachers, args.split, args.seed, args.out,
                        args.report_split, screen=args.screen, folds=args.folds, margin=args.margin)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
    else:
        print(f"scored on the {result['table_split']} split (weights tuned on {result['split']}):")
        print(table_markdown(result["table"]))
        for name, why in result["excluded"].items():
            print(f"left out of the vote: {name} ({why})")
        if result["cv"]:
            cv = result["cv"]
            print(f"{cv['folds']}-fold held-out mean fg Dice: tuned {cv['tuned']:.4f}, equal {cv['equal']:.4f}, "
                  f"best teacher alone {cv['best_teacher']:.4f} -> {result['weights_from'].replace('_', ' ')}")
        print(f"weights {json.dumps(result['weights'])}; {args.trials} trials in {result['search_seconds']:.1f} s "
              f"({args.engine}); teachers disagree on {100 * result['disagreement']:.2f}% of pixels")
    return 0


def run_distill(args) -> int:
    from lightseg_tf.training.distillation import distill

    result = distill(config_from_args(args), args.run_dir, overwrite=args.overwrite)
    print(result.run_dir)
    return 0


def run_tune(args) -> int:
    from lightseg_tf.training.search import tune

    cfg = config_from_args(args)
    if args.engine:
        cfg.search.engine = args.engine
    if args.trials is not None:
        cfg.search.trials = args.trials
    result = tune(cfg, args.run_dir)
    if result.get("worker"):
        print(f"worker {result['worker']} finished; the chief writes the results")
        return 0
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(result["table_md"])
        print(f"best mean foreground Dice {result['best_value']:.4f} with {json.dumps(result['best_params'])}")
        print(f"best config: {result['best_config']}")
    return 0
