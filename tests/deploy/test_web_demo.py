"""The browser demo (tflite/web) in headless chromium against the Python TFLite runner."""

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from web_server import serve

ROOT = REPO_ROOT
WEB = ROOT / "tflite" / "web"
GOLDEN = ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=60000"]


@pytest.fixture(scope="module")
def litert_js():
    """tflite/web/node_modules (npm ci from the lockfile when missing)."""
    if not (WEB / "node_modules" / "@litertjs" / "core").is_dir():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed: cannot fetch @litertjs/core for the browser demo")
        out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=WEB, capture_output=True, text=True,
                             timeout=600)
        if out.returncode != 0:
            pytest.skip(f"npm ci failed in {WEB} (offline?): {out.stderr[-300:]}")
    return WEB


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_class_maps_match_the_python_runner_and_a_screenshot_is_saved(litert_js, tmp_path):
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    size = manifest["size"]
    server, base = serve(litert_js, GOLDEN)
    try:
        for case in manifest["cases"]:
            url = (f"{base}/?model=/golden/{manifest['model']}&card=/golden/{Path(manifest['model']).stem}.json"
                   f"&image=/golden/{case['files']['png']}&px={case['pixel_size_mm']}")
            out = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=180)
            body = re.search(r"<body[^>]*>", out.stdout)
            assert body, out.stderr[-2000:]
            attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', html.unescape(body.group(0))))
            assert attrs.get("status") == "done", attrs.get("error", out.stdout[-2000:])
            page = np.frombuffer(base64.b64decode(attrs["class-map"]), np.uint8)
            python = np.fromfile(GOLDEN / case["files"]["class_map"], np.uint8)
            assert page.size == python.size == size * size
            assert (page == python).mean() >= 0.99, f"{case['name']}: {(page == python).mean():.4f}"
            want = case["measurements"]["hc_mm"]
            if want:
                assert float(attrs["hc"]) == pytest.approx(want, rel=0.01)
        shot = tmp_path / "web_demo.png"
        subprocess.run([CHROMIUM, *FLAGS, "--window-size=1000,760", f"--screenshot={shot}", url],
                       capture_output=True, timeout=180)
        assert shot.exists() and shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        server.shutdown()
