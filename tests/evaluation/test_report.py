"""The HTML report, rendered by a real headless Chromium (Debian's package): no broken image."""

import re
import shutil
import subprocess

import pytest

from lightseg_tf.cli import main
from lightseg_tf.config import load_config
from lightseg_tf.training.trainer import train

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium_with_every_image(tmp_path):
    cfg = load_config(None, ["data.image_size=32", "data.batch_size=4", "data.phantom_n=16",
                             "model.options={base_filters: 4, depth: 2}", "train.epochs=2", "train.verbose=0",
                             "data.augment.enabled=false", f"run_root={tmp_path}", "name=r"])
    run = train(cfg).run_dir
    assert main(["evaluate", str(run), "--data", str(run / "phantom")]) == 0
    assert main(["robustness", str(run), "--data", str(run / "phantom"), "--corruptions", "jpeg",
                 "--out", str(run / "robustness")]) == 0
    out = tmp_path / "report.html"
    assert main(["report", str(run), "--out", str(out), "--examples", "2"]) == 0
    page = out.read_text()
    assert "<h2>Biometry" in page and "src='http" not in page  # self-contained
    dom = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p1'}", "--virtual-time-budget=5000",
                          "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    assert images >= 4 and 'data-broken="0"' in body  # curves, panels, GradCAM++, robustness
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'p2'}", "--window-size=1200,2000",
                    f"--screenshot={shot}", out.as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 10_000
