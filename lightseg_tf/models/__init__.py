"""Model registry: every architecture is ``build_<name>(input_shape, num_classes, **options)``.

Builders return a functional ``tf_keras.Model`` whose output is LOGITS ``[B, H, W, C]``.
They register themselves with :func:`register_model`; :func:`build_model` looks one up.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from lightseg_tf.errors import LightsegError


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about an architecture.

    Attributes:
        name: registry key (``--model`` / ``model.name``).
        build: the ``build_<name>`` function.
        role: "teacher" or "student".
        qat_ready: True when tfmot QAT (with the model's own QuantizeConfigs) and full-int8
            TFLite conversion are supported.
        paper: citation of the method.
    """

    name: str
    build: Callable
    role: str
    qat_ready: bool
    paper: str


_MODELS: dict[str, ModelSpec] = {}

# The float32 identity layer that ends a model built under a mixed precision policy.
FLOAT32_LOGITS = "logits_float32"

# Modules whose import registers builders; imported on first lookup, not at package import.
_MODEL_MODULES = (
    "lightseg_tf.models.unet",
    "lightseg_tf.models.unetpp",
    "lightseg_tf.models.lightseg_student",
    "lightseg_tf.models.rtseg",
    "lightseg_tf.models.deeplabv3plus",
    "lightseg_tf.models.segformer",
    "lightseg_tf.models.segnet",
    "lightseg_tf.models.sm_models",
)


def register_model(name: str, *, role: str = "teacher", qat_ready: bool = False, paper: str = ""):
    """Decorator registering a ``build_<name>`` function under ``name``."""

    def wrap(fn):
        if name in _MODELS:
            raise ValueError(f"model {name!r} registered twice")
        _MODELS[name] = ModelSpec(name, fn, role, qat_ready, paper)
        return fn

    return wrap


def _load_all() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(module)


def list_models() -> list[ModelSpec]:
    """All registered architectures, sorted by name."""
    _load_all()
    return [_MODELS[k] for k in sorted(_MODELS)]


def get_model_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; a clear error listing the choices otherwise."""
    _load_all()
    if name not in _MODELS:
        raise LightsegError(f"unknown model {name!r}; choose one of {sorted(_MODELS)}")
    return _MODELS[name]


def build_model(name: str, input_shape, num_classes: int, **options):
    """Build the registered architecture ``name``; returns a functional model emitting logits."""
    spec = get_model_spec(name)
    try:
        model = spec.build(tuple(input_shape), int(num_classes), **options)
    except TypeError as exc:
        raise LightsegError(f"model {name!r}: bad options {sorted(options)} ({exc})") from None
    return float32_logits(model)


def float32_logits(model):
    """``model`` with float32 logits: under a mixed policy a float32 identity layer is appended.

    Softmax, the losses and the metrics need float32 (float16 overflows in exp, and loss scaling
    assumes a float32 loss); under a float32 policy the model is returned unchanged.
    """
    import tf_keras as keras

    if model.output.dtype == "float32":
        return model
    logits = keras.layers.Activation("linear", dtype="float32", name=FLOAT32_LOGITS)(model.output)
    return keras.Model(model.inputs, logits, name=model.name)
