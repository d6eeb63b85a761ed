"""Parameters, FLOPs and single-image latency of Keras models."""

from __future__ import annotations

import statistics
import time

import numpy as np
import tensorflow as tf
import tf_keras as keras


def count_flops(model: keras.Model, batch: int = 1) -> int:
    """Floating-point operations of one forward pass (TF profiler on the frozen graph).

    The profiler counts a multiply-add as 2 FLOPs, so GFLOPs here are twice the "GMACs"
    some papers quote.
    """
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([batch, *model.input_shape[1:]], tf.float32)
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op",
                                         options=opts)
    return int(info.total_float_ops)


def keras_latency_ms(model: keras.Model, runs: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of one single-image forward pass (a traced call, no Python overhead of predict)."""
    x = tf.constant(np.random.default_rng(0).random((1, *model.input_shape[1:]), dtype=np.float32))
    fn = tf.function(lambda t: model(t, training=False))
    for _ in range(warmup):
        fn(x).numpy()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x).numpy()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def model_rows(size: int, classes: int, latency: bool, only=None) -> list[dict]:
    """One row per registered model at its default options: params, GFLOPs, QAT-ready, latency."""
    from lightseg_tf.models import build_model, list_models

    rows = []
    for spec in list_models():
        if only and spec.name not in only:
            continue
        keras.backend.clear_session()
        try:
            model = build_model(spec.name, (size, size, 1), classes)
        except ValueError as exc:  # e.g. PSPNet needs multiples of 48
            rows.append({"name": spec.name, "role": spec.role, "parameters": None, "gflops": None,
                         "qat_ready": spec.qat_ready, "paper": spec.paper, "note": str(exc)})
            continue
        row = {"name": spec.name, "role": spec.role, "parameters": int(model.count_params()),
               "gflops": round(count_flops(model) / 1e9, 3), "qat_ready": spec.qat_ready, "paper": spec.paper}
        if latency:
            row["keras_latency_ms"] = round(keras_latency_ms(model), 2)
        rows.append(row)
    return rows
