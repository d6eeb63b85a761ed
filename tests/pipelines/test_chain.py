"""``lightseg pipeline``: the whole chain on a tiny phantom, its resume and its config checks."""

import json
import re
import subprocess
import sys

from pathlib import Path

import pytest
from conftest import REPO_ROOT

from lightseg_tf.cli import main
from lightseg_tf.pipelines.chain import build_stages
from lightseg_tf.config import load_config
from lightseg_tf.errors import LightsegError

QUICKSTART = REPO_ROOT / "experiments" / "quickstart.yaml"
# experiments/quickstart.yaml at its smallest setting: the same chain, tiny sizes.
SMALLEST = ["data.image_size=32", "data.batch_size=4", "data.phantom_n=20", "data.augment.enabled=false",
            "model.options={width: 0.25}", "train.epochs=1", "train.verbose=0", "pipeline.teacher_epochs=1",
            "pipeline.teachers={a: {model: unet, options: {base_filters: 4, depth: 2}, image_size: 48}, "
            "b: {model: unet, options: {base_filters: 6, depth: 2}, epochs: 2, seed: 7}}",
            "pipeline.ensemble_trials=5", "pipeline.qat=false", "pipeline.robustness=false",
            "pipeline.explain_images=1", "pipeline.biometry_images=2", "data.phantom_unlabelled=8",
            "pipeline.distill_epochs=1"]


def _pipeline(*args, cwd):
    """``lightseg pipeline --config experiments/quickstart.yaml [args] SMALLEST``."""
    args = [str(a) for a in args]
    options = [a for a in args if "=" not in a]
    overrides = [a for a in args if "=" in a]
    out = subprocess.run([sys.executable, "-m", "lightseg_tf", "pipeline", "--config", str(QUICKSTART), *options,
                          *SMALLEST, *overrides], cwd=cwd, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_teacher_specs_and_stage_names_are_checked():
    with pytest.raises(LightsegError, match="pipeline.teachers.x: give model"):
        build_stages(load_config(None, ["pipeline.teachers={x: {options: {}}}"]))
    with pytest.raises(LightsegError, match="unknown keys"):
        build_stages(load_config(None, ["pipeline.teachers={x: {model: unet, depth: 3}}"]))
    names = [s.name for s in build_stages(load_config(None, ["pipeline.baseline=false", "pipeline.qat=false"]))]
    assert names == ["data", "teachers", "cache", "ensemble", "distill", "export", "evaluate", "clinic", "report"]
    names = [s.name for s in build_stages(load_config(None, []))]
    assert names[4:8] == ["distill", "baseline", "select", "qat"]
    names = [s.name for s in build_stages(load_config(None, ["pipeline.select=false"]))]
    assert "baseline" in names and "select" not in names


def test_the_int8_file_after_qat_ships_unless_post_training_int8_is_better_on_val():
    from lightseg_tf.pipelines.chain import int8_choice

    assert int8_choice({"qat": 0.80, "ptq": 0.81}) == "ptq"
    assert int8_choice({"qat": 0.81, "ptq": 0.80}) == "qat"
    assert int8_choice({"qat": 0.80, "ptq": 0.80}) == "qat"  # a tie keeps the method's QAT file


def _kill_during(stage, *overrides, cwd):
    """Start the smallest quickstart pipeline and SIGKILL it as soon as ``stage`` starts running."""
    proc = subprocess.Popen([sys.executable, "-m", "lightseg_tf", "pipeline", "--config", str(QUICKSTART),
                             *SMALLEST, *map(str, overrides)], cwd=cwd, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if f"] stage {stage}: " in line and "resuming" not in line:
            proc.kill()
            break
    proc.wait(timeout=60)
    assert proc.returncode != 0, f"the pipeline finished before stage {stage} could be interrupted"


@pytest.mark.slow
def test_the_chain_resumes_after_a_kill_in_distillation_then_skips_finished_work(tmp_path):
    _kill_during("distill", f"run_root={tmp_path}", cwd=tmp_path)
    run = tmp_path / "quickstart"
    assert (run / "stages" / "distill.partial").is_dir() and not (run / "stages" / "distill").exists()
    out = _pipeline(f"run_root={tmp_path}", cwd=tmp_path)
    assert "done for this config, skipped: data, teachers, cache, ensemble\n" in out.stderr
    # [k/N] counts the stages that run; each says what it does and ends with its final folder
    ran = ["distill", "baseline", "select", "export", "evaluate", "clinic", "report"]
    assert re.findall(r"^\[(\d+)/(\d+)\] stage (\w+): ", out.stderr, re.M) == [
        (str(k), "7", name) for k, name in enumerate(ran, 1)]
    assert "[1/7] stage distill: distil the weighted vote into the lightseg_student student (1 epoch, " in out.stderr
    assert f"(resuming in its in-progress folder {run / 'stages' / 'distill.partial'}; " in out.stderr
    # the unlabelled phantoms: cached by the teachers, distilled on, never trained on by the labels-only twin
    split = json.loads((run / "stages" / "data" / "split.json").read_text())
    assert len(split["unlabelled"]) == 8 and len(sum((split[k] for k in ("train", "val", "test")), [])) == 20
    assert re.search(r"training on \d+ labelled and 8 unlabelled images", out.stderr)
    assert json.loads((run / "stages" / "cache" / "manifest.json").read_text())["teachers"]["a"]["files"]["unlabelled"]
    for k, name in enumerate(ran, 1):
        assert re.search(rf"^\[{k}/7\] stage {name} done in [^:]+ s: {re.escape(str(run / 'stages' / name))}$",
                         out.stderr, re.M)
    # the console and the run's log name folders that exist when the run ends: no gone .partial one
    log = (run / "log.txt").read_text()
    assert "[7/7] stage report done in" in log and "[2/11] stage teachers done in" in log  # the whole run
    for text in (out.stderr, log):
        for line in text.splitlines():
            if "in-progress folder" not in line:  # the resume line names distill.partial as such
                for path in re.findall(rf"{re.escape(str(run))}/\S*[\w/]", line):
                    assert Path(path).exists(), line
    summary = json.loads((run / "pipeline.json").read_text())
    assert summary["model"].endswith("student_int8.tflite") and (run / "stages" / "export" / "student_int8.json").exists()
    assert f"int8 model:    {summary['model']}" in out.stdout and f"report:        {summary['report']}" in out.stdout
    html = (run / "stages" / "report" / "report.html").read_text()
    assert "LightSeg chain" in html and "weighted ensemble" in html
    rows = summary["stages"]["evaluate"]["rows"]
    assert {"teacher a", "teacher b", "weighted ensemble", "student, labels only (Keras)",
            "student, distilled (Keras)", "student int8 TFLite"} == set(rows)
    # the student that scores higher on VAL is the one exported, and the table says so
    sel = summary["stages"]["select"]
    val = sel["val_mean_fg_dice"]
    assert sel["shipped"] == ("labels only" if val["labels only"] > val["distilled"] + 0.01 else "distilled")
    shipped_run = {"distilled": "distill/student", "labels only": "baseline/baseline"}[sel["shipped"]]
    assert summary["stages"]["export"]["source"].endswith(shipped_run)
    shipped_row = {"distilled": "student, distilled (Keras)", "labels only": "student, labels only (Keras)"}
    assert "shipped" in rows[shipped_row[sel["shipped"]]]["note"]
    results_md = (run / "stages" / "evaluate" / "results.md").read_text()
    assert f"Shipped: the {sel['shipped']} student" in results_md
    ci = rows["student int8 TFLite"]["mean_fg_dice_ci95"]  # the vote's row (cache-scored) has none
    assert ci[0] <= rows["student int8 TFLite"]["mean_fg_dice"] <= ci[1] and f"{ci[0]:.4f}-{ci[1]:.4f}" in results_md
    assert f"shipped: the {sel['shipped']} student" in html
    # The report's biometry is the shipped int8 file's (the clinic's numbers), the card holds that file's test scores
    # and every table says where it was scored.
    assert "Measured with <b>student int8 TFLite (shipped)</b>" in html and "signed mean error (mm)" in html
    for b in json.loads((run / "stages" / "clinic" / "biometry.json").read_text()):
        assert b["hc_mm"] is None or f"<td class=n>{b['hc_mm']:.1f}</td>" in html, b
    card = json.loads((run / "stages" / "export" / "student_int8.json").read_text())
    assert card["metrics"]["mean_fg_dice"] == pytest.approx(rows["student int8 TFLite"]["mean_fg_dice"])
    assert "<td>letterboxed 32x32</td>" in html and "scored on the letterboxed 32x32 model input" in html
    assert "<section id='chain'>" in html and "mean_fg_dice" not in html
    assert json.loads((run / "stages" / "teachers" / "b" / "history.json").read_text())["epoch"] == [0, 1]
    assert load_config(run / "stages" / "teachers" / "b" / "config.yaml").train.seed == 7  # its own seed
    # a trains at its own 48 px; the cache holds its answers at the student's 32 px
    assert load_config(run / "stages" / "teachers" / "a" / "config.yaml").data.image_size == 48
    manifest = json.loads((run / "stages" / "cache" / "manifest.json").read_text())
    assert manifest["image_size"] == 32 and manifest["teachers"]["a"]["input_size"] == 48
    assert (run / "stages" / "distill" / "student" / "eval_test_postprocessed_summary.json").exists()
    assert list((run / "stages" / "clinic" / "explain").glob("*.png"))
    assert not list((run / "stages").glob("*.partial"))

    again = _pipeline(f"run_root={tmp_path}", cwd=tmp_path)
    assert ("done for this config, skipped: data, teachers, cache, ensemble, distill, baseline, select, export, "
            "evaluate, clinic, report\nnothing to run") in again.stderr

    # The run folder the pipeline prints is a model for `lightseg measure` (its shipped int8 model).
    image = sorted((run / "stages" / "data" / "phantom" / "images").glob("*.png"))[0]
    assert main(["measure", "--model", str(run), str(image), "--pixel-size", "0.2", "--json"]) == 0

    # A changed ensemble setting in the same run re-runs that stage, never the teachers.
    changed = _pipeline("--only", "ensemble", f"run_root={tmp_path}", "pipeline.ensemble_trials=3", cwd=tmp_path)
    assert "[1/1] stage ensemble: " in changed.stderr and "stage teachers" not in changed.stderr
    assert len(json.loads((run / "stages" / "ensemble" / "ensemble_weights.json").read_text())["history"]) == 3

    # With QAT the int8 file is converted after QAT and by post-training quantization; the one better on VAL
    # ships (its card names its source: the QAT .h5 or the student's best.keras) and the table says which.
    qat = _pipeline(f"run_root={tmp_path}", "pipeline.qat=true", "pipeline.qat_epochs=1", cwd=tmp_path)
    assert "stage teachers:" not in qat.stderr and "stage qat: " in qat.stderr
    export = json.loads((run / "stages" / "export" / "done.json").read_text())["results"]
    choice = export["int8_choice"]
    val = choice["val_mean_fg_dice"]
    assert set(val) == {"qat", "ptq"} and choice["shipped"] == ("ptq" if val["ptq"] > val["qat"] else "qat")
    card = json.loads((run / "stages" / "export" / "student_int8.json").read_text())
    assert card["model"]["source"] == {"qat": "best.h5", "ptq": "best.keras"}[choice["shipped"]]
    assert sorted(p.name for p in (run / "stages" / "export").glob("*.tflite")) == ["student_int8.tflite"]
    assert not (run / "stages" / "export" / "int8_candidates").exists()
    kind = {"qat": "after QAT", "ptq": "post-training quantization"}[choice["shipped"]]
    assert f"The int8 file: {kind} (val mean fg Dice: QAT int8 {val['qat']:.4f}" in (
        run / "stages" / "evaluate" / "results.md").read_text()
    assert f"shipping the {choice['shipped'].upper()} int8 file" in qat.stderr


@pytest.mark.slow
def test_a_study_tabulates_tta_and_generalisation_gaps(tmp_path):
    from lightseg_tf.pipelines.study import run_study

    cfg = load_config(None, ["name=st", f"run_root={tmp_path}", "data.image_size=32", "data.batch_size=4",
                             "data.phantom_n=16", "data.augment.enabled=false", "train.epochs=1", "train.verbose=0",
                             "study.models={a: {model: unet, options: {base_filters: 4, depth: 2}}, "
                             "b: {model: segnet, options: {base_filters: 4, depth: 2}}}"])
    out = run_study(cfg)
    rows = {r["model"]: r for r in out["rows"]}
    assert set(rows) == {"a", "b"}
    r = rows["a"]
    assert r["gap_train_test_dice"] == pytest.approx(r["train_dice"] - r["test_dice"])
    assert r["gap_val_test_iou"] == pytest.approx(r["val_iou"] - r["test_iou"])
    assert "test_hflip_dice" in r and "| a |" in (tmp_path / "st" / "stages" / "table" / "study.md").read_text()


def test_the_chain_refuses_a_multi_worker_strategy_before_writing_anything(tmp_path):
    from lightseg_tf.pipelines.chain import run_pipeline

    cfg = load_config(None, ["train.strategy=multi_worker", f"run_root={tmp_path}", "name=mw"])
    with pytest.raises(LightsegError, match="lightseg train / distill"):
        run_pipeline(cfg)
    assert not (tmp_path / "mw").exists()
