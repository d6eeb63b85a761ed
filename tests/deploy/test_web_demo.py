"""The browser demo (tflite/web): its core.js in node against the golden vectors, and the page in
headless chromium against the Python TFLite runner."""

import base64
import html
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from web_server import serve

from lightseg_tf.anatomy.confidence import LOW_CONFIDENCE, low_structures, structure_flag, verdict
from lightseg_tf.anatomy.precision import round_half_up
from lightseg_tf.deploy.golden import CONFIDENCE_ATOL, read_raw
from lightseg_tf.evaluation.measure import _confidence

ROOT = REPO_ROOT
WEB = ROOT / "tflite" / "web"
GOLDEN = ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
TRAINING_DOMAIN_CASES = GOLDEN.parent / "training_domain_cases.json"  # also read by TrainingDomainTest.kt
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
    print("\n".join(f"{c['name']}: HC {c['hc_px']:.3f} px, rel diff {c['rel_diff']['hc']:.1e}" for c in cases
                    if c["hc_px"]))
    # The confidence port: Python's score, components and verdicts on every case (blank, twins and
    # zoomed included), and the half-up verdict table.
    assert all(c["verdicts_ok"] and c["confidence_max_diff"] <= CONFIDENCE_ATOL for c in cases)
    assert rows[-1]["verdict_table"] > 0 and rows[-1]["verdict_table_failed"] == []
    print(f"confidence: max |score - Python| {max(c['confidence_diff'] for c in cases):.1e} over {len(cases)} cases")


@pytest.mark.skipif(NODE is None, reason="node is not installed: core.js cannot run outside a browser")
def test_core_js_confidence_line_and_threshold_read_as_lightseg_measure_prints_them():
    script = f"""
import {{ cardThreshold, confidenceLine, verdict }} from {json.dumps((WEB / "core.js").as_uri())};
console.log(JSON.stringify([
  confidenceLine(0.295, 0.3), confidenceLine(0.0149, null), cardThreshold({{confidence: {{threshold: 0.3}}}}),
  cardThreshold({{confidence: null}}), cardThreshold({{}}), verdict(0.295, 0.3), verdict(0.2949, 0.3)]));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == ["confidence 0.30 (threshold 0.30)",
                                      "confidence 0.01 (uncalibrated: no threshold known)",
                                      0.3, None, None, "ok", "low"]
    assert _confidence({"confidence": 0.3, "confidence_threshold": 0.3}) == ["confidence 0.30 (threshold 0.30)"]
    assert _confidence({"confidence": 0.01, "confidence_threshold": None}) == [
        "confidence 0.01 (uncalibrated: no threshold known)"]


@pytest.mark.skipif(NODE is None, reason="node is not installed: core.js cannot run outside a browser")
def test_core_js_training_domain_reads_new_and_older_cards():
    """trainingDomain and the line shown beside a measurement, on the case table the Android core's
    TrainingDomainTest reads too (new cards, older ones with only training_data, the golden card,
    empty fields, a card that says nothing: "unknown (the card does not say)")."""
    table = json.loads(TRAINING_DOMAIN_CASES.read_text())["cases"]
    cards = [c["card"] if "card" in c else json.loads((GOLDEN / c["golden_card"]).read_text()) for c in table]
    script = f"""
import {{ trainingDomain, trainingDomainLine }} from {json.dumps((WEB / "core.js").as_uri())};
const cards = {json.dumps(cards)};
console.log(JSON.stringify(cards.map((c) => [trainingDomain(c), trainingDomainLine(c)])));
"""
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert len(table) >= 10 and any(c["domain"] is None for c in table) and any("golden_card" in c for c in table)
    for case, (domain, line) in zip(table, got):
        assert (domain, line) == (case["domain"], case["line"]), case["name"]


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


def _page(url: str) -> tuple[dict, str]:
    """The page at ``url`` in headless chromium (virtual time): its body's data attributes and its DOM."""
    out = subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    body = re.search(r"<body[^>]*>", out.stdout)
    assert body, out.stderr[-2000:]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', html.unescape(body.group(0))))
    assert attrs.get("status") == "done", attrs.get("error", out.stdout[-2000:])
    return attrs, out.stdout


CALIBRATED = 0.6  # a test threshold between the golden scores: some cases are flagged, some not


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_browser_class_maps_match_the_python_runner_and_a_screenshot_is_saved(litert_js, tmp_path):
    """Every golden case in LiteRT.js: the class map, HC, and the head confidence within 0.005 of
    Python's with Python's verdict, against a copy of the card calibrated at ``CALIBRATED`` (and per
    structure at the median margin): a flagged case shows "low confidence: do not use" and each
    structure Python flags, an unflagged one no flag; the uncalibrated golden card says so."""
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    size = manifest["size"]
    golden = tmp_path / "golden"
    shutil.copytree(GOLDEN, golden)
    card = json.loads((GOLDEN / f"{Path(manifest['model']).stem}.json").read_text())
    # Per-structure thresholds at each structure's median margin over the cases: some flag it, some not.
    margins = [c["confidence"]["structures"] for c in manifest["cases"]]
    structures = {k: round_half_up(float(np.median([m[k] for m in margins if k in m])), 2)
                  for k in manifest["classes"][1:] if any(k in m for m in margins)}
    card["confidence"] = {"score": manifest["confidence"]["score"], "threshold": CALIBRATED,
                          "calibrated_on": {"split": "val", "note": "a test value"}, "structures": structures}
    (golden / "calibrated.json").write_text(json.dumps(card))
    server, base = serve(litert_js, golden)
    try:
        urls = [f"{base}/?model=/golden/{manifest['model']}&card=/golden/calibrated.json"
                f"&image=/golden/{case['files']['png']}&px={case['pixel_size_mm'] or ''}" for case in manifest["cases"]]
        flagged, parts_flagged = [], 0
        for case, url in zip(manifest["cases"], urls):
            attrs, dom = _page(url)
            score = case["confidence"]["score"]
            assert float(attrs["confidence"]) == pytest.approx(score, abs=0.005), case["name"]
            assert attrs["confidence-status"] == verdict(score, CALIBRATED), case["name"]
            shown = re.search(r'<p id="flag"[^>]*>([^<]*)</p>', dom)
            low_parts = low_structures(case["confidence"]["structures"], structures)
            assert attrs["low-structures"] == "|".join(low_parts), case["name"]
            want_flags = [LOW_CONFIDENCE] * (attrs["confidence-status"] == "low") + [structure_flag(k) for k in low_parts]
            assert shown.group(1) == "; ".join(want_flags), case["name"]
            assert ("hidden" in shown.group(0)) == (not want_flags)
            if attrs["confidence-status"] == "low":
                flagged.append(case["name"])
            parts_flagged += bool(low_parts)
            assert f"confidence {round_half_up(float(attrs['confidence']), 2):.2f} (threshold 0.60)" in dom
            print(f"{case['name']}: confidence {float(attrs['confidence']):.6f} vs Python {score:.6f}, "
                  f"|diff| {abs(float(attrs['confidence']) - score):.1e} ({attrs['confidence-status']})")
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
        assert flagged and len(flagged) < len(urls) and 0 < parts_flagged < len(urls)
        uncalibrated = f"card=/golden/{Path(manifest['model']).stem}.json"
        attrs, dom = _page(urls[1].replace("card=/golden/calibrated.json", uncalibrated))
        assert attrs["confidence-status"] == "uncalibrated" and "(uncalibrated: no threshold known)" in dom
        shot = tmp_path / "web_demo.png"  # the first (small, flagged) case: the result line stays in view
        subprocess.run([CHROMIUM, *FLAGS, "--window-size=1000,800", f"--screenshot={shot}", urls[0]],
                       capture_output=True, timeout=180)
        assert shot.exists() and shot.stat().st_size > 10_000
        print(f"screenshot: {shot}")
    finally:
        server.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_tta_export_runs_in_the_browser_as_in_python(litert_js, tmp_path):
    """``lightseg export --tta flips`` builds the mirrored views into the graph (REVERSE_V2, a batch
    of 4): LiteRT.js must run it and give the Python runner's class map on a real-shaped image."""
    from conftest import tiny_unet

    from lightseg_tf.deploy.convert import build_card, convert, write_export
    from lightseg_tf.deploy.golden import write_golden

    manifest = json.loads((GOLDEN / "golden.json").read_text())
    size, classes, colors = manifest["size"], manifest["classes"], manifest["colors"]
    rng = np.random.default_rng(0)
    content = convert(tiny_unet(size), "int8", [rng.random((size, size, 1), dtype=np.float32) for _ in range(4)],
                      tta="flips")
    card = build_card(content, name="tta", classes=classes, colors=colors, size=size, quant="int8")
    model, _ = write_export(content, card, tmp_path / "tta_int8.tflite")
    golden = tmp_path / "golden"
    tta_manifest = json.loads(write_golden(model, golden, n=1, real_shapes=[(540, 800)], hard=False).read_text())
    server, base = serve(litert_js, golden)
    try:
        for case in tta_manifest["cases"]:
            attrs, _ = _page(f"{base}/?model=/golden/tta_int8.tflite&card=/golden/tta_int8.json"
                             f"&image=/golden/{case['files']['png']}&px=0.2")
            page = np.frombuffer(base64.b64decode(attrs["class-map"]), np.uint8)
            python = np.frombuffer(read_raw(golden / case["files"]["class_map"]), np.uint8)
            assert page.size == python.size == size * size and len(np.unique(python)) > 1, case["name"]
            assert (page == python).mean() >= 0.995, case["name"]
    finally:
        server.shutdown()


def _drive(server, base, tmp_path, page="", steps=(), **files) -> dict:
    """web_driver.html in headless chromium, in real time: open the page at ``/?page``, choose
    ``files[step]`` for each of ``steps`` in order; returns what the driver saw (see the HTML)."""
    query = urllib.parse.urlencode({"page": page, "steps": ",".join(steps), **files})
    log = tmp_path / "chromium.log"
    with open(log, "wb") as err:
        # Its own session: the Debian wrapper script and the browser's helpers all end with it.
        proc = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"{base}/driver.html?{query}"],
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            out = server.results.get(timeout=150)
        except queue.Empty:
            pytest.fail(f"the driver reported nothing in 150 s; chromium said: {log.read_text()[-2000:]}")
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:  # it had crashed; its log is in the failure above
                pass
            proc.wait(timeout=30)
    assert "driverError" not in out, out
    return out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_fresh_clone_page_asks_for_a_model_instead_of_failing_on_json(litert_js, tmp_path):
    """No golden/ folder (it is made by ``lightseg export --golden``): the old README link used to
    end in "Unexpected token '<' ... is not valid JSON" (the server's 404 page parsed as a card)."""
    server, base = serve(litert_js, tmp_path / "golden")  # absent, as on a fresh clone
    try:
        link = _drive(server, base, tmp_path, page="model=golden/student_int8.tflite&card=golden/student_int8.json"
                                                    "&image=golden/case_00_image.png&px=0.8")
        bare = _drive(server, base, tmp_path)
    finally:
        server.shutdown()
    for out in (link, bare):
        assert out["status"] == "need-model" and "error" not in out["data"], out
        assert "Load a model" in out["text"] and "runs/quickstart/stages/export/" in out["text"]
        assert "JSON" not in out["text"] and out["modelInfo"] == "no model loaded"
    assert "golden/student_int8.tflite (HTTP 404)" in link["text"] and "golden/student_int8.json (HTTP 404)" in link["text"]
    assert bare["text"].startswith("Load a model")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_page_served_before_npm_ci_says_to_run_it(tmp_path):
    web = tmp_path / "web"  # a fresh clone's tflite/web: no node_modules/
    web.mkdir()
    for name in ("index.html", "app.js", "core.js"):
        shutil.copy(WEB / name, web / name)
    server, base = serve(web, GOLDEN)
    try:
        out = _drive(server, base, tmp_path)
    finally:
        server.shutdown()
    assert out["status"] == "error" and "run npm ci in tflite/web" in out["data"]["error"], out


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_model_card_and_image_can_be_chosen_in_any_order(litert_js, tmp_path):
    manifest = json.loads((GOLDEN / "golden.json").read_text())
    case = manifest["cases"][0]
    python = np.frombuffer(read_raw(GOLDEN / case["files"]["class_map"]), np.uint8)
    files = {"model": "/golden/student_int8.tflite", "card": "/golden/student_int8.json",
             "image": f"/golden/{case['files']['png']}"}
    server, base = serve(litert_js, GOLDEN)
    try:
        runs = {order: _drive(server, base, tmp_path, steps=order, **files)
                for order in (("model", "card", "image"), ("card", "model", "image"), ("image", "card", "model"))}
    finally:
        server.shutdown()
    waiting = {"model": ("need-model", "student_int8.tflite chosen: now choose its model card (student_int8.json"),
               "card": ("need-model", "student_int8.json chosen: now choose its model (.tflite)"),
               "image": ("need-model", f"image {case['files']['png']} ready. Load a model"),
               "both": ("ready", "model ready (student_int8.tflite): choose an image")}
    for order, out in runs.items():
        seen = [(s["status"], s["text"]) for s in out["steps"][1:]]
        want = [waiting[order[0]], waiting["both" if order[2] == "image" else order[1]]]
        assert [(st, text[:len(w)]) for (st, text), (_, w) in zip(seen, want)] == want, (order, seen)
        assert out["status"] == "done", (order, out)
        assert out["text"] == f"done: {case['files']['png']} segmented by student_int8.tflite"
        # The model's name and what it was trained on stay in view (the golden card is an older one).
        assert out["modelInfo"] == ("model: student_int8.tflite (quickstart-qat-lightseg_student-int8), 96x96, int8; "
                                    "trained on: phantom (lightseg)")
        assert out["data"]["trainingDomain"] == "phantom (lightseg)"
        page = np.frombuffer(base64.b64decode(out["data"]["classMap"]), np.uint8)
        assert (page == python).mean() >= 0.995, order


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_a_card_of_another_model_is_refused_by_name(litert_js, tmp_path):
    golden = tmp_path / "golden"
    golden.mkdir()
    (golden / "student_int8.tflite").symlink_to(GOLDEN / "student_int8.tflite")
    card = json.loads((GOLDEN / "student_int8.json").read_text())
    (golden / "other.json").write_text(json.dumps({**card, "sha256": "0" * 64}))
    server, base = serve(litert_js, golden)
    try:
        out = _drive(server, base, tmp_path, steps=("card", "model"), model="/golden/student_int8.tflite",
                     card="/golden/other.json")
    finally:
        server.shutdown()
    assert out["status"] == "error" and out["modelInfo"] == "no model loaded"
    assert out["data"]["error"] == ("other.json is the card of another model (its SHA-256 is not student_int8.tflite's): "
                                    "choose the .json exported with student_int8.tflite")


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_times_inference_in_real_time(litert_js, tmp_path):
    """The page's latency (``&runs=N``: median of N runs after a warm-up) on the quickstart-sized int8
    golden model (96 px, 0.34 M parameters); under --virtual-time-budget it would read 0.00 ms.
    ``pytest -s`` prints it (docs/BENCHMARKS.md, "Browser demo latency")."""
    runs = 30
    server, base = serve(litert_js, GOLDEN)
    try:
        out = _drive(server, base, tmp_path, page=f"model=/golden/student_int8.tflite&card=/golden/student_int8.json"
                                                  f"&image=/golden/case_00_image.png&runs={runs}")
    finally:
        server.shutdown()
    assert out["status"] == "done", out
    times = [float(t) for t in out["data"]["msAll"].split()]
    assert len(times) == runs and min(times) > 0
    assert float(out["data"]["ms"]) == pytest.approx(sorted(times)[(runs - 1) // 2], abs=0.01)
    assert f"(median of {runs} runs after a warm-up; LiteRT.js, WebAssembly)" in out["result"]
    print(f"\nLiteRT.js int8 96x96 in headless {CHROMIUM}: median {out['data']['ms']} ms over {runs} runs "
          f"(min {min(times):.2f}, max {max(times):.2f}; first run {out['data']['msFirst']} ms)")
