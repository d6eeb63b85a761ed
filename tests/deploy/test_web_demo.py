"""The browser demo (tflite/web): its core.js in node against the golden vectors, and the page in
headless chromium against the Python TFLite runner."""

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

from lightseg_tf.deploy.golden import read_raw

ROOT = REPO_ROOT
WEB = ROOT / "tflite" / "web"
GOLDEN = ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=60000"]


@pytest.mark.skipif(NODE is None, reason="node is not installed: core.js cannot run outside a browser")
def test_core_js_reproduces_the_golden_vectors_in_node():
    """Letterbox bit for bit, un-letterbox pixel for pixel, and Python's ellipse to 1e-9 (HC, BPD, OFD,
    centre), real-shaped 800x540 and 540x800 cases included; plain node, no browser."""
    out = subprocess.run([NODE, str(WEB / "check_golden.mjs"), str(GOLDEN)], capture_output=True, text=True,
                         timeout=120)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    cases = rows[:-1]
    assert len(cases) == len(json.loads((GOLDEN / "golden.json").read_text())["cases"]) and rows[-1]["failed"] == 0
    assert any(c["name"].endswith("800x540") and c["hc_px"] for c in cases)
    print("\n".join(f"{c['name']}: HC {c['hc_px']:.3f} px, rel diff {c['rel_diff']['hc']:.1e}" for c in cases))


@pytest.mark.skipif(NODE is None, reason="node is not installed: core.js cannot run outside a browser")
def test_core_js_training_domain_reads_new_and_older_cards():
    script = f"""
import {{ trainingDomain }} from {json.dumps((WEB / "core.js").as_uri())};
console.log(JSON.stringify([
  trainingDomain({{training_domain: {{dataset: "lightseg-phantom", format: "lightseg"}}}}),
  trainingDomain({{training_domain: {{dataset: "hc18", format: "hc18"}}}}),
  trainingDomain({{training_domain: null, training_data: {{path: "/runs/q/stages/data/phantom", format: "lightseg"}}}}),
  trainingDomain({json.dumps(json.loads((GOLDEN / "student_int8.json").read_text()))}),
  trainingDomain({{}})]));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == ["lightseg-phantom (lightseg)", "hc18", "phantom (lightseg)",
                                      "phantom (lightseg)", None]


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
        urls = [f"{base}/?model=/golden/{manifest['model']}&card=/golden/{Path(manifest['model']).stem}.json"
                f"&image=/golden/{case['files']['png']}&px={case['pixel_size_mm']}" for case in manifest["cases"]]
        for case, url in zip(manifest["cases"], urls):
            out = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=180)
            body = re.search(r"<body[^>]*>", out.stdout)
            assert body, out.stderr[-2000:]
            attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', html.unescape(body.group(0))))
            assert attrs.get("status") == "done", attrs.get("error", out.stdout[-2000:])
            page = np.frombuffer(base64.b64decode(attrs["class-map"]), np.uint8)
            python = np.frombuffer(read_raw(GOLDEN / case["files"]["class_map"]), np.uint8)
            assert page.size == python.size == size * size
            agree = (page == python).mean()
            assert agree >= 0.995, f"{case['name']}: {agree:.4f}"
            want = case["measurements"]["hc_mm"]
            if want:
                assert float(attrs["hc"]) == pytest.approx(want, rel=0.005)
                print(f"{case['name']}: class map {100 * agree:.2f} % of pixels, HC {float(attrs['hc']):.3f} mm "
                      f"vs Python {want:.3f} mm")
            assert attrs.get("training-domain") == "phantom (lightseg)"  # the golden card is an older one
        shot = tmp_path / "web_demo.png"  # the first (small) case: the result line stays in view
        subprocess.run([CHROMIUM, *FLAGS, "--window-size=1000,760", f"--screenshot={shot}", urls[0]],
                       capture_output=True, timeout=180)
        assert shot.exists() and shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        server.shutdown()
