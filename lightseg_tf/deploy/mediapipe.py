"""The MediaPipe variant of an export: ``<stem>_mediapipe.tflite`` for MediaPipe Tasks' ImageSegmenter.

MediaPipe's ImageSegmenter takes one RGB image tensor ``[1, H, W, 3]`` (uint8 or float32) and
one confidence tensor ``[1, H, W, C]``, whose per-pixel argmax is its category mask, and reads
the labels and the input's normalisation from TFLite Model Metadata. The project's own export
takes gray ``[1, S, S, 1]`` and returns two tensors (class map, probabilities), so the variant is
converted from the same Keras model with another serving function: uint8 RGB ``[1, S, S, 3]``
in, averaged to gray inside the graph (the models are trained on gray images; R = G = B for an
ultrasound frame gives back the gray value), one float32 ``probs [1, S, S, C]`` out, and the
metadata of :func:`lightseg_tf.deploy.metadata.segmenter_metadata` with ``labels.txt``.

For int8 the converter is calibrated on the same letterboxed TRAIN images (repeated to RGB)
with the same [0, 1] anchor, so the graph after the channel mean sees the int8 values the gray
export sees; its probabilities are the int8 softmax dequantized. Images are letterboxed by the
caller exactly as for the gray model (the card's rule); MediaPipe then resizes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from lightseg_tf.core.io import write_bytes_atomic
from lightseg_tf.deploy.converter import convert_function
from lightseg_tf.deploy.metadata import LABELS_FILE, METADATA_NAME, segmenter_metadata, write_metadata
from lightseg_tf.deploy.runtime import make_interpreter, tensor_entry
from lightseg_tf.errors import LightsegError

SUFFIX = "_mediapipe"


def mediapipe_path(out: str | Path) -> Path:
    """``DIR/model.tflite`` -> ``DIR/model_mediapipe.tflite``."""
    out = Path(out)
    if out.suffix != ".tflite":
        raise LightsegError(f"{out}: the model file must end in .tflite")
    return out.with_name(out.stem + SUFFIX + out.suffix)


def _serving_function(model, size: int, quant: str):
    """tf.function ``image [1,S,S,3] -> {probs float32 [1,S,S,C]}``; the image is float32 in [0, 1]
    for int8 (the converter makes it uint8, scale 1/255) and uint8 otherwise."""
    import tensorflow as tf

    dtype = tf.float32 if quant == "int8" else tf.uint8

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], dtype, name="image")])
    def serve(image):
        rgb = image if quant == "int8" else tf.cast(image, tf.float32) / 255.0
        gray = tf.reduce_mean(rgb, axis=-1, keepdims=True)
        logits = tf.cast(model(gray, training=False), tf.float32)
        return {"probs": tf.nn.softmax(logits, axis=-1)}

    return serve


def _io_entries(content: bytes) -> tuple[dict, dict]:
    interp = make_interpreter(model_content=content, delegates=False)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    return tensor_entry(inp), tensor_entry(out)


def convert_mediapipe(model, card: dict, quant: str = "int8",
                      representative: Iterable[np.ndarray] | None = None) -> bytes:
    """The MediaPipe flatbuffer of a Keras model (logits out), with metadata from its model ``card``.

    Args:
        model: the Keras model ``[B,S,S,1] -> [B,S,S,C]`` logits the gray export was made from.
        card: that export's card (name, version, classes, input size and letterbox rule).
        quant, representative: as for :func:`lightseg_tf.deploy.convert.convert`.
    """
    size = int(model.input_shape[1])
    content = convert_function(_serving_function(model, size, quant), model, quant, representative,
                               channels=3, float_output=True)
    inp, _ = _io_entries(content)
    scale = inp["quantization"]["scale"] if inp["quantization"] else None
    metadata, files = segmenter_metadata(card, input_scale=scale)
    return write_metadata(content, metadata, files)


def export_mediapipe(model, card: dict, out: str | Path, quant: str = "int8",
                     representative: Iterable[np.ndarray] | None = None) -> dict:
    """Write ``<stem>_mediapipe.tflite`` beside the export ``out``; returns the card's ``mediapipe`` entry.

    The entry names the file (relative to the card) with its SHA-256, size and tensors.
    """
    import hashlib

    path = mediapipe_path(out)
    content = convert_mediapipe(model, card, quant, representative)
    write_bytes_atomic(path, content)
    inp, outp = _io_entries(content)
    return {
        "file": path.name,
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
        "input": {**inp, "color": "RGB, averaged to gray in the graph", "letterbox": "as input.letterbox"},
        "output": {**outp, "content": "per-class probabilities; the category mask is their argmax"},
        "metadata": {"buffer": METADATA_NAME, "associated_files": [LABELS_FILE]},
        "for": "MediaPipe Tasks ImageSegmenter (output_category_mask=True)",
    }


def predict_mediapipe(model: bytes | str | Path, rgb: np.ndarray, threads: int = 1) -> np.ndarray:
    """Run a MediaPipe variant with LiteRT (no MediaPipe): uint8 RGB ``[S,S,3]`` -> probs ``[S,S,C]``."""
    content = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    interp = make_interpreter(model_content=content, threads=threads)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    x = np.asarray(rgb, np.uint8).reshape(inp["shape"])
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    return interp.get_tensor(out["index"])[0].astype(np.float32)
