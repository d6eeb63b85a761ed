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

from lightseg_tf.export import build_card, convert, load_tflite, write_export


def _tflite_latency(path: Path, threads: int, runs: int, warmup: int = 5) -> tuple[float, float]:
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

    A run directory contributes its trained best model and its test metrics (accuracy next to
    speed); a registry name is built untrained (speed does not depend on the weights).
    """
    import tf_keras as keras

    from lightseg_tf.data.phantom import make_phantom
    from lightseg_tf.data.letterbox import letterbox_image
    from lightseg_tf.model_stats import count_flops, keras_latency_ms
    from lightseg_tf.models import build_model
    from lightseg_tf.palette import class_colors
    from lightseg_tf.training import load_trained_model

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
        msize = int(model.input_shape[1])
        row = {"model": name, "input": msize, "parameters": int(model.count_params()),
               "gflops": round(count_flops(model) / 1e9, 3),
               "keras_ms": round(keras_latency_ms(model, runs=max(10, runs // 5)), 2),
               "test_mean_fg_dice": (metrics or {}).get("mean_fg_dice")}
        for q in quants:
            imgs = calib if msize == size else [letterbox_image(c, msize)[0] for c in calib]
            content = convert(model, q, imgs)
            card = build_card(content, name=name, classes=[f"c{k}" for k in range(model.output_shape[-1])],
                              colors=class_colors(model.output_shape[-1]), size=msize, quant=q)
            tfl, _ = write_export(content, card, out_dir / f"{path.name}_{q}.tflite")
            row[f"{q}_kib"] = round(len(content) / 1024)
            for threads in (1, 2):
                ms, arena = _tflite_latency(tfl, threads, runs)
                row[f"{q}_ms_t{threads}"] = round(ms, 2)
            row[f"{q}_arena_mib"] = round(arena, 1)
        row["int8_speedup_vs_keras"] = round(row["keras_ms"] / row["int8_ms_t2"], 1) if "int8_ms_t2" in row else None
        rows.append(row)
    return {"machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
            "date": time.strftime("%Y-%m-%d"), "size": size, "runs": runs, "rows": rows}


def to_markdown(result: dict) -> str:
    """The benchmark as a markdown table."""
    cols = [("model", "model"), ("parameters", "params"), ("gflops", "GFLOPs"), ("test_mean_fg_dice", "test Dice"),
            ("keras_ms", "Keras ms"), ("float32_ms_t1", "f32 1t"), ("float32_ms_t2", "f32 2t"),
            ("float16_ms_t2", "f16 2t"), ("int8_ms_t1", "int8 1t"), ("int8_ms_t2", "int8 2t"),
            ("int8_speedup_vs_keras", "int8 vs Keras"), ("float32_kib", "f32 KiB"), ("int8_kib", "int8 KiB"),
            ("int8_arena_mib", "int8 arena MiB")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |", "|" + "---|" * len(cols)]
    for r in result["rows"]:
        cells = []
        for key, _ in cols:
            v = r.get(key)
            cells.append("-" if v is None else (f"{v:,}" if isinstance(v, int) else (f"{v:.4f}" if key == "test_mean_fg_dice" else str(v))))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
