"""TFLite export with a model card, integrity checks and an Edge TPU compatibility report.

The exported graph takes what an edge device has: the letterboxed grayscale image
``[1, S, S, 1]`` (uint8 raw pixels for int8 models; float32 in [0, 1] otherwise) and returns
``class_map`` (uint8 ``[1, S, S]``) and ``probs`` (per-class probabilities ``[1, S, S, C]``,
uint8 with scale 1/256 for int8 models). The card ``model.json`` beside the ``.tflite`` says
how to letterbox, the classes and colours, the tensors' types and quantization, and the
file's SHA-256, which :func:`lightseg_tf.deploy.runtime.load_tflite` checks before running anything.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Iterable

import numpy as np

from lightseg_tf import __version__
from lightseg_tf.anatomy.confidence import structure_thresholds
from lightseg_tf.errors import LightsegError
from lightseg_tf.core.io import atomic_path, json_text, remove_stale_temps, write_text_atomic
from lightseg_tf.core.log import LOG
from lightseg_tf.core.palette import class_colors
from lightseg_tf.data.tfdata import letterboxed_sample
from lightseg_tf.deploy.converter import QUANT_MODES, convert_function  # noqa: F401 (QUANT_MODES re-exported)
from lightseg_tf.deploy.runtime import CARD_SCHEMA, make_interpreter, io_details, read_card, tensor_entry
from lightseg_tf.models.predictor import mean_view_logits
from lightseg_tf.models.saving import load_trained_model
from lightseg_tf.models.tta import tta_mode, tta_views
from lightseg_tf.runs import BEST_MODEL, calibrated_tta, open_run, read_confidence

# Ops the Edge TPU compiler maps to the TPU (coral.ai "TensorFlow models on the Edge TPU",
# supported operations table); anything else runs on the host CPU, and the compiler sends
# every op AFTER the first unsupported one to the CPU too.
EDGETPU_OPS = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "MAXIMUM", "MAX_POOL_2D", "MEAN",
    "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "DEQUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "RSQRT", "SLICE", "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB",
    "SUM", "SQUARED_DIFFERENCE", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "HARD_SWISH",
})



def _serving_function(model, size: int, tta: str | None = None):
    """tf.function ``image [1,S,S,1] float32 -> {class_map uint8, probs float32}``.

    With ``tta`` (:data:`~lightseg_tf.models.tta.TTA_VIEWS`) the graph runs the model on the
    image's mirrored views as one batch and averages their logits, flipped back, exactly as
    :func:`~lightseg_tf.models.predictor.predict_probs` does: every runtime that runs the file (the
    Python runner, the browser, Android) gets the same TTA without a line of its own.
    """
    import tensorflow as tf

    views = tta_views(tta)

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 1], tf.float32, name="image")])
    def serve(image):
        logits = mean_view_logits(model, image, views)
        # argmax of the logits (= of the softmax): keeps ARG_MAX on int8 logits in QAT graphs,
        # where argmax of the softmax output made the converter insert a float DEQUANTIZE.
        return {"class_map": tf.cast(tf.argmax(logits, axis=-1), tf.uint8),
                "probs": tf.nn.softmax(logits, axis=-1)}

    return serve


def convert(model, quant: str = "int8", representative: Iterable[np.ndarray] | None = None,
            tta: str | None = None) -> bytes:
    """Convert a Keras segmentation model (logits out) to a TFLite flatbuffer.

    Args:
        model: a Keras model ``[B,S,S,1] -> [B,S,S,C]`` logits (plain or QAT-wrapped).
        quant: "int8" (full integer: int8 inside, uint8 image in, uint8 outputs, no float
            fallback), "float16" (float16 weights), "dynamic" (int8 weights, float
            activations) or "float32".
        representative: letterboxed float32 images ``[S,S,1]`` in [0,1] from the TRAIN split,
            required for int8 calibration (a QAT model uses its learned ranges instead).
        tta: mirroring test-time augmentation built into the graph ("hflip": 2 views, "flips": 4;
            the model runs once per view); None for none.

    Returns:
        The .tflite bytes.
    """
    return convert_function(_serving_function(model, int(model.input_shape[1]), tta), model, quant, representative)


def inspect_tflite(content: bytes) -> dict:
    """Op list, tensor types and I/O of a flatbuffer, for the card and the Edge TPU report."""
    interp = make_interpreter(model_content=content, delegates=False)
    interp.allocate_tensors()
    ops = [d["op_name"] for d in interp._get_ops_details()]
    inputs, outputs = io_details(interp)
    tensors = interp.get_tensor_details()
    return {
        "ops": ops,
        "inputs": {k: tensor_entry(v) for k, v in inputs.items()},
        "outputs": {k: tensor_entry(v) for k, v in outputs.items()},
        "tensor_dtypes": sorted({np.dtype(t["dtype"]).name for t in tensors}),
        "dynamic_shapes": [t["name"] for t in tensors if -1 in list(t.get("shape_signature", []))],
        "float_tensors": [t["name"] for t in tensors if np.dtype(t["dtype"]).kind == "f"],
    }


def xnnpack_fallback_ops(content: bytes) -> list[dict]:
    """Ops of a flatbuffer that LiteRT's XNNPACK delegate leaves to the builtin CPU kernels.

    Such ops run single-threaded, often unvectorised, and split the delegated graph into
    partitions; in an int8 graph they are the first place to look when it is no faster than
    float32. The interpreter does not expose its execution plan, so an op counts as left out
    when its outputs are not produced by a delegate node but are read by one, by another
    left-out op or are model outputs (a delegated op's outputs stay inside its partition).

    Returns:
        ``[{"op": name, "shape": [..] of its first output, "dtype": str}, ...]`` in graph order.
    """
    interp = make_interpreter(model_content=content, delegates=True)
    interp.allocate_tensors()
    nodes = interp._get_ops_details()
    delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
    delegate_out = {t for d in delegates for t in d["outputs"]}
    wanted = {t for d in delegates for t in d["inputs"]} | {d["index"] for d in interp.get_output_details()}
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    left = []
    for node in reversed([n for n in nodes if n["op_name"] != "DELEGATE"]):
        outs = set(node["outputs"])
        if outs & wanted and not outs & delegate_out:
            left.append(node)
            wanted |= set(node["inputs"])
    return [{"op": n["op_name"], "shape": [int(s) for s in tensors[n["outputs"][0]]["shape"]],
             "dtype": np.dtype(tensors[n["outputs"][0]]["dtype"]).name} for n in reversed(left)]


HOST_POSTPROCESS = frozenset({"ARG_MAX", "CAST"})  # the class map, computed from the logits


def edgetpu_report(info: dict) -> dict:
    """What would keep a model off the Edge TPU: unsupported ops, float tensors, dynamic shapes.

    Returns:
        ``{"compatible": bool, "unsupported_ops": [...], "first_unsupported_index": i|None,
        "cpu_tail_ops": [...], "float_tensors": [...], "dynamic_shapes": [...], "notes": [...]}``.
        ``compatible`` is True when every op is an Edge TPU op except the class-map
        post-processing (ARG_MAX, CAST), which the host CPU runs; ``cpu_tail_ops`` lists what
        the compiler would hand to the CPU (everything from the first non-TPU op on).
    """
    ops = info["ops"]
    off_tpu = [i for i, op in enumerate(ops) if op not in EDGETPU_OPS]
    first = off_tpu[0] if off_tpu else None
    unsupported = sorted({ops[i] for i in off_tpu} - HOST_POSTPROCESS)
    notes = []
    if any(ops[i] in HOST_POSTPROCESS for i in off_tpu):
        notes.append("ARG_MAX/CAST (the class map) run on the host CPU; the compiler maps the ops "
                     "before the first of them to the TPU")
    compatible = not unsupported and not info["float_tensors"] and not info["dynamic_shapes"]
    return {
        "compatible": bool(compatible),
        "unsupported_ops": unsupported,
        "first_unsupported_index": first,
        "cpu_tail_ops": ops[first:] if first is not None else [],
        "float_tensors": info["float_tensors"],
        "dynamic_shapes": info["dynamic_shapes"],
        "notes": notes,
    }


def training_domain_of(dataset) -> dict:
    """What a model is trained on, for its card: the dataset's name, its reader format and note.

    The name is the one ``dataset.json`` gives (``lightseg-phantom`` for ``lightseg data synth``;
    an augmented copy names its source's with `` (augmented)``), else the reader format
    (``hc18``, ``psfhs``, ...). A measurement shows it, so an HC from a model trained on the
    phantom is not taken for one from a model trained on real scans.
    """
    def info(root) -> dict:
        try:
            return json.loads((Path(root) / "dataset.json").read_text())
        except (OSError, ValueError):
            return {}

    meta = info(dataset.root)
    name = meta.get("name")
    if not name and meta.get("augmented_from"):
        source = info(meta["augmented_from"]).get("name")
        name = f"{source} (augmented)" if source else None
    return {"dataset": name or dataset.format, "format": dataset.format, "note": meta.get("note")}


def build_card(content: bytes, *, name: str, classes: Iterable[str], colors: Iterable[Iterable[int]],
               size: int, quant: str, info: dict | None = None, training_domain: dict | None = None,
               **extra) -> dict:
    """The model card (JSON-safe dict) for a flatbuffer; ``extra`` adds data/metrics/... fields.

    ``training_domain`` (:func:`training_domain_of`) is always written, null when unknown; readers
    take a card without it (older exports) as unknown.
    """
    info = info or inspect_tflite(content)
    return {
        "schema": CARD_SCHEMA,
        "name": name,
        "version": extra.pop("version", "1"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "lightseg_tf": __version__,
        "sha256": hashlib.sha256(content).hexdigest(),
        "bytes": len(content),
        "quantization": quant,
        "classes": [{"id": i, "name": n, "color": [int(c) for c in col]}
                    for i, (n, col) in enumerate(zip(classes, colors))],
        "input": {
            **info["inputs"]["image"],
            "size": size,
            "letterbox": ("scale = min(S/H, S/W); resize to (round(W*scale), round(H*scale)) with "
                          "bilinear sampling at half-pixel centres (OpenCV INTER_LINEAR, no "
                          "antialiasing); paste at ((S-w)//2, (S-h)//2) on a black SxS canvas"),
            "normalisation": ("uint8 raw gray pixels (the tensor's scale 1/255, zero point 0 maps "
                              "them to [0, 1])" if quant == "int8" else "float32 gray / 255, in [0, 1]"),
        },
        "outputs": info["outputs"],
        "edgetpu": edgetpu_report(info),
        "training_domain": training_domain,
        **extra,
    }


def write_export(content: bytes, card: dict, out: str | Path) -> tuple[Path, Path]:
    """Write ``out`` (.tflite) and its card (``out`` with a ``.json`` suffix) as one unit.

    Both go to temporary files first; then the old card is removed, the model renamed into
    place, and the card after it. A kill at any moment leaves the old pair, a model without a
    card (which nothing loads: "model card missing; re-export"), or the new pair; never a new
    model beside the old card. Temporary files an earlier, killed export left are removed.
    """
    out = Path(out)
    if out.suffix != ".tflite":
        raise LightsegError(f"{out}: the model file must end in .tflite")
    card_path = out.with_suffix(".json")
    for path in (out, card_path):
        remove_stale_temps(path)
    # atomic_path renames on leaving its block: the inner one (the model) first, then the card.
    with atomic_path(card_path) as tmp_card, atomic_path(out) as tmp_model:
        tmp_model.write_bytes(content)
        tmp_card.write_text(json_text(card), encoding="utf-8")
        card_path.unlink(missing_ok=True)
    return out, card_path


def export_run(run: str | Path, out: str | Path, quant: str = "int8", calib_n: int = 64,
               model_file: str | None = None, mediapipe: bool = False, tta: str | None = None) -> tuple[Path, Path]:
    """Export a training run's best model (or ``model_file`` inside it, e.g. a QAT .h5) with its card.

    The representative sample for int8 calibration is the first ``calib_n`` images of the
    run's TRAIN split, letterboxed exactly as in training. ``mediapipe=True`` also writes
    ``<stem>_mediapipe.tflite`` (:mod:`lightseg_tf.deploy.mediapipe`), named in the card.
    ``tta`` builds mirroring test-time augmentation into the graph (:func:`convert`); the card
    says so, and takes the run's confidence threshold only if it was calibrated with the same TTA.
    """
    rd = open_run(run)
    model = load_trained_model(rd.run_dir / (model_file or BEST_MODEL))
    size = int(model.input_shape[1])
    train = rd.part("train")
    calib = list(letterboxed_sample(train, size, calib_n))
    tta = tta_mode(tta)
    if mediapipe and tta != "none":
        raise LightsegError("--mediapipe exports the model without TTA; export it separately, without --tta")
    content = convert(model, quant, calib, tta)
    summary = rd.run_dir / "eval_test_summary.json"
    card = build_card(
        content, name=f"{rd.cfg.name}-{rd.cfg.model.name}-{quant}", classes=rd.dataset.classes,
        colors=class_colors(rd.dataset.num_classes), size=size, quant=quant,
        model={"architecture": rd.cfg.model.name, "options": rd.cfg.model.options,
               "parameters": int(model.count_params()), "source": model_file or BEST_MODEL},
        test_time_augmentation={"mode": tta, "views": len(tta_views(tta))},
        training_domain=training_domain_of(rd.dataset),
        training_data={"path": str(rd.dataset.root), "format": rd.dataset.format, "train_images": len(train),
                       "calibration_images": len(calib) if quant == "int8" else 0},
        metrics=json.loads(summary.read_text()) if summary.exists() else None,
        confidence=card_confidence(read_confidence(rd.run_dir), model_file or BEST_MODEL, tta),
    )
    if mediapipe:
        from lightseg_tf.deploy.mediapipe import export_mediapipe

        card["mediapipe"] = export_mediapipe(model, card, out, quant, calib)
    return write_export(content, card, out)


def set_card_metrics(tflite: str | Path, metrics: dict | None) -> Path:
    """Write ``metrics`` (e.g. this file's own test summary) into the card beside ``tflite``.

    The model bytes are untouched, so the card's SHA-256 still matches them; the card is
    replaced atomically.

    Returns:
        The card's path.
    """
    card_path = Path(tflite).with_suffix(".json")
    card = read_card(card_path)
    card["metrics"] = metrics
    write_text_atomic(card_path, json_text(card))
    return card_path


def card_confidence(calibration: dict | None, source: str, tta: str | None = None) -> dict | None:
    """The card's ``confidence`` (score, threshold, calibrated_on, ``structures``: {class: margin
    threshold}) from a run's ``confidence.json``;
    None when the run was not calibrated (``lightseg calibrate RUN``) or was for another model file
    than ``source``, the one exported, or another test-time augmentation than ``tta`` (averaged
    views have other margins)."""
    if not calibration:
        return None
    on = calibration.get("calibrated_on") or {}
    if on.get("model") != source:
        LOG.warning("confidence.json was calibrated for %s, not %s: the card gets no confidence threshold; "
                    "run lightseg calibrate RUN --model-file %s", on.get("model"), source, source)
        return None
    if calibrated_tta(calibration) != tta_mode(tta):
        LOG.warning("confidence.json was calibrated with TTA %s, not %s: the card gets no confidence threshold; "
                    "run lightseg calibrate RUN --tta %s", calibrated_tta(calibration), tta_mode(tta), tta_mode(tta))
        return None
    return {**{k: calibration.get(k) for k in ("score", "threshold", "calibrated_on")},
            "structures": structure_thresholds(calibration)}
