"""Why `lightseg measure` and the browser demo gave different HCs for one image, cause by cause,
and how far the runtimes agree now.

    PYTHONPATH=. .venv/bin/python experiments/hc_parity.py [--model M.tflite] [--hc18 DIR] [--every K]
        [--annotations] [--json OUT.json]

Model: the golden int8 student (android_demo/app/src/test/resources/golden), trained on the
phantom. Images: HC18 scans (800x540; the user's report was 010_HC.png: 119.7 mm in Python,
103.5 mm in the browser) when ``--hc18`` exists, plus the two real-shaped phantom cases of the
golden set (800x540 and 540x800, no data needed).

Per image, each row changes ONE thing and gives the HC difference it makes (percent of the
first variant):

- fit:       OpenCV ``fitEllipse`` (what Python used) vs the direct least-squares fit
             (Fitzgibbon; what core.js / Biometry.kt do, and Python now), same contour points
             of the device class map;
- boundary:  OpenCV's traced contour (one-pixel-wide parts visited twice) vs each boundary
             pixel once (the ports' definition), direct fit;
- upsample:  the old Python measure path (float letterbox, probabilities un-letterboxed
             bilinearly, then argmax) vs the device path (uint8 letterbox, the graph's class
             map, un-letterboxed nearest), direct fit on boundary pixels; with the class-map
             agreement and, inside it, how many letterboxed input pixels differ;
- total:     the old Python measure (bilinear + fitEllipse) vs the browser (device path + direct fit).

Then parity now: ``lightseg measure``'s TFLite path vs ``tflite/run_edge.py`` (class maps), vs
core.js in node (``tflite/web/check_golden.mjs``) and the Kotlin core
(``android_demo/run_core_tests.sh``, when kotlinc exists) on golden vectors written from these
same images into a temporary folder (nothing is committed). ``--annotations`` adds HC18's
reference check for both fits (every annotation, ~1 min).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import lightseg_tf  # noqa: F401  (pins tf-keras before TensorFlow)
from lightseg_tf.anatomy.biometry import (boundary_points, ellipse_perimeter, fit_ellipse_direct,
                                          fit_head_ellipse, head_circumference_mm, largest_component)
from lightseg_tf.core.io import read_gray
from lightseg_tf.data.letterbox import letterbox_image, letterbox_uint8
from lightseg_tf.deploy.golden import phantom_cases, write_golden
from lightseg_tf.deploy.runtime import load_tflite
from lightseg_tf.models.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
HEAD = (1, 2, 3)  # Brain, CSP, LV of the phantom-trained model


def contour_points(region: np.ndarray) -> np.ndarray:
    """OpenCV's outer contour of a region, as the old biometry took it (pixel centres)."""
    import cv2

    contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    return max(contours, key=len)[:, 0, :].astype(np.float64) + 0.5


def hc_opencv(points: np.ndarray) -> float:
    """HC (px) of OpenCV ``fitEllipse`` + half a pixel, the old ``fit_head_ellipse``."""
    import cv2

    _, (d1, d2), _ = cv2.fitEllipse(points.astype(np.float32))
    return ellipse_perimeter(max(d1, d2) / 2 + 0.5, min(d1, d2) / 2 + 0.5)


def hc_direct(points: np.ndarray) -> float:
    e = fit_ellipse_direct(points)
    return ellipse_perimeter(e.a + 0.5, e.b + 0.5)


def pct(new: float, old: float) -> float:
    return 100.0 * (new / old - 1.0)


def causes(seg, gray: np.ndarray, px: float) -> dict:
    """Every variant's HC (mm) for one uint8 image, and the class-map agreements."""
    image = gray[..., None].astype(np.float32) / 255.0
    old_map = Predictor.predict_mask(seg, image)  # the base class: bilinear probabilities, argmax
    dev_map = seg.predict_mask(image)  # the device path
    old_region = largest_component(np.isin(old_map, HEAD))
    dev_region = largest_component(np.isin(dev_map, HEAD))
    dev_contour, dev_pixels = contour_points(dev_region), boundary_points(dev_region)
    boxed_float, _ = letterbox_image(image, seg.size)
    boxed_uint8, _ = letterbox_uint8(gray, seg.size)
    float_as_uint8 = np.clip(np.round(boxed_float[..., 0] * 255), 0, 255).astype(np.uint8)
    probs_map = seg.run(boxed_float)[1].argmax(-1)
    return {
        "old_python_mm": hc_opencv(contour_points(old_region)) * px,
        "fit_opencv_mm": hc_opencv(dev_contour) * px,
        "fit_direct_mm": hc_direct(dev_contour) * px,
        "boundary_contour_mm": hc_direct(dev_contour) * px,
        "boundary_pixels_mm": hc_direct(dev_pixels) * px,
        "contour_points": len(dev_contour), "boundary_pixels": len(dev_pixels),
        "upsample_bilinear_mm": hc_direct(boundary_points(old_region)) * px,
        "upsample_nearest_mm": hc_direct(dev_pixels) * px,
        "class_map_agreement_pct": 100.0 * float((old_map == dev_map).mean()),
        "input_pixels_differing": int((float_as_uint8 != boxed_uint8).sum()),
        "letterboxed_class_map_agreement_pct": 100.0 * float((probs_map == seg.class_map(boxed_uint8)).mean()),
        "device_mm": fit_head_ellipse(np.isin(dev_map, HEAD)).perimeter * px,
    }


def load_run_edge():
    spec = importlib.util.spec_from_file_location("run_edge", ROOT / "tflite" / "run_edge.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def in_browser(golden: Path, manifest: dict) -> dict:
    """The page itself (LiteRT.js in headless chromium) on each case: class map and HC vs Python's."""
    import base64
    import functools
    import html
    import http.server
    import os
    import threading

    from lightseg_tf.deploy.golden import read_raw

    web = ROOT / "tflite" / "web"
    site = golden.parent / "site"
    site.mkdir()
    for name in ("index.html", "app.js", "core.js", "node_modules"):
        os.symlink(web / name, site / name)
    os.symlink(golden, site / "golden")
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base, out = f"http://127.0.0.1:{server.server_address[1]}", {}
    try:
        for c in manifest["cases"]:
            url = (f"{base}/?model=golden/{manifest['model']}&card=golden/{Path(manifest['model']).stem}.json"
                   f"&image=golden/{c['files']['png']}&px={c['pixel_size_mm']}")
            dom = subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                                  "--virtual-time-budget=60000", "--dump-dom", url],
                                 capture_output=True, text=True, timeout=300).stdout
            attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', html.unescape(re.search(r"<body[^>]*>", dom).group(0))))
            page = np.frombuffer(base64.b64decode(attrs["class-map"]), np.uint8)
            python = np.frombuffer(read_raw(golden / c["files"]["class_map"]), np.uint8)
            out[c["name"]] = {"browser_class_map_agreement_pct": 100.0 * float((page == python).mean()),
                              "browser_hc_rel_diff_pct": pct(float(attrs["hc"]), c["measurements"]["hc_mm"]),
                              "browser_training_domain": attrs.get("training-domain")}
    finally:
        server.shutdown()
    return out


def parity(model: Path, cases: list, seg, browser: bool = False) -> dict:
    """measure vs run_edge (class maps), core.js in node, the page in chromium and the Kotlin core."""
    out: dict = {name: {} for name, _, _ in cases}
    segmenter = load_run_edge().Segmenter(model, threads=1, edgetpu=False)
    for name, gray, _ in cases:
        edge_map, _ = segmenter(gray)
        out[name]["run_edge_class_map_agreement_pct"] = 100.0 * float(
            (edge_map == seg.predict_mask(gray[..., None] / 255.0)).mean())
    with tempfile.TemporaryDirectory() as work:
        tmp = str(Path(work) / "golden")
        manifest = json.loads(write_golden(model, tmp, cases=cases).read_text())
        for c in manifest["cases"]:
            out[c["name"]]["measure_hc_mm"] = c["measurements"]["hc_mm"]
            out[c["name"]]["measure_hc_px"] = c["measurements"]["hc_px"]
        if shutil.which("node"):
            proc = subprocess.run(["node", str(ROOT / "tflite" / "web" / "check_golden.mjs"), tmp],
                                  capture_output=True, text=True)
            for line in proc.stdout.splitlines():
                row = json.loads(line)
                if "name" in row:
                    out[row["name"]]["js_class_map_agreement_pct"] = 100.0 * row["class_map_agreement"]
                    out[row["name"]]["js_letterbox_agreement_pct"] = 100.0 * row["letterbox_agreement"]
                    out[row["name"]]["js_hc_rel_diff_pct"] = 100.0 * row.get("rel_diff", {}).get("hc", float("nan"))
        if browser:
            out.update({k: {**out[k], **v} for k, v in in_browser(Path(tmp), manifest).items()})
        if shutil.which("kotlinc"):
            proc = subprocess.run(["bash", str(ROOT / "android_demo" / "run_core_tests.sh"), tmp],
                                  capture_output=True, text=True)
            out["_kotlin_ok"] = "OK (" in proc.stdout
            for m in re.finditer(r"parity (\S+) hc_px=\S+ python=\S+ rel_diff=(\S+)", proc.stdout):
                out[m.group(1)]["kotlin_hc_rel_diff_pct"] = 100.0 * float(m.group(2))
    return out


def annotations(hc18: Path) -> dict:
    """HC18 annotations: |HC / reference - 1| with the old (OpenCV fitEllipse) and the new fit."""
    from lightseg_tf.data.readers import read_dataset

    ds = read_dataset(hc18, "hc18")
    old, new = [], []
    for r in ds.records:
        mask = ds.load_mask(r)
        old.append(abs(hc_opencv(contour_points(largest_component(mask > 0))) * r.pixel_size_mm / r.hc_mm - 1))
        new.append(abs(head_circumference_mm(mask, r.pixel_size_mm) / r.hc_mm - 1))
    return {"images": len(old), "old_median_pct": 100 * float(np.median(old)), "new_median_pct": 100 * float(np.median(new)),
            "old_max_pct": 100 * float(np.max(old)), "new_max_pct": 100 * float(np.max(new))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, default=GOLDEN / "student_int8.tflite")
    ap.add_argument("--hc18", type=Path, default=ROOT.parent / "shared" / "datasets" / "hc18")
    ap.add_argument("--every", type=int, default=50, help="every K-th HC18 image besides 010_HC.png")
    ap.add_argument("--annotations", action="store_true", help="also the HC18 annotation check of both fits")
    ap.add_argument("--browser", action="store_true",
                    help="also the page in headless chromium (needs chromium and tflite/web/node_modules)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)

    seg = load_tflite(args.model)
    cases = [(name, gray, px) for name, gray, px in phantom_cases(n=0, hard=False)]  # the real-shaped ones
    if args.hc18.is_dir():
        table = args.hc18 / "training_set_pixel_size_and_HC.csv"
        sizes = {r["filename"]: float(r["pixel size(mm)"]) for r in csv.DictReader(open(table))}
        names = ["010_HC.png"] + [n for n in sorted(sizes)[::args.every] if n != "010_HC.png"]
        for n in names:
            gray = np.round(read_gray(args.hc18 / "training_set" / n)[..., 0] * 255).astype(np.uint8)
            cases.append((n.removesuffix(".png"), gray, sizes[n]))
    rows = {name: causes(seg, gray, px) for name, gray, px in cases}
    for name, extra in parity(args.model, cases, seg, args.browser).items():
        if not name.startswith("_"):
            rows[name].update(extra)

    print("| image | old Python | browser | total | fit | boundary | upsample | class maps agree | input px differ |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows.items():
        print(f"| {name} | {r['old_python_mm']:.1f} | {r['device_mm']:.1f} | "
              f"{pct(r['device_mm'], r['old_python_mm']):+.2f} % | {pct(r['fit_direct_mm'], r['fit_opencv_mm']):+.2f} % | "
              f"{pct(r['boundary_pixels_mm'], r['boundary_contour_mm']):+.3f} % ({r['contour_points']} vs "
              f"{r['boundary_pixels']} pts) | {pct(r['upsample_nearest_mm'], r['upsample_bilinear_mm']):+.2f} % | "
              f"{r['class_map_agreement_pct']:.2f} % | {r['input_pixels_differing']} |")
    keys = ("fit", "boundary", "upsample", "total")
    spans = {k: [] for k in keys}
    for r in rows.values():
        spans["fit"].append(abs(pct(r["fit_direct_mm"], r["fit_opencv_mm"])))
        spans["boundary"].append(abs(pct(r["boundary_pixels_mm"], r["boundary_contour_mm"])))
        spans["upsample"].append(abs(pct(r["upsample_nearest_mm"], r["upsample_bilinear_mm"])))
        spans["total"].append(abs(pct(r["device_mm"], r["old_python_mm"])))
    print("\n|HC difference|, median / max over the images: " + ", ".join(
        f"{k} {np.median(v):.2f} / {np.max(v):.2f} %" for k, v in spans.items()))

    print("\nParity now (same image, same model): class maps vs `lightseg measure`'s, HC vs its HC")
    print("| image | measure HC mm | run_edge class map | core.js class map | core.js HC diff | Kotlin HC diff "
          "| page class map (S x S) | page HC diff |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    nan = float("nan")
    for name, r in rows.items():
        print(f"| {name} | {r['measure_hc_mm']:.2f} | {r['run_edge_class_map_agreement_pct']:.2f} % | "
              f"{r.get('js_class_map_agreement_pct', nan):.2f} % | {r.get('js_hc_rel_diff_pct', nan):.1e} % | "
              f"{r.get('kotlin_hc_rel_diff_pct', nan):.1e} % | {r.get('browser_class_map_agreement_pct', nan):.2f} % | "
              f"{r.get('browser_hc_rel_diff_pct', nan):+.1e} % |")
    result = {"model": str(args.model), "images": rows}
    if args.annotations and args.hc18.is_dir():
        result["hc18_annotations"] = a = annotations(args.hc18)
        print(f"\nHC18 annotations ({a['images']} images), |HC/reference - 1| median (max): OpenCV fitEllipse "
              f"{a['old_median_pct']:.2f} % ({a['old_max_pct']:.2f} %), direct fit {a['new_median_pct']:.2f} % "
              f"({a['new_max_pct']:.2f} %)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
