"""Loading trained models without running code from the file.

Every Keras model the project reads (a run directory's best model, a ``.keras`` zip, a ``.h5``
file, QAT or not, a SavedModel directory) goes through :func:`load_model_file`. Keras
deserialises a model from a config that names classes and functions; a ``Lambda`` layer's
config carries Python bytecode, a ``TFOpLambda`` names any TensorFlow function and a
``module`` entry makes Keras import that module. Keras' ``safe_mode`` only covers the
``.keras`` path (a ``.h5`` Lambda runs its payload while loading) and has had bypasses, so
the config is read here as plain JSON first and every serialised object in it must be on an
allowlist: Keras' built-in image layers, initializers, regularizers and constraints, this
project's registered layers and tfmot's quantization classes, with ``module`` inside those
packages; a ``TFOpLambda`` only for the arithmetic Keras' own MobileNetV3 records. Anything
else is refused before Keras sees the file; then it loads in safe mode with only the
project's own custom objects.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

import h5py
import tf_keras as keras
from google.protobuf.message import DecodeError
from tf_keras.src.saving.serialization_lib import ObjectSharingScope, SafeModeScope

import lightseg_tf.objectives.losses  # noqa: F401  (registers the custom losses for loading)
import lightseg_tf.objectives.metrics  # noqa: F401  (and the custom metrics)
from lightseg_tf.errors import LightsegError
from lightseg_tf.models import FLOAT32_LOGITS, float32_logits, list_models
from lightseg_tf.models.qat import qat_scope
from lightseg_tf.runs import BEST_MODEL

# Keras layer families (tf_keras.src.layers.<family>) a segmentation model is made of.
_LAYER_FAMILIES = frozenset({"activation", "attention", "convolutional", "merging", "normalization", "pooling",
                             "regularization", "reshaping"})
_KERAS_EXTRA = frozenset({"Functional", "Sequential", "InputLayer", "Activation", "Dense", "EinsumDense",
                          "Identity", "Rescaling", "Resizing", "CenterCrop", "Normalization", "Policy",
                          "FixedDropout"})  # the last: a Dropout of segmentation_models' EfficientNet encoders
# Plain data markers of the config formats (tuples, arrays, shapes, input specs).
_DATA_MARKERS = frozenset({"__tuple__", "__numpy__", "__tensor__", "__bytes__", "TensorShape", "InputSpec",
                           "TypeSpec"})
# Layers that call a TensorFlow function named in their config, and the functions allowed there
# (plain arithmetic: Keras applications such as MobileNetV3 write ``x + 3`` and ``x * y``).
_OP_LAYERS = frozenset({"TFOpLambda", "SlicingOpLambda"})
_TF_OPS = frozenset({"__operators__.add", "__operators__.getitem", "math.add", "math.subtract", "math.multiply",
                     "math.truediv", "math.divide", "nn.relu", "nn.relu6", "math.sigmoid", "nn.sigmoid", "math.tanh"})
_MODULES = ("keras.layers", "keras.initializers", "keras.regularizers", "keras.constraints",
            "keras.mixed_precision", "tf_keras.src.engine", "tf_keras.src.layers.core.tf_op_layer",
            "lightseg_tf.models",
            "tensorflow_model_optimization.python.core.quantization.keras", "efficientnet.model")
_WEIGHTS = "model.weights.h5"  # the weights inside a .keras zip
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"


@functools.lru_cache(maxsize=1)
def allowed_classes() -> frozenset[str]:
    """Class names a model config may hold (see the module docstring)."""
    list_models()  # imports every architecture module so its custom layers are registered
    names = set(_KERAS_EXTRA | _DATA_MARKERS | _OP_LAYERS)
    families = tuple(f"tf_keras.src.layers.{family}." for family in _LAYER_FAMILIES)
    for name in dir(keras.layers):
        cls = getattr(keras.layers, name)
        if isinstance(cls, type) and issubclass(cls, keras.layers.Layer) and cls.__module__.startswith(families):
            names.add(name)
    for space, base in ((keras.initializers, keras.initializers.Initializer),
                        (keras.regularizers, keras.regularizers.Regularizer),
                        (keras.constraints, keras.constraints.Constraint)):
        names |= {n for n in dir(space) if isinstance(getattr(space, n), type) and issubclass(getattr(space, n), base)}
    names |= {k for k in keras.utils.get_custom_objects() if k.startswith("lightseg>")}
    with qat_scope() as scope:  # tfmot's quantization classes and the project's, by bare name
        names |= {k for objects in scope.custom_objects for k in objects}
    return frozenset(names - {"Lambda"})


def _refusal(node: dict, allowed: frozenset[str]) -> str | None:
    """What is wrong with one serialised object ``{"class_name", "config", "module"?, ...}``, or None."""
    name, module, registered = node["class_name"], node.get("module"), node.get("registered_name")
    if name == "Lambda":
        return "a Lambda layer, whose config is Python code"
    if not isinstance(name, str) or name not in allowed:
        return f"class {name!r}, which is not a known layer"
    if name in _OP_LAYERS and (node.get("config") or {}).get("function") not in _TF_OPS:
        return f"a {name} layer calling TensorFlow function {(node.get('config') or {}).get('function')!r}"
    if module is not None and not (isinstance(module, str) and any(
            module == m or module.startswith(m + ".") for m in _MODULES)):
        return f"class {name!r} from module {module!r}"
    if registered not in (None, name) and registered not in allowed:
        return f"class {name!r} registered as {registered!r}"
    return None


def check_model_config(config, source: str | Path) -> None:
    """Raise LightsegError unless every serialised object in ``config`` is allowlisted."""
    allowed = allowed_classes()
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            what = _refusal(node, allowed) if "class_name" in node else None
            if what:
                raise LightsegError(
                    f"{source}: holds {what}; refused, loading it could run code from the file. "
                    "Load only models made by lightseg, or rebuild this one from lightseg's layers")
            stack.extend(node.values())


def _read_config(path: Path, kind: str):
    """The model config of ``path`` as plain JSON (nothing deserialised)."""
    if kind == "keras":
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
        config.pop("compile_config", None)  # loaded with compile=False: never deserialised
        return config
    if kind == "h5":
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        if raw is None:
            raise LightsegError(f"{path}: holds weights only, not a model; pass the saved model file")
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    from tf_keras.protobuf import saved_metadata_pb2

    meta_path = path / "keras_metadata.pb"
    if not meta_path.is_file():
        raise LightsegError(f"{path}: a SavedModel without keras_metadata.pb is not a Keras model; "
                            "save the model with tf_keras (.keras)")
    meta = saved_metadata_pb2.SavedMetadata()
    meta.ParseFromString(meta_path.read_bytes())
    return [json.loads(node.metadata) for node in meta.nodes if node.metadata]


def is_saved_model(path: str | Path) -> bool:
    """True for a SavedModel directory (as opposed to a run directory)."""
    return (Path(path) / "saved_model.pb").is_file()


def _model_kind(path: Path) -> str:
    if path.is_dir():
        if not is_saved_model(path):
            raise LightsegError(f"{path}: a folder that is neither a run directory nor a SavedModel; "
                                "pass a run directory or a .keras file")
        return "savedmodel"
    with path.open("rb") as f:
        head = f.read(8)
    if head.startswith(ZIP_MAGIC):
        if path.suffix != ".keras":  # Keras reads a zip as a .keras model only by that suffix
            raise LightsegError(f"{path}: a .keras (zip) model must end in .keras; rename it")
        return "keras"
    if head == HDF5_MAGIC or h5py.is_hdf5(path):
        return "h5"
    raise LightsegError(f"{path}: not a Keras model (.keras zip, .h5 or SavedModel directory); is it the right file?")


def model_path(path: str | Path) -> Path:
    """The model file a path means: a run directory's best model (``best.keras``, or ``best.h5`` for
    a run that trained a QAT student), else the path itself (a file or a SavedModel directory)."""
    path = Path(path)
    if path.is_dir() and not is_saved_model(path):
        qat_best = path / "best.h5"  # a run that trained a QAT student holds .h5 models
        return qat_best if qat_best.exists() and not (path / BEST_MODEL).exists() else path / BEST_MODEL
    return path


def load_model_file(path: str | Path) -> keras.Model:
    """Load a ``.keras`` / ``.h5`` model file or a SavedModel directory, never running code from it.

    Raises:
        LightsegError: missing, corrupt or not a model; or a config with a Lambda layer or a
            class / module outside the allowlist (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise LightsegError(f"{path}: no such model file; pass a run directory or a .keras file")
    try:
        kind = _model_kind(path)
        config = _read_config(path, kind)
        check_model_config(config, path)
        with qat_scope(), SafeModeScope(True):
            if kind == "keras":
                return _load_keras_zip(path, config)
            return keras.models.load_model(str(path), compile=False, safe_mode=True)
    except LightsegError:
        raise
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError, EOFError,
            zipfile.BadZipFile, zlib.error, DecodeError) as exc:
        raise LightsegError(f"{path}: cannot load as a Keras model ({type(exc).__name__}: {exc}); "
                            "the file is corrupt or not a lightseg model, replace it") from None


def _load_keras_zip(path: Path, config: dict) -> keras.Model:
    """A ``.keras`` zip's model (uncompiled): its checked ``config`` deserialised, then its weights
    read from a local copy of the archive's ``model.weights.h5``.

    What ``keras.models.load_model`` does, without its reads of the weights through
    ``tf.io.gfile`` inside the zip: thousands of small reads that took 2.2 s for the quickstart's
    1.9 M-parameter U-Net (0.4 s this way, experiments/bench_loading.py); the clinic and report
    stages load every model again.
    An archive with assets (none of lightseg's models has any) goes through Keras' own loader.
    """
    with zipfile.ZipFile(path) as z, tempfile.TemporaryDirectory(prefix="lightseg-load-") as tmp:
        if set(z.namelist()) != {"metadata.json", "config.json", _WEIGHTS}:
            return keras.models.load_model(str(path), compile=False, safe_mode=True)
        weights = Path(tmp) / _WEIGHTS
        with z.open(_WEIGHTS) as src, weights.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        with ObjectSharingScope():
            model = keras.saving.deserialize_keras_object(config, safe_mode=True)
        model.load_weights(str(weights))  # a ``.weights.h5`` name: Keras' v3 weights reader
    return model


def load_trained_model(path: str | Path) -> keras.Model:
    """Load a run directory's best model (``best.keras``, or a QAT run's ``best.h5``) or a model
    file / SavedModel directory, through :func:`load_model_file`, in float32.

    A model trained under a mixed precision policy comes back rebuilt in float32
    (:func:`with_policy`): QAT, TFLite conversion and evaluation need float32 graphs."""
    return with_policy(load_model_file(model_path(path)), "float32")


def _replace_policies(node, policy: str):
    """A copy of a config tree with every layer's dtype policy set to ``policy`` (the float32
    logits layer of a mixed model stays float32)."""
    if isinstance(node, list):
        return [_replace_policies(v, policy) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _replace_policies(v, policy) for k, v in node.items()}
    dtype = out.get("dtype")
    if out.get("name") == FLOAT32_LOGITS:
        return out
    if isinstance(dtype, dict) and dtype.get("class_name") in ("Policy", "DTypePolicy"):
        out["dtype"] = policy
    elif isinstance(dtype, str) and dtype.startswith("mixed_"):
        out["dtype"] = policy
    return out


def model_policies(model: keras.Model) -> set[str]:
    """The dtype policy names of a model's layers (nested models and wrappers included)."""
    return {layer.dtype_policy.name for layer in model.submodules if isinstance(layer, keras.layers.Layer)}


def with_policy(model: keras.Model, policy: str) -> keras.Model:
    """``model`` rebuilt with every layer under the dtype policy ``policy``, same weights.

    The way from a mixed-precision checkpoint to the float32 graph that QAT, PTQ and TFLite
    export need (and back, to fine-tune a float32 model under ``mixed_float16``). A float32 model
    asked for float32 is returned as is. A mixed model ends with float32 logits
    (:func:`lightseg_tf.models.float32_logits`); that identity layer stays when converted back.
    """
    if policy == "float32" and model_policies(model) == {"float32"}:
        return model
    config = _replace_policies(model.get_config(), policy)
    with qat_scope():
        rebuilt = model.__class__.from_config(config)
    rebuilt.set_weights(model.get_weights())
    return float32_logits(rebuilt)


load_qat_model = load_trained_model  # a QAT .h5 needs nothing more (the loader opens tfmot's scope)
