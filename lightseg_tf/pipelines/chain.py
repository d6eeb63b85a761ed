"""The whole LightSeg chain as resumable stages (``lightseg pipeline``).

data split -> teachers -> teacher cache -> ensemble weights -> distillation [-> baseline
student -> select] -> QAT -> export -> evaluate (Keras and TFLite) -> clinic (explain, robustness,
biometry) -> report.

``select`` is the users' safeguard: the distilled student and its labels-only twin are scored
on VAL and the better one goes on to QAT and export, so a distillation that did not pay on
this data never ships silently; the log, the final table and the report say which one shipped.

Each stage writes into ``RUN/stages/<stage>/`` through :func:`lightseg_tf.core.workflow.run_stages`:
atomically, keyed by a hash of the config sections it reads, so a stopped run resumes at
the stage it was in (training stages resume inside it, epoch by epoch) and a changed setting
re-runs only what depends on it.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightseg_tf.config import Config, config_identity, config_to_dict, with_overrides
from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import write_json_atomic, write_text_atomic
from lightseg_tf.core.log import LOG
from lightseg_tf.runs import BEST_MODEL, open_run_dir, pipeline_model
from lightseg_tf.core.workflow import Context, Stage, run_stages

TEACHER_KEYS = {"model", "options", "epochs", "learning_rate", "seed", "image_size"}


def _data_overrides(cfg: Config, ctx: Context) -> dict:
    """Point a stage's runs at the chain's dataset and its one split."""
    data = ctx.stage_dir("data")
    return {"data.path": cfg.data.path or str(data / "phantom"),
            "data.format": cfg.data.format if cfg.data.path else "lightseg",
            "data.split_file": str(data / "split.json")}


def _run_cfg(cfg: Config, values: dict) -> Config:
    """The config of one run inside a stage: ``cfg`` with ``values``, minus the chain-level sections.

    Dropping ``pipeline``, ``search`` and ``study`` keeps a resumed stage's runs reopenable after a change
    elsewhere in the chain (a run directory refuses a different config).
    """
    from lightseg_tf.config import PipelineConfig, SearchConfig, StudyConfig

    out = with_overrides(cfg, values)
    out.pipeline, out.search, out.study = PipelineConfig(), SearchConfig(), StudyConfig()
    return out


def _student_cfg(cfg: Config, ctx: Context, name: str, **values) -> Config:
    return _run_cfg(cfg, {**_data_overrides(cfg, ctx), "name": f"{cfg.name}-{name}",
                          "distill.cache": str(ctx.stage_dir("cache")),
                          "distill.weights_file": str(ctx.stage_dir("ensemble") / "ensemble_weights.json"),
                          **values})


def summary_scores(result) -> dict:
    s = result.summary
    out = {"mean_fg_dice": s["mean_fg_dice"], "mean_fg_dice_ci95": s.get("mean_fg_dice_ci95"),
           "mean_fg_iou": s["mean_fg_iou"], "dice": {c: v["dice"] for c, v in s["per_class"].items()}}
    if result.post is not None:
        out["postprocessed_mean_fg_dice"] = result.post.summary["mean_fg_dice"]
    return out


# How the final table, results.md and the report name the int8 file that shipped.
INT8_KINDS = {"qat": "after QAT", "ptq": "post-training quantization"}


def int8_choice(val: dict[str, float]) -> str:
    """``"ptq"`` when the post-training int8 file beats the QAT one on VAL (``val``: kind -> mean fg Dice), else ``"qat"``."""
    return "ptq" if val["ptq"] > val["qat"] else "qat"


def _best_val(hist: dict) -> float | None:
    vals = hist.get("val_mean_fg_dice") or []
    return max(vals) if vals else None


def check_model_specs(specs: dict, where: str) -> None:
    """Each entry must be ``{model[, options, epochs, learning_rate, seed, image_size]}``."""
    if not specs:
        raise LightsegError(f"{where} is empty: give at least one model")
    for name, spec in specs.items():
        unknown = set(spec) - TEACHER_KEYS
        if unknown or "model" not in spec:
            raise LightsegError(f"{where}.{name}: give model (+ options, epochs, learning_rate, seed, image_size); "
                                f"unknown keys {sorted(unknown)}")


def prepare_data(cfg: Config, out: Path) -> dict:
    """The data stage: the dataset (a phantom in ``out`` when no path is set) and its one split."""
    from lightseg_tf.data.phantom import write_phantom_dataset
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import split_for

    if cfg.data.path:
        dataset = read_dataset(cfg.data.path, cfg.data.format)
    else:
        if not (out / "phantom" / "dataset.json").exists():
            write_phantom_dataset(out / "phantom", cfg.data.phantom_n, size=max(cfg.data.image_size, 128),
                                  seed=cfg.data.phantom_seed, unlabelled=cfg.data.phantom_unlabelled)
        dataset = read_dataset(out / "phantom", "lightseg")
    split = split_for(dataset, cfg.data.split_file, cfg.data.val_fraction, cfg.data.test_fraction,
                      cfg.data.split_seed, write_to=out / "split.json", test_holdout=cfg.data.test_holdout)
    return {"dataset": str(dataset.root), "classes": list(dataset.classes), **{k: len(v) for k, v in split.items()}}


def train_models(cfg: Config, ctx: Context, out: Path, specs: dict, epochs: int, tta: bool = False) -> dict:
    """Train each ``{name: {model, options, ...}}`` on the chain's data and split into ``out/name``.

    Returns:
        Per model: best validation mean foreground Dice and test scores (also with hflip TTA if ``tta``).
    """
    from lightseg_tf.evaluation.evaluate import evaluate_run
    from lightseg_tf.training.trainer import train

    results = {}
    for name, spec in specs.items():
        mcfg = _run_cfg(cfg, {
            **_data_overrides(cfg, ctx), "name": f"{cfg.name}-{name}", "model.name": spec["model"],
            "model.options": dict(spec.get("options", {})), "train.epochs": _epochs(spec, epochs),
            "train.learning_rate": float(spec.get("learning_rate", cfg.train.learning_rate)),
            # Two teachers of one family differ by their seed (initialisation, shuffling, augmentation).
            "train.seed": int(spec.get("seed", cfg.train.seed)),
            # A teacher may see more pixels than the student (small structures); the cache stage
            # moves its answers to the student's side.
            "data.image_size": int(spec.get("image_size", cfg.data.image_size))})
        LOG.info("model %s (%s)", name, spec["model"])
        res = train(mcfg, out / name)
        results[name] = {"best_val_mean_fg_dice": _best_val(res.history),
                         "test": summary_scores(evaluate_run(out / name, "test"))}
        if tta:
            results[name]["test_hflip"] = summary_scores(evaluate_run(out / name, "test", tta="hflip"))
    return results


def _epochs(spec: dict, default: int) -> int:
    """A model spec's epochs, else ``default``."""
    return int(spec.get("epochs") or default)


def build_stages(cfg: Config) -> list[Stage]:
    """The chain's stages for ``cfg`` (the student is ``cfg.model``; see :class:`PipelineConfig`)."""
    from lightseg_tf.evaluation.evaluate import evaluate_run

    pc = cfg.pipeline
    data_reads = config_to_dict(cfg.data)
    check_model_specs(pc.teachers, "pipeline.teachers")

    def data(ctx, out):
        return prepare_data(cfg, out)

    def teachers(ctx, out):
        return train_models(cfg, ctx, out, pc.teachers, pc.teacher_epochs or cfg.train.epochs)

    def cache(ctx, out):
        from lightseg_tf.training.teacher_cache import predict_teachers

        runs = [ctx.stage_dir("teachers") / name for name in pc.teachers]
        # train, val, test and any unlabelled images, at the student's side whatever each teacher's
        predict_teachers(runs, out, splits=None, size=cfg.data.image_size)
        return {"teachers": list(pc.teachers)}

    def ensemble(ctx, out):
        from lightseg_tf.training.ensemble import tune_cache

        res = tune_cache(ctx.stage_dir("cache"), pc.ensemble_trials, pc.ensemble_engine, seed=cfg.train.seed,
                         out=out, screen=pc.ensemble_screen, folds=pc.ensemble_folds, margin=pc.ensemble_margin)
        return {k: res[k] for k in ("weights", "mean_fg_dice", "search_seconds", "table_split", "table",
                                    "excluded", "cv", "weights_from")}

    def distill(ctx, out):
        from lightseg_tf.training.distillation import distill as run_distill

        from lightseg_tf.training.teacher_cache import TeacherCache

        res = run_distill(_student_cfg(cfg, ctx, "student", **{"train.epochs": pc.distill_epochs or cfg.train.epochs}),
                          out / "student")
        ens = ctx.results["ensemble"]
        cols = [k for k in ens["table"][0] if k != "model"]
        rows = [[r["model"], *(r[c] for c in cols)] for r in ens["table"]]
        write_json_atomic(out / "student" / "ensemble_table.json",  # the report shows it, with where it was scored
                          {"columns": ["model", *cols], "rows": rows, "split": ens["table_split"],
                           "image_size": TeacherCache(ctx.stage_dir("cache")).size})
        return {"best_val_mean_fg_dice": _best_val(res.history),
                "test": summary_scores(evaluate_run(out / "student", "test", postprocess=True))}

    def baseline(ctx, out):
        from lightseg_tf.training.trainer import train

        res = train(_student_cfg(cfg, ctx, "baseline"), out / "baseline")
        return {"best_val_mean_fg_dice": _best_val(res.history),
                "test": summary_scores(evaluate_run(out / "baseline", "test"))}

    def select(ctx, out):
        runs = {"distilled": ctx.stage_dir("distill") / "student",
                "labels only": ctx.stage_dir("baseline") / "baseline"}
        val = {k: evaluate_run(r, "val").summary["mean_fg_dice"] for k, r in runs.items()}
        # The distilled student is the method's product: the twin replaces it only when clearly
        # better, as a few VAL images move by a point between seeds (the demo's 18 once split
        # 0.7256 / 0.7261 while test said 0.729 / 0.686).
        margin = pc.select_margin
        shipped = "labels only" if val["labels only"] > val["distilled"] + margin else "distilled"
        why = (f"val mean fg Dice: distilled {val['distilled']:.4f}, labels only {val['labels only']:.4f}; "
               f"the labels-only twin ships only if ahead by more than {margin:g}")
        LOG.info("shipping the %s student (%s)", shipped, why)
        return {"shipped": shipped, "val_mean_fg_dice": val, "reason": why}

    def qat(ctx, out):
        from lightseg_tf.training.distillation import distill as run_distill

        src = _shipped_run(ctx)
        # The labels-only student ships when distillation did not pay: fine-tune it on the labels too.
        labels_only = {"distill.alpha": 1.0} if src != ctx.stage_dir("distill") / "student" else {}
        # On the labelled images only: QAT adapts the weights to int8 rounding, which needs no new images.
        qcfg = _student_cfg(cfg, ctx, "qat", **{
            "distill.qat": True, "distill.init_from": str(src), "distill.unlabelled": False,
            "train.epochs": pc.qat_epochs, "train.learning_rate": pc.qat_learning_rate,
            "train.schedule": "constant", **labels_only})
        res = run_distill(qcfg, out / "qat")
        return {"best_val_mean_fg_dice": _best_val(res.history)}

    def export(ctx, out):
        import shutil

        from lightseg_tf.deploy.convert import export_run, set_card_metrics

        qat_src = (ctx.stage_dir("qat") / "qat", "best.h5")
        src, model_file = qat_src if pc.qat else (_shipped_run(ctx), None)
        files, choice = {}, None
        for quant in pc.export:
            target = out / f"student_{quant}.tflite"
            if quant == "int8" and pc.qat and pc.int8_choice:
                # Two epochs of QAT can cost a small student more than int8 rounding does (demo seeds:
                # QAT int8 0.2-1.1 points below post-training int8 on VAL, docs/BENCHMARKS.md issue 18):
                # convert both and ship the one better on VAL (QAT on a tie).
                cands = {"qat": qat_src, "ptq": (_shipped_run(ctx), None)}
                val = {}
                for kind, (run, mf) in cands.items():
                    LOG.info("converting %s to int8 TFLite (%s)", run / (mf or BEST_MODEL), kind.upper())
                    tfl, _ = export_run(run, out / "int8_candidates" / kind / target.name, quant="int8", model_file=mf)
                    val[kind] = evaluate_run(run, "val", tflite=tfl, out=tfl.parent).summary["mean_fg_dice"]
                kind = int8_choice(val)
                src, model_file = cands[kind]
                choice = {"shipped": kind, "val_mean_fg_dice": val,
                          "reason": f"val mean fg Dice: QAT int8 {val['qat']:.4f}, post-training int8 "
                                    f"{val['ptq']:.4f}; the better ships (QAT on a tie)"}
                LOG.info("shipping the %s int8 file (%s)", kind.upper(), choice["reason"])
                chosen = out / "int8_candidates" / kind / target.name
                chosen.with_suffix(".json").rename(target.with_suffix(".json"))
                chosen.rename(target)
                shutil.rmtree(out / "int8_candidates")
                tfl = target
            else:
                LOG.info("converting %s to %s TFLite", src / (model_file or BEST_MODEL), quant)
                tfl, _ = export_run(src, target, quant=quant, model_file=model_file)
            LOG.info("wrote %s (%d KB) and its model card %s", tfl, -(-tfl.stat().st_size // 1024),
                     tfl.with_suffix(".json").name)
            # The card's metrics are this file's own test scores (a QAT run has no Keras evaluation to copy).
            scored = evaluate_run(src, "test", tflite=tfl, out=out).summary
            set_card_metrics(tfl, {**scored, "scored": "this file on the test split, each image at its original "
                                                       "resolution"})
            files[quant] = tfl.name
        return {"source": str(src), "files": files, **({"int8_choice": choice} if choice else {})}

    def evaluate(ctx, out):
        student = _shipped_run(ctx)
        rows = {f"teacher {n}": r["test"] for n, r in ctx.results["teachers"].items()}
        table = {r["model"]: r for r in ctx.results["ensemble"]["table"]}
        ens = table["weighted soft voting"]
        # The vote is scored on the cache's letterboxed maps, the teachers' rows above at the original
        # resolution: name the best teacher on the vote's own footing so the comparison is fair.
        best = max(pc.teachers, key=lambda n: table[n]["mean_fg_dice"])
        rows["weighted ensemble"] = {
            "mean_fg_dice": ens["mean_fg_dice"], "mean_fg_iou": ens["mean_fg_iou"],
            "note": f"letterboxed {ctx.results['ensemble']['table_split']} split; best teacher there: "
                    f"{best} {table[best]['mean_fg_dice']:.4f}"}
        sel = ctx.results.get("select")
        shipped = sel["shipped"] if sel else "distilled"
        students = {"distilled": ("student, distilled (Keras)", ctx.results["distill"]["test"])}
        if pc.baseline:
            students["labels only"] = ("student, labels only (Keras)", ctx.results["baseline"]["test"])
        for kind, (name, scores) in students.items():
            note = []
            if sel:
                note.append(f"val {sel['val_mean_fg_dice'][kind]:.4f}")
            if kind == shipped:
                note.append("shipped")
            rows[name] = {**scores, "note": ", ".join(note)}
        int8 = ctx.results["export"].get("int8_choice")
        for quant, name in ctx.results["export"]["files"].items():
            tfl = ctx.stage_dir("export") / name
            note = f"the shipped model ({shipped} student"
            if quant == "int8" and int8:
                val = int8["val_mean_fg_dice"]
                note += f", {INT8_KINDS[int8['shipped']]}; val QAT {val['qat']:.4f}, post-training {val['ptq']:.4f}"
            rows[f"student {quant} TFLite"] = {**summary_scores(evaluate_run(student, "test", tflite=tfl, out=out)),
                                               "note": note + ")"}
        # The interval (bootstrap over subjects) says how far each mean could move on other images
        # like these: two rows closer than that are not told apart by this test split.
        lines = ["| model | test mean fg Dice | 95 % interval (subjects) | test mean fg IoU | note |",
                 "|---|---|---|---|---|"]
        for name, r in rows.items():
            ci = r.get("mean_fg_dice_ci95")
            lines.append(f"| {name} | {r['mean_fg_dice']:.4f} | {f'{ci[0]:.4f}-{ci[1]:.4f}' if ci else '-'} | "
                         f"{r['mean_fg_iou']:.4f} | {r.get('note', '')} |")
        if sel:
            lines.append(f"\nShipped: the {sel['shipped']} student ({sel['reason']}).")
        if int8:
            lines.append(f"The int8 file: {INT8_KINDS[int8['shipped']]} ({int8['reason']}).")
        write_text_atomic(out / "results.md", "\n".join(lines) + "\n")
        return {"rows": rows, "shipped": shipped}

    def clinic(ctx, out):
        from lightseg_tf.evaluation.clinic import clinic_checks

        tflite = _shipped_file(ctx)
        return clinic_checks(_shipped_run(ctx), tflite, out, pc.explain_images, pc.robustness,
                             pc.biometry_images, {**_report_runs(ctx), _file_label(tflite): tflite},
                             pc.robustness_images)

    def report(ctx, out):
        from lightseg_tf.evaluation.report import build_report

        runs = _report_runs(ctx)
        LOG.info("writing the HTML report of %d runs (curves, scores, sample predictions)", len(runs))
        rob = ctx.stage_dir("clinic") / "robustness" / "robustness.json"
        path = build_report(runs, out / "report.html", robustness=[rob] if rob.exists() else [],
                            extra_html=_results_html(ctx), shipped=_shipped_file(ctx),
                            config=ctx.run_dir / "config.yaml", biometry_images=pc.biometry_images)
        return {"report": path.name}

    ident = config_identity(cfg)  # train.verbose (piped or not) must not re-run a stage
    teach_reads = {"data": data_reads, "loss": ident["loss"], "train": ident["train"],
                   "teachers": pc.teachers, "teacher_epochs": pc.teacher_epochs}
    student_reads = {k: ident[k] for k in ("model", "loss", "train", "distill")}
    about = _about(cfg)
    stages = [
        Stage("data", data, reads=data_reads, about=about["data"]),
        Stage("teachers", teachers, reads=teach_reads, depends=("data",), about=about["teachers"]),
        Stage("cache", cache, depends=("teachers",), about=about["cache"]),
        Stage("ensemble", ensemble, reads=[pc.ensemble_engine, pc.ensemble_trials, cfg.train.seed,
                                           pc.ensemble_screen, pc.ensemble_folds, pc.ensemble_margin],
              depends=("cache",), about=about["ensemble"]),
        Stage("distill", distill, reads=student_reads, depends=("ensemble",), about=about["distill"]),
    ]
    ship = ("distill",)
    if pc.baseline:
        stages.append(Stage("baseline", baseline, reads=student_reads, depends=("data",), about=about["baseline"]))
        if pc.select:
            stages.append(Stage("select", select, reads=[pc.select_margin], depends=("distill", "baseline"),
                                about=about["select"]))
            ship = ("select",)
    if pc.qat:
        stages.append(Stage("qat", qat, reads=[pc.qat_epochs, pc.qat_learning_rate], depends=ship,
                            about=about["qat"]))
    stages += [
        Stage("export", export, reads=[pc.export, pc.int8_choice], depends=("qat",) if pc.qat else ship,
              about=about["export"]),
        Stage("evaluate", evaluate, depends=("export",) + (("baseline",) if pc.baseline else ()),
              about=about["evaluate"]),
        Stage("clinic", clinic,
              reads=[pc.explain_images, pc.robustness, pc.biometry_images, pc.robustness_images],
              depends=("export",), about=about["clinic"]),
        Stage("report", report, depends=("evaluate", "clinic"), about=about["report"]),
    ]
    return stages


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' * (n != 1)}"


def _about(cfg: Config) -> dict[str, str]:
    """What each stage does with ``cfg``'s numbers, for the line that announces it."""
    pc, epochs = cfg.pipeline, cfg.train.epochs
    teachers = ", ".join(f"{n}{'' if n == s['model'] else ' (' + s['model'] + ')'} "
                         f"{_count(_epochs(s, pc.teacher_epochs or epochs), 'epoch')}" for n, s in pc.teachers.items())
    checks = ["GradCAM++ panels"] + (["robustness of every model (teachers, students, TFLite)"] if pc.robustness else [])
    return {
        "data": (f"read {cfg.data.path} ({cfg.data.format})" if cfg.data.path
                 else f"write a phantom of {cfg.data.phantom_n} images"
                 + (f" and {cfg.data.phantom_unlabelled} unlabelled ones" if cfg.data.phantom_unlabelled else ""))
                + " and split it into train / val / test",
        "teachers": f"train {_count(len(pc.teachers), 'teacher')}: {teachers}",
        "cache": "store each teacher's probabilities on train, val, test and any unlabelled images",
        "ensemble": f"tune the teachers' soft-vote weights ({pc.ensemble_trials} {pc.ensemble_engine} trials)",
        "distill": f"distil the weighted vote into the {cfg.model.name} student "
                   f"({_count(pc.distill_epochs or epochs, 'epoch')}, soft loss {cfg.distill.soft_loss}"
                   + ("" if cfg.distill.unlabelled else ", labelled images only") + ")",
        "baseline": f"train the same student on the labels alone ({_count(epochs, 'epoch')}): what distillation adds",
        "select": "score both students on val and pick the one that ships",
        "qat": f"quantization-aware fine-tuning of the shipped student ({_count(pc.qat_epochs, 'epoch')})",
        "export": f"convert the student to {', '.join(pc.export)} TFLite with its model card"
                  + ("; int8 both after QAT and post-training, the better on VAL ships"
                     if pc.qat and pc.int8_choice and "int8" in pc.export else ""),
        "evaluate": "score the teachers, the vote and the students (Keras and TFLite) on test",
        "clinic": f"{', '.join(checks)} and biometry from the {'int8' if 'int8' in pc.export else pc.export[0]} "
                  "model on test images",
        "report": "write report.html",
    }


def _report_runs(ctx: Context) -> dict[str, Path]:
    """The chain's Keras models as its table names them: the students (the shipped one first), then the teachers."""
    shipped = ctx.results.get("select", {}).get("shipped", "distilled")
    students = {"distilled": ctx.stage_dir("distill") / "student"}
    if "baseline" in ctx.results:
        students["labels only"] = ctx.stage_dir("baseline") / "baseline"
    order = sorted(students, key=lambda k: k != shipped)
    return ({f"student, {k} (Keras)": students[k] for k in order}
            | {f"teacher {n}": ctx.stage_dir("teachers") / n for n in ctx.results["teachers"]})


def _shipped_file(ctx: Context) -> Path:
    """The exported file that ships (the int8 one, else the first export), as ``lightseg measure`` finds it."""
    return pipeline_model(ctx.run_dir)


def _file_label(path: Path) -> str:
    """``student int8 TFLite``, as the final table names an exported file."""
    return f"student {Path(path).stem.removeprefix('student_')} TFLite"


def _shipped_run(ctx: Context) -> Path:
    """The student run that goes on to QAT and export: the ``select`` stage's choice, else the distilled one."""
    sel = ctx.results.get("select")
    if sel and sel["shipped"] == "labels only":
        return ctx.stage_dir("baseline") / "baseline"
    return ctx.stage_dir("distill") / "student"


def _results_html(ctx: Context) -> str:
    """The chain's table (with the resolution each row was scored at) and its choices, as a report section."""
    import html

    from lightseg_tf.evaluation.report import html_table, section
    from lightseg_tf.training.teacher_cache import TeacherCache

    size = TeacherCache(ctx.stage_dir("cache")).size
    ens = ctx.results["ensemble"]
    rows = [[name, r["mean_fg_dice"], r["mean_fg_iou"],
             f"letterboxed {size}x{size}" if name == "weighted ensemble" else "original resolution", r.get("note", "")]
            for name, r in ctx.results["evaluate"]["rows"].items()]
    table = html_table(["model", "mean fg Dice", "mean fg IoU", "scored at", "note"], rows,
                       "Test split. The vote exists only on the teacher cache's letterboxed maps, so it is scored "
                       "there and compared with the best teacher on the same footing (its note); every other row "
                       "is scored at each image's original resolution.")
    weights = ", ".join(f"{html.escape(k)} {v:.3f}" for k, v in ens["weights"].items())
    notes = [f"ensemble weights ({html.escape(ens.get('weights_from', 'tuned').replace('_', ' '))}): {weights}"]
    notes += [f"left out of the vote: {html.escape(k)} ({html.escape(v)})" for k, v in ens.get("excluded", {}).items()]
    if sel := ctx.results.get("select"):
        notes.append(f"shipped: the {html.escape(sel['shipped'])} student ({html.escape(sel['reason'])})")
    if int8 := ctx.results["export"].get("int8_choice"):
        notes.append(f"int8 file: {INT8_KINDS[int8['shipped']]} ({html.escape(int8['reason'])})")
    return section("chain", table + "".join(f"<p class='note'>{n}</p>" for n in notes), "LightSeg chain (test split)")


def run_pipeline(cfg: Config, run_dir: str | Path | None = None, start: str | None = None,
                 only: str | None = None) -> dict:
    """Run (or resume) the chain; returns ``{"run_dir", "report", "model", "results"}``.

    Raises:
        LightsegError: ``train.strategy=multi_worker``: the chain's non-training stages (teacher
            cache, ensemble, export, report) would run on every worker and race on the same
            files; run ``lightseg train`` / ``distill`` as multi-worker jobs instead.
    """
    if cfg.train.strategy == "multi_worker":
        raise LightsegError("lightseg pipeline runs on one machine (train.strategy default or mirrored): its "
                            "cache, ensemble, export and report stages would race across workers. Run the "
                            "training commands (lightseg train / distill) with train.strategy=multi_worker on "
                            "every worker and the other stages on one machine (README, 'Scaling out')")
    run = open_run_dir(cfg, run_dir, allow_changes=True)
    ctx = run_stages(build_stages(cfg), run, start=start, only=only)
    out = {"run_dir": str(run), "results": ctx.results}
    if "report" in ctx.results:
        out["report"] = str(ctx.stage_dir("report") / ctx.results["report"]["report"])
    if "export" in ctx.results:
        out["model"] = str(_shipped_file(ctx))
    write_json_atomic(run / "pipeline.json", {k: v for k, v in out.items() if k != "results"}
                      | {"stages": {k: json.loads(json.dumps(v, default=str)) for k, v in ctx.results.items()}})
    return out
