"""Model loading, prediction and int8 conversion: Keras' own paths vs the project's, side by side.

For each model file given (``.keras``; a QAT ``.h5`` gets the conversion columns only):
``keras.models.load_model`` vs ``saving.load_model_file`` (the weights read from a local copy of
the zip's member); ``model.predict`` + softmax vs ``predictor.predict_probs`` (one traced forward
pass per model) on N random letterboxed images at the model's input side, batch 8; and int8
``convert.convert`` with the converter given the Keras model (what it was before) vs the bare
variable holder it is given now. Medians over REPEATS, interleaved; the outputs of both paths are
compared too (weights bit-equal, probabilities max |difference|, .tflite bytes equal).

Usage: PYTHONPATH=. .venv/bin/python experiments/bench_loading.py MODEL [...] [--images 18] [--repeats 5]
       [--convert-repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def _timed(fn) -> tuple[float, object]:
    """Seconds one call of ``fn`` took, and what it returned."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--images", type=int, default=18, help="images per prediction call (the clinic stage's 18)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--convert-repeats", type=int, default=3, help="int8 conversions per path (several s each)")
    args = ap.parse_args()

    import tensorflow as tf
    import tf_keras as keras

    from lightseg_tf.deploy.convert import convert
    from lightseg_tf.models.predictor import predict_probs
    from lightseg_tf.models.saving import load_model_file

    print("| model | parameters | load: keras | load: lightseg | ratio | predict: keras | predict: lightseg | ratio "
          "| weights equal | max abs d prob | int8: keras model | int8: holder | ratio | bytes equal |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |")
    plain = tf.lite.TFLiteConverter.from_concrete_functions
    for path in args.models:
        model = load_model_file(path)
        size = int(model.input_shape[1])
        calib = list(np.random.default_rng(1).random((16, size, size, 1), dtype=np.float32))
        through_model = lambda: _with_trackable(plain, model, lambda: convert(model, "int8", calib))  # noqa: E731
        through_holder = lambda: convert(model, "int8", calib)  # noqa: E731
        c_model, c_holder = [], []
        for _ in range(args.convert_repeats):
            seconds, bytes_model = _timed(through_model)
            c_model.append(seconds)
            seconds, bytes_holder = _timed(through_holder)
            c_holder.append(seconds)
        cm, ch = statistics.median(c_model), statistics.median(c_holder)
        conversion = f"{cm:.1f} s | {ch:.1f} s | {cm / ch:.1f}x | {bytes_model == bytes_holder} |"
        if path.suffix != ".keras":
            print(f"| {path} | {model.count_params():,} | | | | | | | | | {conversion}")
            continue
        keras_load = lambda: keras.models.load_model(str(path), compile=False, safe_mode=True)  # noqa: E731
        ours_load = lambda: load_model_file(path)  # noqa: E731
        keras_load(), ours_load()  # warm both (imports, registries)
        t_keras, t_ours = [], []
        for _ in range(args.repeats):  # interleaved: a noisy moment hits both
            t_keras.append(_timed(keras_load)[0])
            t_ours.append(_timed(ours_load)[0])
        ref = keras_load()
        equal = all(np.array_equal(a, b) for a, b in zip(ref.get_weights(), model.get_weights()))
        images = np.random.default_rng(0).random((args.images, size, size, 1), dtype=np.float32)
        keras_pred = lambda: tf.nn.softmax(model.predict(images, batch_size=8, verbose=0), axis=-1).numpy()  # noqa: E731
        ours_pred = lambda: predict_probs(model, images, batch_size=8)  # noqa: E731
        keras_pred(), ours_pred()  # traced once each
        p_keras, p_ours = [], []
        for _ in range(args.repeats):
            p_keras.append(_timed(keras_pred)[0])
            p_ours.append(_timed(ours_pred)[0])
        diff = float(np.abs(keras_pred() - ours_pred()).max())
        lk, lo = statistics.median(t_keras), statistics.median(t_ours)
        pk, po = statistics.median(p_keras), statistics.median(p_ours)
        print(f"| {path} | {model.count_params():,} | {lk:.2f} s | {lo:.2f} s | {lk / lo:.1f}x | {pk * 1e3:.0f} ms "
              f"| {po * 1e3:.0f} ms | {pk / po:.1f}x | {equal} | {diff:.1e} | {conversion}")


def _with_trackable(plain, model, fn):
    """Run ``fn`` with the TFLite converter handed ``model`` itself as its trackable (the old path)."""
    import tensorflow as tf

    tf.lite.TFLiteConverter.from_concrete_functions = lambda funcs, trackable_obj=None: plain(funcs, model)
    try:
        return fn()
    finally:
        tf.lite.TFLiteConverter.from_concrete_functions = plain


if __name__ == "__main__":
    main()
