"""Why rtseg's int8 graph was slower than float32, measured side by side (issue 7).

Builds the same rtseg (same seed, same weights) three ways and times their full-int8 TFLite
graphs interleaved in one process (medians, XNNPACK, 1 and 2 threads):

- ``textbook``: hard-swish as ``x * relu6(x + 3) / 6`` (the converter fuses it into one
  HARD_SWISH op, which LiteRT's XNNPACK runs in float only), channel-group shifts with
  ``tf.slice(..., -1)`` sizes, attention squeezed with ``[..., 0]``: the model before the fix;
- ``hswish``: only the hard-swish rewritten as ``(x / 6) * relu6(x + 3)``;
- ``current``: the model as registered now (also explicit-size slices and a reshape).

For each it prints the ops XNNPACK leaves to builtin kernels and whether the int8 class maps
agree with the current model's (the rewrites must not change the function).

    .venv/bin/python experiments/bench_rtseg_int8.py --size 256 --runs 50
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras

from lightseg_tf.data.letterbox import letterbox_image
from lightseg_tf.data.phantom import make_phantom
from lightseg_tf.deploy.convert import build_card, convert, write_export, xnnpack_fallback_ops
from lightseg_tf.deploy.runtime import load_tflite
from lightseg_tf.models import build_model, rtseg
from lightseg_tf.core.palette import class_colors


def textbook_hard_swish(self, x):
    return x * tf.nn.relu6(x + 3.0) * (1.0 / 6.0)


def slice_minus_one_shift(self, x):
    half, size, out, start = self.groups // 2, x.shape[self.axis], [], 0
    for k, n in enumerate(self._sizes(x.shape[-1])):
        pad = [[0, 0]] * 4
        pad[self.axis] = [half, half]
        begin, sz = [0, 0, 0, 0], [-1, -1, -1, -1]
        begin[self.axis], sz[self.axis] = half - (k - half), size
        out.append(tf.slice(tf.pad(x[..., start:start + n], pad), begin, sz))
        start += n
    return tf.concat(out, axis=-1)


def squeeze_by_index_attention(self, x):
    pooled = self.alpha * tf.reduce_mean(x, axis=[1, 2]) + self.beta * tf.reduce_max(x, axis=[1, 2])
    w = tf.nn.conv1d(pooled[..., None], self.kernel, stride=1, padding="SAME")[..., 0]
    return tf.sigmoid(w)[:, None, None, :]


CURRENT = (rtseg.HardSwish.call, rtseg.AxisShift.call, rtseg.ChannelAttention1D.call)
VARIANTS = {
    "textbook": (textbook_hard_swish, slice_minus_one_shift, squeeze_by_index_attention),
    "hswish": (CURRENT[0], slice_minus_one_shift, squeeze_by_index_attention),
    "current": CURRENT,
}


def build_variant(name: str, size: int, calib) -> bytes:
    rtseg.HardSwish.call, rtseg.AxisShift.call, rtseg.ChannelAttention1D.call = VARIANTS[name]
    try:
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        return convert(build_model("rtseg", (size, size, 1), 4), "int8", calib)
    finally:
        rtseg.HardSwish.call, rtseg.AxisShift.call, rtseg.ChannelAttention1D.call = CURRENT


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=50)
    args = ap.parse_args()
    calib = [letterbox_image(make_phantom(args.size, np.random.default_rng([9, i]))[0], args.size)[0]
             for i in range(8)]
    image = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 1)).astype(np.float32) / 255
    runners, maps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in VARIANTS:
            content = build_variant(name, args.size, calib)
            card = build_card(content, name=name, classes=[f"c{k}" for k in range(4)], colors=class_colors(4),
                              size=args.size, quant="int8")
            path, _ = write_export(content, card, Path(tmp) / f"{name}.tflite")
            left = collections.Counter(o["op"] for o in xnnpack_fallback_ops(content))
            print(f"{name:9s} ops off XNNPACK: {sum(left.values())} {dict(left)}")
            for threads in (1, 2):
                seg = load_tflite(path, threads=threads)
                runners[name, threads] = seg.interpreter.get_signature_runner()
            maps[name] = seg.run(image)[0]
        x = np.round(image * 255).astype(np.uint8)[None]
        for run in runners.values():
            for _ in range(5):
                run(image=x)
        times = collections.defaultdict(list)
        for _ in range(args.runs):  # interleaved: machine noise hits every variant alike
            for key, run in runners.items():
                t0 = time.perf_counter()
                run(image=x)
                times[key].append((time.perf_counter() - t0) * 1000)
    print("\n| variant | int8 1t ms | int8 2t ms | class map = current |\n|---|---|---|---|")
    for name in VARIANTS:
        agree = float((maps[name] == maps["current"]).mean())
        print(f"| {name} | {statistics.median(times[name, 1]):.2f} | {statistics.median(times[name, 2]):.2f} "
              f"| {agree:.4f} |")


if __name__ == "__main__":
    main()
