"""One self-contained HTML report of one or more runs and the model they shipped.

Every image is embedded as a data URI, so the page is one file. Each section is a
``<section id=...>`` (:data:`SECTIONS`): how to read the report (class colours, terms, the
resolution each table is scored at), the shipped model (its card, file size, latency, the card's
test metrics), data, the pipeline's table when given, per-class test metrics, the ensemble table,
size and speed, training curves, sample predictions, GradCAM++ per class, robustness curves,
biometry with the HC error (from the shipped model when there is one) and the configuration.
A small inline script counts images that failed to decode and writes the result on ``<body>``
(``data-images``, ``data-broken``) so a headless browser can check the page.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import os
import platform
import re
from pathlib import Path

import numpy as np
from PIL import Image

from lightseg_tf.core.io import write_text_atomic

CSS = """body{font-family:system-ui,sans-serif;margin:24px auto;color:#222;max-width:1200px;padding:0 16px}
table{border-collapse:collapse;margin:8px 0 6px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}td.c{text-align:center}img{max-width:100%}
caption{caption-side:bottom;text-align:left;color:#555;font-size:88%;padding:4px 0 14px;max-width:1000px}
h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}.note{color:#555;font-size:90%;max-width:1000px}
.sw{display:inline-block;width:14px;height:14px;border:1px solid #888;vertical-align:-2px;margin:0 4px 0 10px}
.scroll{overflow-x:auto}.tiles img{width:144px;max-width:none}
.tiles td,.tiles th{padding:2px;text-align:center;width:144px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0;max-width:590px}
figcaption{font-size:90%;color:#444}dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;max-width:1000px}
dt{font-weight:600}dd{margin:0}tr.mean td{font-weight:600;background:#fafafa}
nav a{margin-right:10px;font-size:90%}
pre{background:#f6f6f6;padding:8px;font-size:80%;max-height:420px;overflow:auto}"""
CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.images=imgs.length;
document.body.dataset.broken=imgs.filter(i=>!(i.complete&&i.naturalWidth>0)).length;});</script>"""

SECTIONS = {
    "legend": "How to read this report", "model": "The shipped model", "data": "Data",
    "chain": "Pipeline results", "metrics": "Test metrics per class", "ensemble": "Ensemble",
    "efficiency": "Size and speed", "curves": "Training curves", "qualitative": "Sample predictions",
    "gradcam": "GradCAM++: where each class's score comes from", "robustness": "Robustness to image corruptions",
    "biometry": "Biometry", "config": "Configuration",
}
LATENCY_RUNS = 30
NUMBER = re.compile(r"[+-]?[\d,]*\.?\d+( ?(px|KiB|ms|mm|%))?")  # right-aligned cells


def png_uri(image) -> str:
    """A ``data:image/png;base64`` URI of a uint8 array ``[H, W(, 3)]``, PNG bytes or a PNG file."""
    if isinstance(image, bytes):
        data = image
    elif isinstance(image, (str, Path)):
        data = Path(image).read_bytes()
    else:
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
        data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode()


def html_table(header: list[str], rows: list[list], caption: str | None = None,
               mean_rows: set[int] = frozenset()) -> str:
    """An HTML table; floats print to 4 decimals, None as ``-``; ``caption`` says how it was scored.

    Args:
        header: column titles (plain text).
        rows: cells (numbers, plain text, or :class:`Markup` for HTML).
        caption: plain text under the table.
        mean_rows: indices of rows shown in bold (summary rows).
    """
    def cell(v):
        if isinstance(v, Markup):
            return f"<td>{v}</td>"
        text = "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))
        number = isinstance(v, (int, float)) or NUMBER.fullmatch(text)
        align = " class=c" if text == "-" else " class=n" if number else ""
        return f"<td{align}>{html.escape(text)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(f"<tr{' class=mean' if k in mean_rows else ''}>" + "".join(cell(v) for v in r)
                   + "</tr>" for k, r in enumerate(rows))
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


class Markup(str):
    """A table cell that is already HTML (not escaped)."""


def section(key: str, body: str, title: str | None = None) -> str:
    """``<section id=key>`` with its ``<h2>`` (default title from :data:`SECTIONS`)."""
    return f"<section id='{key}'><h2>{html.escape(title or SECTIONS[key])}</h2>{body}</section>"


def human_column(key: str) -> str:
    """A table key as a header: ``mean_fg_dice`` -> ``mean fg Dice``, ``CSP_iou`` -> ``CSP IoU``."""
    for suffix, name in (("_dice", "Dice"), ("_iou", "IoU"), ("_hd95", "HD95"), ("_assd", "ASSD")):
        if key.endswith(suffix):
            return f"{key[:-len(suffix)].replace('mean_fg', 'mean fg')} {name}"
    return key.replace("_", " ")


def swatches(classes, colors) -> str:
    """Inline colour boxes with class names (background, never painted, is left out)."""
    return "".join(f"<span class='sw' style='background:rgb({c[0]},{c[1]},{c[2]})'></span>{html.escape(n)}"
                   for n, c in list(zip(classes, colors))[1:])


def _mm(v, digits: int = 1, signed: bool = False):
    return None if v is None else f"{v:{'+' if signed else ''}.{digits}f}"


def build_report(runs, out: str | Path, n_examples: int = 3, robustness: list[Path] | None = None,
                 extra_html: str = "", shipped: str | Path | None = None, config: str | Path | None = None,
                 biometry_images: int = 8) -> Path:
    """Write the report of ``runs`` (and of the model they ``shipped``) to ``out``.

    Args:
        runs: run directories made by ``lightseg train`` / ``distill``, a list (named by folder) or
            ``{label: run}``; the first one's test split, data and Keras model feed the panels.
        out: the HTML file.
        n_examples: test images in the sample predictions and GradCAM++ panels.
        robustness: ``robustness.json`` files whose rows are plotted (default: each run's
            ``robustness/robustness.json``).
        extra_html: sections placed after the data (e.g. the pipeline's table, built with :func:`section`).
        shipped: the exported ``.tflite`` (its card beside it): card, size, latency, its own
            predictions and the biometry; None: biometry from the first run's Keras model.
        config: the YAML config shown (default: the first run's ``config.yaml``).
        biometry_images: the first test images measured (the pipeline's ``biometry_images``).

    Returns:
        ``out``.
    """
    from lightseg_tf import __version__
    from lightseg_tf.core.palette import class_colors
    from lightseg_tf.deploy.runtime import load_predictor, load_tflite
    from lightseg_tf.evaluation.benchmark import tflite_latency
    from lightseg_tf.runs import open_run

    named = dict(runs) if isinstance(runs, dict) else {Path(r).name: r for r in runs}
    rds = {label: open_run(r) for label, r in named.items()}
    first_label, first = next(iter(rds.items()))
    test = first.part("test")
    colors = class_colors(test.num_classes)
    models = {label: load_predictor(rd.run_dir) for label, rd in rds.items()}
    tfl = load_tflite(shipped) if shipped else None
    tfl_label = f"{Path(shipped).stem.replace('_', ' ')} TFLite (shipped)" if tfl else None
    # Measured once: the model section and the efficiency table show the same 1-thread figure.
    latency = {t: tflite_latency(Path(shipped), t, LATENCY_RUNS) for t in (1, 2)} if tfl else {}
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f"<a href='#{k}'>{html.escape(v.split(':')[0])}</a>" for k, v in SECTIONS.items()
                  if k != "chain" or "id='chain'" in extra_html)
    parts = [f"<h1>lightseg report</h1><p class='note'>generated {now} by lightseg_tf {__version__}; runs: "
             + ", ".join(f"{html.escape(k)} ({html.escape(str(rd.run_dir))})" for k, rd in rds.items())
             + (f"; shipped model: {html.escape(str(shipped))}" if shipped else "") + f"</p><nav>{nav}</nav>"]
    parts.append(section("legend", _legend(test, colors, tfl)))
    if tfl is not None:
        parts.append(section("model", _model_section(tfl, Path(shipped), colors, latency)))
    parts.append(section("data", _data_section(first, test)))
    parts.append(extra_html)
    parts.append(section("metrics", _metrics_section(rds, tfl, tfl_label)))
    parts.append(section("ensemble", _ensemble_section(rds)))
    parts.append(section("efficiency", _efficiency_section(rds, models, tfl, tfl_label, Path(shipped or "."),
                                                                   latency)))
    parts.append(section("curves", "<div class='grid'>" + "".join(
        f"<figure><img alt='training curves of {html.escape(k)}' src='{png_uri(rd.run_dir / 'curves.png')}'>"
        f"<figcaption>{html.escape(k)}: loss and validation mean foreground Dice per epoch</figcaption></figure>"
        for k, rd in rds.items() if (rd.run_dir / "curves.png").exists()) + "</div>"))
    predictors = {**models, **({tfl_label: tfl} if tfl else {})}
    parts.append(section("qualitative", _qualitative_section(test, predictors, n_examples, colors)))
    parts.append(section("gradcam", _gradcam_section(test, first_label, models[first_label].model, n_examples)))
    rob = robustness if robustness is not None else [rd.run_dir / "robustness" / "robustness.json"
                                                     for rd in rds.values()]
    parts.append(section("robustness", _robustness_section([Path(p) for p in rob if Path(p).exists()])))
    measured_by = (tfl_label, tfl) if tfl else (f"{first_label} (Keras; no exported model given)", models[first_label])
    parts.append(section("biometry", _biometry_section(test, *measured_by, biometry_images)))
    parts.append(section("config", _config_section(Path(config) if config else first.run_dir / "config.yaml")))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>lightseg report</title><style>{CSS}</style>"
            f"</head><body>{''.join(parts)}{CHECK}</body></html>")
    out = Path(out)
    write_text_atomic(out, page)
    return out


def _legend(test, colors, tfl) -> str:
    size = f"{tfl.size}x{tfl.size}" if tfl else "SxS"
    terms = [
        ("class colours", Markup(swatches(test.classes, colors) + " (background unpainted)")),
        ("Dice, IoU", "overlap of the predicted and true region of one class in one image (1 = identical, "
                      "0 = disjoint), averaged over the test images; an image where the class is absent from both "
                      "is left out of that class's mean"),
        ("mean fg", "the mean over the foreground classes (background left out)"),
        ("HD95, ASSD", "95th-percentile Hausdorff and average symmetric surface distance between the predicted "
                       "and true outlines (mm with the image's pixel size, else px); lower is better"),
        ("original resolution", "predictions mapped back to each image's own pixels before scoring (how a "
                                "measurement is made)"),
        ("letterboxed", f"scored on the model input: the image scaled into a {size} square with black bars "
                        "(the teacher cache the ensemble is tuned on); numbers differ from original resolution"),
        ("HC, BPD", "head circumference (perimeter of the ellipse fitted to the head) and biparietal diameter "
                    "(its short axis); CSP and LV widths are measured across the midline"),
        ("HC error", "predicted minus reference HC: positive = head drawn too large; MAE = mean absolute error"),
        ("shipped", "the quantized .tflite file that goes to the devices (browser, Android, Coral)"),
    ]
    return "<dl>" + "".join(f"<dt>{html.escape(t)}</dt><dd>{d if isinstance(d, Markup) else html.escape(d)}</dd>"
                            for t, d in terms) + "</dl>"


def _model_section(tfl, path: Path, colors, latency: dict) -> str:
    """``latency``: ``{threads: (median ms, arena MiB)}`` of the file, for 1 and 2 threads."""
    card = tfl.card
    (ms1, arena), (ms2, _) = latency[1], latency[2]
    domain = card.get("training_domain") or {}
    model = card.get("model") or {}
    conf = card.get("confidence") or {}
    edge = card.get("edgetpu") or {}
    metrics = card.get("metrics")
    rows = [
        ["file", f"{path.name}: {card['bytes'] / 1024:.0f} KiB ({card['bytes']:,} bytes), "
                 f"SHA-256 {card['sha256'][:16]}..."],
        ["card", f"{path.with_suffix('.json').name}, created {card.get('created', '-')} by lightseg_tf "
                 f"{card.get('lightseg_tf', '-')}"],
        ["model", f"{model.get('architecture', '-')} {json.dumps(model.get('options', {}))}, "
                  f"{model.get('parameters', 0):,} parameters, exported from {model.get('source', '-')}"],
        ["quantization", card["quantization"]],
        ["input", f"{card['input']['size']}x{card['input']['size']} gray, {card['input']['dtype']}, letterboxed"],
        ["classes", Markup(swatches([c["name"] for c in card["classes"]], colors))],
        ["trained on", f"{domain.get('dataset', 'unknown')} ({domain.get('format', '-')})"
                       + (f": {domain['note']}" if domain.get("note") else "")],
        ["latency", f"{ms1:.1f} ms at 1 thread, {ms2:.1f} ms at 2 threads (median of {LATENCY_RUNS} single-image "
                    f"runs, XNNPACK, this machine: {platform.machine()}, {os.cpu_count()} CPUs); "
                    f"tensor arena {arena:.1f} MiB"],
        ["confidence threshold", f"{conf['threshold']:.2f}" if conf.get("threshold") is not None
         else "none (uncalibrated: lightseg calibrate RUN)"],
        ["Edge TPU", "compatible" if edge.get("compatible") else
         f"not compatible: {', '.join(edge.get('unsupported_ops', [])) or 'float tensors / dynamic shapes'}"],
        ["test metrics (card)", "none in the card" if not metrics else
         f"mean fg Dice {metrics['mean_fg_dice']:.4f}, mean fg IoU {metrics['mean_fg_iou']:.4f} on "
         f"{metrics.get('images', '?')} test images ({metrics.get('scored', 'as the card records them')})"],
    ]
    return html_table(["", "the file, its card and this machine's timing"], rows,
                      "What a device gets: the .tflite and its card (the .json beside it, which every loader "
                      "checks against the file's SHA-256).")


def _data_section(first, test) -> str:
    from lightseg_tf.data.inspect import dataset_stats

    stats = dataset_stats(first.dataset)
    px = stats["pixel_size_mm"]
    return html_table(
        ["dataset", "format", "images", "subjects", "train / val / test images", "image sizes (W x H)",
         "pixel size (mm)"],
        [[stats["path"], stats["format"], stats["images"], stats["subjects"],
          " / ".join(str(len(first.split[k])) for k in ("train", "val", "test")),
          ", ".join(f"{k} ({v})" for k, v in list(stats["image_sizes"].items())[:3]),
          "-" if not px else f"{px['min']:.3f}-{px['max']:.3f}"]],
        "Split by subject before any augmentation.") + html_table(
        ["class", "pixels (%)", "images with it"],
        [[c, f"{100 * f:.2f}", stats["images_with_class"][c]] for c, f in stats["pixel_fraction"].items()],
        f"All {stats['images']} images; the test split ({len(test)} images) is what every table scores.")


def _metrics_section(rds, tfl, tfl_label) -> str:
    summaries = {}
    if tfl is not None and (tfl.card.get("metrics") or {}).get("per_class"):
        summaries[tfl_label] = tfl.card["metrics"]
    for label, rd in rds.items():
        path = rd.run_dir / "eval_test_summary.json"
        if path.exists():
            summaries[label] = json.loads(path.read_text())
    if not summaries:
        return "<p class='note'>no eval_test_summary.json: run lightseg evaluate RUN first</p>"
    units = "/".join(sorted({s.get("surface_distance_units") or "px" for s in summaries.values()}))
    rows, means = [], set()
    for label, s in summaries.items():
        for c, m in list(s["per_class"].items())[1:]:
            rows.append([label, c, m.get("dice"), m.get("iou"), _mm(m.get("hd95"), 2), _mm(m.get("assd"), 2)])
        means.add(len(rows))
        rows.append([label, "mean (foreground)", s.get("mean_fg_dice"), s.get("mean_fg_iou"),
                     _mm(s.get("mean_fg_hd95"), 2), _mm(s.get("mean_fg_assd"), 2)])
    n = next(iter(summaries.values())).get("images", "?")
    return html_table(["model", "class", "Dice", "IoU", f"HD95 ({units})", f"ASSD ({units})"], rows,
                      f"Test split ({n} images), each image scored at its original resolution, then averaged; "
                      "'-' = undefined on every image (the class absent from prediction and truth, or one side "
                      "empty for the distances).", means)


def _ensemble_section(rds) -> str:
    parts = []
    for rd in rds.values():
        path = rd.run_dir / "ensemble_table.json"
        if not path.exists():
            continue
        table = json.loads(path.read_text())
        if isinstance(table, list):  # an older run: [header, rows], scored at the cache's size
            table = {"columns": table[0], "rows": table[1]}
        size, split = table.get("image_size"), table.get("split", "test")
        where = f"letterboxed {size}x{size} model input" if size else "letterboxed model input"
        parts.append(html_table(
            [human_column(c) for c in table["columns"]], table["rows"],
            f"Each teacher and the three votes on the {split} split, scored on the {where} (the teacher cache); "
            "the pipeline table above scores at the original resolution, so a teacher's number differs there. "
            "Weighted soft voting is what the student is distilled from."))
    return "".join(parts) or "<p class='note'>these runs hold no ensemble table</p>"


def _efficiency_section(rds, models, tfl, tfl_label, shipped: Path, latency: dict) -> str:
    from lightseg_tf.deploy.model_stats import count_flops, keras_latency_ms
    from lightseg_tf.models.saving import model_path

    rows = []
    for label, rd in rds.items():
        model = models[label].model
        file = model_path(rd.run_dir)
        rows.append([label, rd.cfg.model.name, f"{model.count_params():,}", round(count_flops(model) / 1e9, 3),
                     f"{int(model.input_shape[1])} px", f"{file.name}, {file.stat().st_size / 1024:.0f} KiB",
                     f"{keras_latency_ms(model, runs=LATENCY_RUNS):.1f}"])
    if tfl is not None:
        m = tfl.card.get("model") or {}
        rows.append([tfl_label, m.get("architecture", "-"), f"{m.get('parameters', 0):,}", None, f"{tfl.size} px",
                     f"{shipped.name}, {shipped.stat().st_size / 1024:.0f} KiB",
                     f"{latency[1][0]:.1f}"])
    return html_table(["model", "architecture", "parameters", "GFLOPs", "input", "file", "latency (ms)"], rows,
                      "GFLOPs of one forward pass (a multiply-add counts 2; the TFLite file runs its Keras "
                      f"student's graph). Latency: median of {LATENCY_RUNS} "
                      f"single-image passes on this machine's CPU ({platform.machine()}, {os.cpu_count()} CPUs): "
                      "Keras as a traced call, TFLite with XNNPACK at 1 thread.")


def _qualitative_section(test, predictors, n_examples, colors) -> str:
    from lightseg_tf.core.palette import overlay

    head = ["image", "input", "ground truth", *predictors]
    body = []
    for rec in test.records[:n_examples]:
        image, mask = test.load_pair(rec)
        tiles = [overlay(image, np.zeros_like(mask)), overlay(image, mask, num_classes=test.num_classes)]
        tiles += [overlay(image, p.predict_mask(image), num_classes=test.num_classes) for p in predictors.values()]
        body.append(f"<tr><td>{html.escape(rec.id)}</td>" + "".join(
            f"<td><img alt='{html.escape(h)}' src='{png_uri(t)}'></td>" for h, t in zip(head[1:], tiles)) + "</tr>")
    return (f"<p class='note'>Classes: {swatches(test.classes, colors)}. Each prediction is mapped back to the "
            "image's original resolution, as it is scored.</p><div class='scroll'><table class='tiles'><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + "".join(body) + "</table></div>")


def _gradcam_section(test, label, model, n_examples) -> str:
    from lightseg_tf.data.letterbox import letterbox_image
    from lightseg_tf.evaluation.explain import default_layer, explain_classes, heatmap_png

    ids = list(range(1, test.num_classes))
    images, cams, preds, labels = [], [], [], []
    for rec in test.records[:n_examples]:
        boxed, _ = letterbox_image(test.load_image(rec), int(model.input_shape[1]))
        c, p = explain_classes(model, boxed, ids)
        images.append(boxed)
        cams.append(c)
        preds.append(p)
        labels.append(f"test image {rec.id}")
    if not images:
        return "<p class='note'>no test images</p>"
    png = heatmap_png(images, cams, preds, list(test.classes), row_labels=labels)
    return (f"<img alt='GradCAM++ per class' src='{png_uri(png)}'><p class='note'>"
            f"Model: {html.escape(label)}, from its Keras model (a .tflite has no gradients), features of layer "
            f"{html.escape(default_layer(model))} (what its logits head reads). Each map shows which pixels raise one "
            "class's logit summed over the region predicted as that class (white outline), scaled to its own "
            "maximum; nearby structures share the features that find the head, so their maps overlap. A class "
            "the model did not predict in an image has nothing to explain.</p>")


def _robustness_section(paths: list[Path]) -> str:
    from lightseg_tf.evaluation.robustness import robustness_png

    rows = [r for p in paths for r in json.loads(p.read_text())]
    if not rows:
        return ("<p class='note'>no robustness table: run lightseg robustness RUN --data PATH --out "
                "RUN/robustness to add the curves</p>")
    models = list(dict.fromkeys(r["model"] for r in rows))
    return (f"<img alt='robustness curves' src='{png_uri(robustness_png(rows))}'><p class='note'>Mean foreground "
            f"Dice on the test split (original resolution) as each corruption grows, for {', '.join(models)}; "
            "the first point of every curve is the clean image. Corruptions act on the original image, before "
            "letterboxing, as a worse scanner or a saved JPEG would.</p>")


def _biometry_section(test, label, predictor, n) -> str:
    from lightseg_tf.anatomy.biometry import measure_mask
    from lightseg_tf.evaluation.confidence import predict_with_confidence
    from lightseg_tf.evaluation.measure import hc_errors

    part = test.subset([r.id for r in test.records[:n]])
    with_ref = any(r.hc_mm and r.pixel_size_mm for r in part.records)
    hc = hc_errors(predictor, part) if with_ref else None
    by_id = {r["id"]: r for r in (hc or {}).get("rows", [])}
    rows = []
    units = "mm" if all(r.pixel_size_mm for r in part.records) else "px"
    for rec in part.records:
        mask, _ = predict_with_confidence(predictor, part.load_image(rec), part.classes)
        m = measure_mask(mask, part.classes, rec.pixel_size_mm)
        e = by_id.get(rec.id, {})
        rows.append([rec.id, _mm(rec.hc_mm), _mm(e.get("hc_mm", m.get("hc"))), _mm(e.get("error_mm"), signed=True),
                     _mm(m.get("bpd")), _mm(m.get("csp_width")), _mm(m.get("lv_width")),
                     "; ".join(m["flags"]) or "-"])
    out = (f"<p class='note'>Measured with <b>{html.escape(label)}</b> on the first {len(part)} test images, "
           f"each at its original resolution ({units}).</p>")
    out += html_table(["image", f"reference HC ({units})", f"HC ({units})", f"HC error ({units})",
                       f"BPD ({units})", f"CSP width ({units})", f"LV width ({units})", "flags"], rows,
                      "HC error = predicted - reference. Flags: a value outside its normal range or a head the "
                      "fit could not trust.")
    if hc is None:
        return out + "<p class='note'>these images have no reference HC and pixel size: no HC error.</p>"

    def stat_row(name, s):
        return [name, s["n"], _mm(s["mean_signed"], 2, True), _mm(s["mean_abs"], 2), _mm(s["median_abs"], 2),
                _mm(s["mean_rel_signed_pct"], 2, True)]

    stats = [stat_row("all images", hc)] + [
        stat_row(f"reference HC {q['hc_range'][0]:.0f}-{q['hc_range'][1]:.0f} mm", q) for q in hc["by_hc_quartile"]]
    return out + html_table(
        ["images", "n", "signed mean error (mm)", "MAE (mm)", "median |error| (mm)", "signed mean error (%)"],
        stats, "HC error of the model above against the reference HC, overall and by quartile of the reference "
               f"(head size). No head found: {hc['no_head_found']} image(s).", {0})


def _config_section(path: Path) -> str:
    from lightseg_tf.config import load_config

    if not path.exists():
        return "<p class='note'>no config.yaml</p>"
    cfg = load_config(path)
    key = [("student / model", f"{cfg.model.name} {json.dumps(cfg.model.options)}"),
           ("input", f"{cfg.data.image_size} px letterboxed, batch {cfg.data.batch_size}"),
           ("training", f"{cfg.train.epochs} epochs, learning rate {cfg.train.learning_rate:g}, seed {cfg.train.seed}, "
                        f"loss {json.dumps(cfg.loss.terms)}"),
           ("distillation", f"alpha {cfg.distill.alpha:g}, temperature {cfg.distill.temperature:g}, "
                            f"soft loss {cfg.distill.soft_loss}")]
    if cfg.pipeline.teachers:
        epochs = cfg.pipeline.teacher_epochs or cfg.train.epochs
        key.append(("teachers", ", ".join(f"{n} ({s['model']}, {s.get('epochs') or epochs} epochs)"
                                          for n, s in cfg.pipeline.teachers.items())))
    return (html_table(["setting", "value"], [list(k) for k in key], f"Key settings from {path}.")
            + f"<details><summary>full config ({html.escape(path.name)})</summary><pre>"
            + html.escape(path.read_text()) + "</pre></details>")
