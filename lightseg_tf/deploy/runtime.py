"""The TFLite runtime: load an exported ``.tflite`` after checking it against its model card.

The card ``model.json`` beside the ``.tflite`` (written by :mod:`lightseg_tf.deploy.convert`) says
how to letterbox, the classes, the tensors' types and quantization, and the file's SHA-256,
which :func:`load_tflite` checks before running anything. :func:`load_predictor` opens any
model the project makes (run directory, ``.keras``, QAT ``.h5`` or ``.tflite``) as a
:class:`~lightseg_tf.models.predictor.Predictor`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lightseg_tf.core.io import read_json_file, sha256_file
from lightseg_tf.data.letterbox import letterbox_uint8, unletterbox_mask, unletterbox_probs
from lightseg_tf.errors import LightsegError
from lightseg_tf.models.predictor import KerasPredictor, Predictor
from lightseg_tf.models.saving import is_saved_model, load_trained_model, model_path
from lightseg_tf.models.tta import tta_mode
from lightseg_tf.runs import calibrated_tta, is_pipeline_run, open_run, pipeline_model, read_confidence

CARD_SCHEMA = "lightseg-model-card/1"


def make_interpreter(model_content: bytes | None = None, model_path: str | None = None, threads: int = 1,
                 delegates: bool = True):
    """A LiteRT interpreter; ``delegates=False`` keeps the plain op list (no XNNPACK node)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_content=model_content, model_path=model_path, num_threads=threads,
                       experimental_op_resolver_type=resolver)


def tensor_entry(detail) -> dict:
    scale, zero = detail["quantization"]
    return {"name": detail["name"], "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(v) for v in detail["shape"]],
            "quantization": {"scale": float(scale), "zero_point": int(zero)} if scale else None}


def io_details(interp) -> tuple[dict, dict]:
    """Input details, and output details keyed by signature name (class_map, probs)."""
    sig = interp.get_signature_runner()
    inputs = sig.get_input_details()
    outputs = sig.get_output_details()
    return inputs, outputs


def read_card(path: str | Path) -> dict:
    """The card of ``model.tflite`` (``model.json`` beside it) or a card file, checked by
    :func:`check_card`."""
    path = Path(path)
    card_path = path.with_suffix(".json") if path.suffix == ".tflite" else path
    card = read_json_file(card_path, "model card",
                          missing="model card missing; re-export the model with lightseg export")
    check_card(card, card_path)
    return card


def check_card(card, card_path: str | Path) -> None:
    """Raise LightsegError unless ``card`` has every field loading and running a model reads, with
    the right types, and as many classes as probability channels."""
    if not isinstance(card, dict):
        raise LightsegError(f"{card_path}: a model card is a JSON object, this is a JSON {type(card).__name__}; "
                            "re-export the model with lightseg export")
    if card.get("schema") != CARD_SCHEMA:
        raise LightsegError(f"{card_path}: not a lightseg model card (schema {card.get('schema')!r})")
    outputs = card.get("outputs") if isinstance(card.get("outputs"), dict) else {}
    tensors = {"input": card.get("input"), "class_map": outputs.get("class_map"), "probs": outputs.get("probs")}
    classes = card.get("classes")
    problem = None
    if not (isinstance(card.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", card["sha256"])):
        problem = "has no SHA-256 of its model"
    elif not (isinstance(classes, list) and classes and all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                            for c in classes)):
        problem = "has no class list"
    elif not isinstance((card.get("input") or {}).get("size"), int):
        problem = "has no input size"
    else:
        for name, t in tensors.items():
            q = t.get("quantization", "missing") if isinstance(t, dict) else "missing"
            if not (isinstance(t, dict) and isinstance(t.get("dtype"), str) and isinstance(t.get("shape"), list)
                    and t["shape"] and (q is None or isinstance(q, dict) and {"scale", "zero_point"} <= set(q))):
                problem = f"describes tensor {name!r} incompletely"
                break
        else:
            if tensors["probs"]["shape"][-1] != len(classes):
                problem = f"names {len(classes)} classes for {tensors['probs']['shape'][-1]} probability channels"
    if problem:
        raise LightsegError(f"{card_path}: the model card {problem}; re-export the model with lightseg export")


UNKNOWN_TRAINING_DOMAIN = "unknown (the card does not say)"  # the demos' words too


def training_domain_text(card: dict) -> str | None:
    """What the carded model was trained on, as one line ("lightseg-phantom (lightseg)").

    From the card's ``training_domain`` (written by :func:`lightseg_tf.deploy.convert.build_card`);
    a card written before that field existed falls back to its ``training_data`` (folder name
    and format). None when the card says nothing. ``trainingDomain`` in ``tflite/web/core.js``
    is the same rule, and ``TrainingDomain`` in the Android core: all three are held to
    ``android_demo/app/src/test/resources/training_domain_cases.json``.
    """
    domain, data = card.get("training_domain") or {}, card.get("training_data") or {}
    # The folder's last name whichever OS wrote the card (a Windows path has no '/' for Path).
    folder = [part for part in str(data.get("path") or "").replace("\\", "/").split("/") if part]
    name = domain.get("dataset") or (folder[-1] if folder else None)
    fmt = domain.get("format") or data.get("format")
    if not name:
        return fmt
    return f"{name} ({fmt})" if fmt and fmt != name else name


class TFLitePredictor(Predictor):
    """A checked TFLite segmentation model (made by ``lightseg export``) with its card."""

    def __init__(self, path: Path, card: dict, interpreter):
        super().__init__(int(card["input"]["size"]), [c["name"] for c in card["classes"]],
                         card.get("name", Path(path).stem), num_classes=int(card["outputs"]["probs"]["shape"][-1]),
                         source=str(path))
        self.path, self.card, self.interpreter = Path(path), card, interpreter
        self.calibration = card.get("confidence")

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One letterboxed image ``[S,S,1]`` float in [0,1] -> (class map ``[S,S]``, probs ``[S,S,C]``)."""
        inp = self.card["input"]
        x = np.asarray(image, np.float32).reshape(1, self.size, self.size, 1)
        if inp["dtype"] == "uint8":
            x = np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)
        out = self._invoke(x)
        return out["class_map"].astype(np.int32), self.dequantize(out["probs"])

    def _invoke(self, x: np.ndarray) -> dict:
        """The graph on one input ``[1, S, S, 1]``: its raw ``class_map`` (uint8 ``[S, S]``) and ``probs``
        (``[S, S, C]`` in the card's dtype)."""
        out = self.interpreter.get_signature_runner()(image=x)
        return {"class_map": np.asarray(out["class_map"], np.uint8).reshape(self.size, self.size),
                "probs": np.asarray(out["probs"][0])}

    def dequantize(self, probs: np.ndarray) -> np.ndarray:
        """The raw ``probs`` tensor as float32 probabilities, per the card's quantization."""
        probs = np.asarray(probs).astype(np.float32)
        q = self.card["outputs"]["probs"]["quantization"]
        return (probs - q["zero_point"]) * q["scale"] if q else probs

    def predict_probs(self, images: np.ndarray) -> np.ndarray:
        return np.stack([self.run(im)[1] for im in images])

    def invoke_boxed(self, boxed: np.ndarray) -> dict:
        """One inference on a uint8 letterbox ``[S, S]``, as a device runs it: the raw ``class_map``
        and ``probs`` (see :meth:`_invoke`); a float-input model gets the letterbox / 255."""
        x = np.asarray(boxed, np.uint8).reshape(1, self.size, self.size, 1)
        if self.card["input"]["dtype"] != "uint8":
            x = x.astype(np.float32) / 255.0
        return self._invoke(x)

    def class_map(self, boxed: np.ndarray) -> np.ndarray:
        """The graph's own ``class_map`` (uint8 ``[S, S]``) of one uint8 letterbox ``[S, S]``."""
        return self.invoke_boxed(boxed)["class_map"]

    def device_letterbox(self, image: np.ndarray):
        """The image ``[H, W(, 1)]`` in [0, 1] as uint8 gray, letterboxed as the devices do
        (:func:`letterbox_uint8`): ``(boxed uint8 [S, S], Letterbox)``."""
        gray = np.clip(np.round(np.asarray(image, np.float32).reshape(image.shape[:2]) * 255.0), 0, 255)
        return letterbox_uint8(gray.astype(np.uint8), self.size)

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        """Class map ``[H, W]`` at the ORIGINAL size, computed as every device computes it.

        The image as uint8 gray -> :func:`letterbox_uint8` -> the graph's ``class_map`` ->
        :func:`unletterbox_mask` (nearest at half-pixel centres): bit for bit what
        ``tflite/run_edge.py``, the browser demo and the Android app do, so ``lightseg measure``
        on a .tflite gives the HC they give. (Bilinear un-letterboxing of the probabilities, as
        the Keras path and ``evaluate`` do, moves HC by up to about 1 % on 800x540 images:
        ``experiments/hc_parity.py``.)
        """
        boxed, lb = self.device_letterbox(image)
        return unletterbox_mask(self.class_map(boxed), lb)

    def predict_device(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The class map ``[H, W]`` (:meth:`predict_mask`) and the probabilities ``[H, W, C]`` at the
        ORIGINAL size from ONE inference on the devices' letterbox, as the browser and Android
        demos get them for the confidence score: the probabilities un-letterboxed bilinearly
        (:func:`unletterbox_probs`, OpenCV's INTER_LINEAR grid; ``unletterboxProbs`` in
        ``tflite/web/core.js`` and ``Confidence.unletterboxProbs`` in the Android core).

        (:meth:`predict_image`, the training letterbox of the float image, feeds the model an
        input that differs from this one in a few pixels by one grey level: the score would move
        by up to 4e-4 on the golden images, and the devices would need a second inference.)
        """
        boxed, lb = self.device_letterbox(image)
        out = self.invoke_boxed(boxed)
        return unletterbox_mask(out["class_map"], lb), unletterbox_probs(self.dequantize(out["probs"]), lb)


def load_tflite(path: str | Path, threads: int = 1, card: dict | None = None) -> TFLitePredictor:
    """Load a .tflite after checking it against its card (SHA-256, I/O types, shapes, quantization).

    Raises:
        LightsegError: missing/corrupt file or card, checksum mismatch, I/O not as carded.
    """
    path = Path(path)
    if not path.is_file():
        raise LightsegError(f"{path}: no such model file")
    if card is None:
        card = read_card(path)
    else:
        check_card(card, path)
    digest = sha256_file(path)
    if digest != card["sha256"]:
        raise LightsegError(f"{path}: SHA-256 {digest[:12]}... does not match its card "
                            f"({card['sha256'][:12]}...): the file is corrupt or not the carded model")
    try:
        interp = make_interpreter(model_path=str(path), threads=threads)
        interp.allocate_tensors()
        inputs, outputs = io_details(interp)
    except (ValueError, RuntimeError) as exc:
        raise LightsegError(f"{path}: cannot load as a TFLite model ({exc})") from None
    actual = {"image": inputs.get("image")}
    expected = {"image": card["input"]}
    for name in ("class_map", "probs"):
        actual[name] = outputs.get(name)
        expected[name] = card["outputs"].get(name)
    for name, detail in actual.items():
        want = expected[name]
        if detail is None or want is None:
            raise LightsegError(f"{path}: tensor {name!r} missing from the model or its card")
        got = tensor_entry(detail)
        for field in ("dtype", "shape", "quantization"):
            g, w = got[field], want[field]
            same = (np.allclose([g["scale"], g["zero_point"]], [w["scale"], w["zero_point"]])
                    if field == "quantization" and g and w else g == w)
            if not same:
                raise LightsegError(f"{path}: tensor {name!r} {field} is {g}, its card says {w}; "
                                    "the card belongs to another model")
    return TFLitePredictor(path, card, interp)


def load_predictor(model: str | Path, tta: str | None = None, threads: int = 1) -> Predictor:
    """Open a ``.tflite`` (its card beside it), a run directory or a Keras model file as a Predictor.

    A training run directory also gives the class names (its dataset's); a ``lightseg pipeline``
    run directory opens the model it shipped (the int8 ``.tflite``). ``tta`` ("hflip", "flips") is
    for Keras models only: a .tflite graph is fixed (``lightseg export --tta`` builds TTA into it).
    """
    path = Path(model)
    if is_pipeline_run(path):  # its shipped model
        path = pipeline_model(path)
    if path.suffix == ".tflite":
        if tta_mode(tta) != "none":
            raise LightsegError(f"{path}: --tta is for Keras models; a .tflite graph is fixed (export it with "
                                "lightseg export --tta to build TTA into the file)")
        return load_tflite(path, threads=threads)
    classes = open_run(path).dataset.classes if path.is_dir() and not is_saved_model(path) else None
    predictor = KerasPredictor(load_trained_model(path), classes, tta=tta, name=path.name, source=str(path))
    # The run's calibrated confidence threshold, when it was calibrated for this model file.
    calibration = read_confidence(path if path.is_dir() else path.parent)
    same_model = calibration and (calibration.get("calibrated_on") or {}).get("model") == model_path(path).name
    # TTA changes the probabilities the score reads: the threshold holds for the TTA it was chosen with.
    if same_model and calibrated_tta(calibration) == tta_mode(tta):
        predictor.calibration = calibration
    return predictor
