"""One self-contained HTML report of one or more runs (every image embedded as data URI).

Sections: data summary, per-class test metrics, ensemble table (when a run has one),
efficiency, training curves, qualitative panels (input | ground truth | each model) in the
project palette, GradCAM++ panels, robustness curves, biometry. A small inline script counts
images that failed to decode and writes the result on ``<body>`` (``data-images``,
``data-broken``) so a headless browser can check the page.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from lightseg_tf.core.io import write_text_atomic

CSS = """body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}img{max-width:100%}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:32px}.note{color:#666;font-size:90%}"""
CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.images=imgs.length;
document.body.dataset.broken=imgs.filter(i=>!(i.complete&&i.naturalWidth>0)).length;});</script>"""


def png_uri(array_or_path) -> str:
    """A ``data:image/png;base64`` URI of a uint8 array or a PNG file."""
    if isinstance(array_or_path, (str, Path)):
        data = Path(array_or_path).read_bytes()
    else:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(array_or_path, np.uint8)).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else html.escape(str(v)))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def build_report(runs: list[str | Path], out: str | Path, n_examples: int = 3, robustness: list[Path] | None = None,
                 extra_html: str = "") -> Path:
    """Write the report of ``runs`` (directories made by ``lightseg train``) to ``out``.

    Args:
        robustness: robustness PNGs to show (default: each run's ``robustness/robustness.png``).
        extra_html: a section placed right after the data section (e.g. the pipeline's table).
    """
    from lightseg_tf.anatomy.biometry import measure_mask
    from lightseg_tf.data.inspect import dataset_stats
    from lightseg_tf.data.letterbox import letterbox_image
    from lightseg_tf.evaluation.explain import gradcam_plus_plus
    from lightseg_tf.deploy.model_stats import count_flops
    from lightseg_tf.core.palette import contact_sheet, overlay
    from lightseg_tf.models.predictor import KerasPredictor
    from lightseg_tf.models.saving import load_trained_model
    from lightseg_tf.runs import open_run

    runs = [open_run(r) for r in runs]
    first = runs[0]
    test = first.part("test")
    models = {rd.run_dir.name: KerasPredictor(load_trained_model(rd.run_dir)) for rd in runs}
    parts = [f"<h1>lightseg report</h1><p class='note'>runs: {', '.join(html.escape(str(r.run_dir)) for r in runs)}</p>"]

    stats = dataset_stats(first.dataset)
    parts.append("<h2>Data</h2>" + _table(
        ["dataset", "format", "images", "subjects", "train / val / test", "image sizes", "pixel size (mm)"],
        [[stats["path"], stats["format"], stats["images"], stats["subjects"],
          " / ".join(str(len(first.split[k])) for k in ("train", "val", "test")),
          ", ".join(f"{k} ({v})" for k, v in list(stats["image_sizes"].items())[:3]),
          "-" if not stats["pixel_size_mm"] else f"{stats['pixel_size_mm']['min']:.3f}-{stats['pixel_size_mm']['max']:.3f}"]]))
    parts.append(_table(["class", "pixels %", "images with it"],
                        [[c, 100 * f, stats["images_with_class"][c]] for c, f in stats["pixel_fraction"].items()]))

    parts.append(extra_html)
    metric_rows, eff_rows = [], []
    for rd in runs:
        s_path = rd.run_dir / "eval_test_summary.json"
        if s_path.exists():
            s = json.loads(s_path.read_text())
            for c, m in s["per_class"].items():
                metric_rows.append([rd.run_dir.name, c, m.get("dice"), m.get("iou"), m.get("hd95"), m.get("assd")])
        model = models[rd.run_dir.name].model
        eff_rows.append([rd.run_dir.name, rd.cfg.model.name, f"{model.count_params():,}",
                         round(count_flops(model) / 1e9, 3), f"{int(model.input_shape[1])} px",
                         ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in sorted(rd.run_dir.glob("*.tflite")))])
    parts.append("<h2>Test metrics (original resolution)</h2>" + (_table(
        ["run", "class", "Dice", "IoU", "HD95", "ASSD"], metric_rows) if metric_rows else
        "<p class='note'>no eval_test_summary.json: run lightseg evaluate first</p>"))
    ens = [rd.run_dir / "ensemble_table.json" for rd in runs if (rd.run_dir / "ensemble_table.json").exists()]
    parts.append("<h2>Ensemble</h2>" + ("".join(_table(*json.loads(p.read_text())) for p in ens) if ens else
                                         "<p class='note'>these runs hold no ensemble table</p>"))
    parts.append("<h2>Efficiency</h2>" + _table(["run", "model", "parameters", "GFLOPs", "input", "exported"], eff_rows))

    parts.append("<h2>Training curves</h2>" + "".join(
        f"<h3>{html.escape(rd.run_dir.name)}</h3><img alt='curves' src='{png_uri(rd.run_dir / 'curves.png')}'>"
        for rd in runs if (rd.run_dir / "curves.png").exists()))

    tiles, cams, bio_rows = [], [], []
    for rec in test.records[:n_examples]:
        image, mask = test.load_pair(rec)
        row = [overlay(image, np.zeros_like(mask)), overlay(image, mask, num_classes=test.num_classes)]
        for name, predictor in models.items():
            pred = predictor.predict_mask(image)
            row.append(overlay(image, pred, num_classes=test.num_classes))
            m = measure_mask(pred, test.classes, rec.pixel_size_mm)
            bio_rows.append([rec.id, name, m.get("hc"), rec.hc_mm, m.get("bpd"), m.get("csp_width"),
                             m.get("lv_width"), "; ".join(m["flags"]) or "-"])
            if name == next(iter(models)):
                boxed, _ = letterbox_image(image, predictor.size)
                cam = gradcam_plus_plus(predictor.model, boxed, 1)
                heat = (np.stack([cam, cam * 0.3, 1 - cam], -1) * 255).astype(np.uint8)
                gray = np.repeat((boxed * 255).astype(np.uint8), 3, -1)
                cams.append((0.55 * gray + 0.45 * heat).astype(np.uint8))
        h = max(t.shape[0] for t in row)
        tiles += [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0))) for t in row]
    parts.append("<h2>Qualitative (input | ground truth | " + " | ".join(html.escape(n) for n in models) + ")</h2>"
                 + f"<img alt='panels' src='{png_uri(contact_sheet(tiles, columns=2 + len(models)))}'>")
    parts.append(f"<h2>GradCAM++ ({html.escape(test.classes[1])}, {html.escape(next(iter(models)))})</h2>"
                 + f"<img alt='gradcam' src='{png_uri(contact_sheet(cams, columns=len(cams)))}'>")
    rob = robustness if robustness is not None else [rd.run_dir / "robustness" / "robustness.png" for rd in runs]
    rob = [p for p in rob if Path(p).exists()]
    parts.append("<h2>Robustness</h2>" + ("".join(f"<img alt='robustness' src='{png_uri(p)}'>" for p in rob) if rob
                 else "<p class='note'>run lightseg robustness RUN --out RUN/robustness to add the curves</p>"))
    units = "mm" if test.records and test.records[0].pixel_size_mm else "px"
    parts.append(f"<h2>Biometry ({units})</h2>" + _table(
        ["image", "model", "HC", "reference HC", "BPD", "CSP", "LV", "flags"], bio_rows))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lightseg report</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}{CHECK}</body></html>")
    out = Path(out)
    write_text_atomic(out, page)
    return out
