"""Side-by-side efficiency of models: parameters, GFLOPs, file size, Keras and TFLite latency.

Every model is timed in one process, interleaved variant by variant, with medians over
``runs`` repeats after a warm-up; TFLite at 1 and 2 threads with XNNPACK (the default
delegate, what a phone or a Pi gets). Memory is the interpreter's tensor arena (weights +
activations it allocates), read from its tensor details.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from lightseg_tf.deploy.convert import build_card, convert, export_run, write_export, xnnpack_fallback_ops
from lightseg_tf.deploy.runtime import load_tflite
from lightseg_tf.core.io import write_text_atomic


def tflite_latency(path: Path, threads: int, runs: int, warmup: int = 5) -> tuple[float, float]:
    """Median milliseconds of one single-image run of a .tflite (XNNPACK, ``threads``) and its tensor
    arena in MiB (weights + activations the interpreter allocates)."""
    seg = load_tflite(path, threads=threads)
    runner = seg.interpreter.get_signature_runner()
    inp = seg.card["input"]
    x = np.random.default_rng(0).random((1, seg.size, seg.size, 1), dtype=np.float32)
    x = np.round(x * 255).astype(np.uint8) if inp["dtype"] == "uint8" else x
    for _ in range(warmup):
        runner(image=x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner(image=x)
        times.append((time.perf_counter() - t0) * 1000)
    arena = sum(int(np.prod(t["shape"])) * np.dtype(t["dtype"]).itemsize
                for t in seg.interpreter.get_tensor_details()) / 2**20
    return statistics.median(times), arena


def benchmark(items: list[str], size: int = 256, classes: int = 4, runs: int = 50, out_dir: str | Path = "runs/bench",
              quants=("float32", "float16", "int8")) -> dict:
    """Benchmark registry names or run directories; returns ``{"machine": ..., "rows": [...]}``.

    A run directory contributes its trained best model, its test metrics and the test score of
    the int8 file timed here (exported as ``lightseg export`` does: PTQ calibrated on the run's
    TRAIN split; accuracy next to speed); a registry
    name is built untrained (speed does not depend on the weights).
    """
    import tf_keras as keras

    from lightseg_tf.data.letterbox import letterbox_image
    from lightseg_tf.data.phantom import make_phantom
    from lightseg_tf.evaluation.evaluate import evaluate_run
    from lightseg_tf.deploy.model_stats import count_flops, keras_latency_ms
    from lightseg_tf.models import build_model
    from lightseg_tf.core.palette import class_colors
    from lightseg_tf.models.saving import load_trained_model

    out_dir = Path(out_dir)
    calib = [letterbox_image(make_phantom(size, np.random.default_rng([9, i]))[0], size)[0] for i in range(8)]
    rows = []
    for item in items:
        keras.backend.clear_session()
        path = Path(item)
        metrics = None
        if path.is_dir():
            model = load_trained_model(path)
            name = f"{path.name} (trained)"
            summary = path / "eval_test_summary.json"
            metrics = json.loads(summary.read_text()) if summary.exists() else None
        else:
            model = build_model(item, (size, size, 1), classes)
            name = item
        row = {"model": name, "input": int(model.input_shape[1]), "parameters": int(model.count_params()),
               "gflops": round(count_flops(model) / 1e9, 3),
               "keras_ms": round(keras_latency_ms(model, runs=max(10, runs // 5)), 2),
               "test_mean_fg_dice": (metrics or {}).get("mean_fg_dice")}
        for q in quants:
            target = out_dir / f"{path.name}_{q}.tflite"
            if path.is_dir():  # as `lightseg export` does: int8 calibrated on the run's TRAIN split
                tfl, _ = export_run(path, target, q)
            else:
                content = convert(model, q, calib)
                card = build_card(content, name=name, classes=[f"c{k}" for k in range(classes)],
                                  colors=class_colors(classes), size=size, quant=q)
                tfl, _ = write_export(content, card, target)
            content = tfl.read_bytes()
            if q == "int8" and path.is_dir():  # the accuracy of the very file timed, on the run's test split
                row["int8_test_mean_fg_dice"] = evaluate_run(path, "test", tflite=tfl, out=out_dir).summary.get(
                    "mean_fg_dice")
            row[f"{q}_kib"] = round(len(content) / 1024)
            for threads in (1, 2):
                ms, arena = tflite_latency(tfl, threads, runs)
                row[f"{q}_ms_t{threads}"] = round(ms, 2)
            row[f"{q}_arena_mib"] = round(arena, 1)
            # Ops XNNPACK leaves to single-threaded builtin kernels: why a graph is slow.
            row[f"{q}_xnnpack_fallback"] = [o["op"] for o in xnnpack_fallback_ops(content)]
        row["int8_speedup_vs_keras"] = round(row["keras_ms"] / row["int8_ms_t2"], 1) if "int8_ms_t2" in row else None
        rows.append(row)
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
            "date": time.strftime("%Y-%m-%d"), "size": size, "runs": runs, "rows": rows}


def to_markdown(result: dict) -> str:
    """The benchmark as a markdown table."""
    cols = [("model", "model"), ("parameters", "params"), ("gflops", "GFLOPs"), ("test_mean_fg_dice", "test Dice"),
            ("int8_test_mean_fg_dice", "int8 test Dice"),
            ("keras_ms", "Keras ms"), ("float32_ms_t1", "f32 1t"), ("float32_ms_t2", "f32 2t"),
            ("float16_ms_t2", "f16 2t"), ("int8_ms_t1", "int8 1t"), ("int8_ms_t2", "int8 2t"),
            ("int8_speedup_vs_keras", "int8 vs Keras"), ("float32_kib", "f32 KiB"), ("int8_kib", "int8 KiB"),
            ("int8_arena_mib", "int8 arena MiB"), ("int8_xnnpack_fallback", "int8 ops off XNNPACK")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            v = len(v) if isinstance(v, list) else v
            cells.append("-" if v is None else (f"{v:,}" if isinstance(v, int) else (f"{v:.4f}" if key.endswith("mean_fg_dice") else str(v))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


DOC_BEGIN = "<!-- lightseg benchmark: begin (written by `lightseg benchmark --doc`) -->"
DOC_END = "<!-- lightseg benchmark: end -->"


def write_doc_section(doc: str | Path, result: dict, command: str) -> Path:
    """Put the benchmark table with date, machine and command into ``doc`` between markers.

    The section between :data:`DOC_BEGIN` and :data:`DOC_END` is replaced (appended under a
    heading when the markers are absent); the rest of the document is kept as written.
    """
    doc = Path(doc)
    text = doc.read_text() if doc.exists() else ""
    fallback = sorted({op for r in result["rows"] for op in r.get("int8_xnnpack_fallback", [])})
    section = "\n".join([
        DOC_BEGIN,
        f"{result['date']}, {result['machine']}. Command: `{command}`. Medians of {result['runs']} runs "
        "after 5 warm-up runs, XNNPACK delegate; \"Keras ms\" is one traced float32 forward pass.",
        "",
        to_markdown(result),
        "",
        "\"int8 ops off XNNPACK\": ops of the int8 graph the delegate leaves to single-threaded builtin "
        f"kernels ({', '.join(fallback) or 'none'}).",
        DOC_END,
    ])
    if DOC_BEGIN in text and DOC_END in text:
        head, rest = text.split(DOC_BEGIN, 1)
        text = head + section + rest.split(DOC_END, 1)[1]
    else:
        text = (text.rstrip("\n") + "\n\n## Latest `lightseg benchmark`\n" if text else "") + section + "\n"
    write_text_atomic(doc, text)
    return doc
