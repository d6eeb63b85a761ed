"""The HTML report, rendered by a real headless Chromium (Debian's package): every section, no broken image."""

import csv
import json
import re
import shutil
import subprocess

import pytest

from lightseg_tf.cli import main
from lightseg_tf.config import load_config
from lightseg_tf.evaluation.clinic import clinic_checks
from lightseg_tf.evaluation.report import SECTIONS, html_table, human_column
from lightseg_tf.evaluation.robustness import SEVERITIES
from lightseg_tf.training.trainer import train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_tables_have_human_headers_and_aligned_cells():
    assert [human_column(k) for k in ("mean_fg_dice", "mean_fg_iou", "CSP_dice", "LV_iou", "model")] == [
        "mean fg Dice", "mean fg IoU", "CSP Dice", "LV IoU", "model"]
    table = html_table(["model", "Dice", "HC error (mm)"], [["a<b", 0.5, "+1.2"], ["c", None, "-"]], "scored at x")
    assert "<td>a&lt;b</td><td class=n>0.5000</td><td class=n>+1.2</td>" in table
    assert "<td class=c>-</td>" in table and "<caption>scored at x</caption>" in table


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium_with_every_section_and_image(tmp_path):
    cfg = load_config(None, ["data.image_size=32", "data.batch_size=4", "data.phantom_n=16",
                             "model.options={base_filters: 4, depth: 2}", "train.epochs=2", "train.verbose=0",
                             "data.augment.enabled=false", f"run_root={tmp_path}", "name=r"])
    run = train(cfg).run_dir
    assert main(["evaluate", str(run), "--data", str(run / "phantom"), "--blocks", "4"]) == 0
    summary = json.loads((run / "eval_test_summary.json").read_text())
    blocks = summary["by_id_block"]
    assert sum(b["n"] for b in blocks) == summary["images"] and all(b["ids"][1] - b["ids"][0] == 3 for b in blocks)
    tflite = tmp_path / "model_int8.tflite"
    assert main(["export", str(run), "--quant", "int8", "--out", str(tflite)]) == 0
    # the pipeline's clinical checks, into the run (where the report looks for robustness.json)
    clinic = clinic_checks(run, tflite, run, explain_images=1, biometry_images=3,
                           models={"student (Keras)": run, "student int8": tflite}, robustness_images=1)
    rows = json.loads((run / "robustness" / "robustness.json").read_text())
    assert {r["model"] for r in rows} == {"student (Keras)", "student int8"}
    # robustness_images=1: the clean row is the first test image's score alone
    first = next(csv.DictReader((run / "eval_test_per_image.csv").open()))
    clean = next(r for r in rows if r["model"] == "student (Keras)" and r["level"] == 0)
    assert all(clean[f"dice_{c}"] == pytest.approx(float(first[f"dice_{c}"]), abs=1e-6)
               for c in ("background", "Brain", "CSP", "LV") if first[f"dice_{c}"] not in ("", "nan"))
    assert {r["corruption"] for r in rows} == set(SEVERITIES)
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out), "--examples", "2", "--tflite", str(tflite)]) == 0
    page = out.read_text()
    assert "src='http" not in page and "href='http" not in page  # self-contained
    # the biometry is the shipped file's, with the HC error statistic (the phantom has reference HCs)
    assert "Measured with <b>model int8 TFLite (shipped)</b>" in page and "signed mean error (mm)" in page
    for b in clinic["biometry"]:  # the clinic's numbers, from the same file
        assert b["hc_mm"] is None or f"<td class=n>{b['hc_mm']:.1f}</td>" in page, b
    assert f"<td class=n>{clinic['hc_error_mm']['mean_abs']:.2f}</td>" in page  # its MAE
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--virtual-time-budget=5000",
                          "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    # curves, 2 x (input, truth, Keras, TFLite) tiles, GradCAM++, robustness
    assert images == 11 and 'data-broken="0"' in body
    assert re.findall(r'<section id="(\w+)">', dom) == [k for k in SECTIONS if k != "chain"]  # chain: pipeline only
    for text in ("Brain", "generated ", "ms at 1 thread", "model_int8.tflite, ", "test metrics (card)", "HD95 (mm)",
                 "no ensemble table", "robustness curves", "GradCAM++ per class", "learning rate"):
        assert text in dom, text
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
