"""The config tree: dataclasses loaded from YAML and overridden with ``key.sub=value``.

A YAML file holds overrides only; everything it leaves out keeps the defaults below.
Unknown keys and values of the wrong type are errors naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

from lightseg_tf.errors import LightsegError


class ConfigError(LightsegError):
    """A config key that does not exist or a value of the wrong type."""


@dataclass
class AugmentConfig:
    """Online augmentation (albumentations), each transform with its probability (0 = off)."""

    enabled: bool = True
    affine: float = 0.7
    shift: float = 0.06
    scale: float = 0.12
    rotate: float = 15.0
    hflip: float = 0.5
    vflip: float = 0.0
    brightness_contrast: float = 0.5
    blur: float = 0.2
    grid_distortion: float = 0.1
    elastic: float = 0.1
    speckle: float = 0.3


@dataclass
class DataConfig:
    """Where the images come from and how the shared tf.data pipeline treats them."""

    path: str = ""  # dataset folder; empty means "make a phantom in the run directory"
    format: str | None = None  # reader name; None = detect
    split_file: str | None = None  # existing split JSON to honour; None = make one
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0
    # random: test subjects dealt like val; last: the last subjects in id order are the test side
    # (PSFHS: the latest recordings, the drift a user meets next; issue 19)
    test_holdout: Literal["random", "last"] = "random"
    image_size: int = 128  # square letterbox side fed to the networks
    batch_size: int = 8
    cache: bool = True
    shuffle_buffer: int = 512
    deterministic: bool = False
    oversample_rare: float = 1.0  # >1 repeats images holding a rare class this many times
    rare_class_fraction: float = 0.5  # a class is rare when fewer than this share of images hold it
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    phantom_n: int = 96  # used when path is empty
    # More phantom images, written without masks: the split's unlabelled side, which the teachers
    # label for distillation (distill.unlabelled) and nothing else reads.
    phantom_unlabelled: int = 0
    phantom_seed: int = 0


@dataclass
class ModelConfig:
    """Architecture name from the registry and its builder's keyword options."""

    name: str = "unet"
    options: dict[str, Any] = field(default_factory=lambda: {"base_filters": 16, "depth": 4})


@dataclass
class LossConfig:
    """A weighted sum of registered losses: ``terms`` maps loss name -> weight."""

    terms: dict[str, float] = field(default_factory=lambda: {"dice": 1.0, "ce": 1.0})
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-term keyword options


@dataclass
class TrainConfig:
    """Optimiser, schedule, callbacks and the execution environment."""

    epochs: int = 3
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    early_stopping_patience: int = 0  # 0 disables early stopping
    seed: int = 0
    deterministic_ops: bool = False
    # auto = float16 with a GPU, off (float32) on CPU; on = float16; bfloat16 for CPUs/TPUs with it.
    mixed_precision: Literal["auto", "on", "off", "float16", "bfloat16"] = "auto"
    # mirrored = all local GPUs; multi_worker = the TF_CONFIG cluster. data.batch_size is the global batch.
    strategy: Literal["default", "mirrored", "multi_worker"] = "default"
    jit_compile: bool = False
    # Keras' default BN momentum (0.99) makes the moving statistics lag far behind the weights
    # in short trainings: the demo's U-Net scored 0 Dice on CSP/LV in inference mode but 0.70
    # with batch statistics. 0.9 (PyTorch's equivalent default) fixes it; null keeps the model's.
    bn_momentum: float | None = 0.9
    # Issue 17: the fast training path (same loss, gradients and metric as the plain path, to
    # 1e-5; docs/BENCHMARKS.md "Training speed"). false = the plain path, kept as the reference
    # that experiments/bench_training.py and the parity test compare against.
    fast_path: bool = True
    verbose: int = 1


@dataclass
class DistillConfig:
    """Black-box distillation from a teacher cache (``lightseg distill``)."""

    cache: str = ""  # teacher cache folder made by `lightseg teachers predict`
    teachers: list[str] = field(default_factory=list)  # cache teachers to use; empty = all
    weights_file: str = ""  # ensemble_weights.json; "" = CACHE/ensemble_weights.json if there, else equal
    alpha: float = 0.5  # weight of the hard (DLCE) loss; 1 - alpha goes to the soft term
    # 1 for cwd: the teachers' log-probabilities divided by T > 1 spread a small class's spatial
    # target over the image (experiments/cwd_target_mass.py); kl is usually run at 2-4.
    temperature: float = 1.0
    # The soft term (lightseg_tf.objectives.distill_losses): kl | kl_agree | kl_balanced | cwd | dist | dice.
    # cwd, not the paper's pixel-mean kl: on the phantom kl left CSP and LV at 0 Dice on every seed
    # (it fits the background and drops small classes) while cwd beat the labels-only student on
    # all 3 seeds (docs/BENCHMARKS.md, issue 18).
    soft_loss: Literal["kl", "kl_agree", "kl_balanced", "cwd", "dist", "dice"] = "cwd"
    init_from: str = ""  # run directory or model file whose weights start the student
    qat: bool = False  # distil into the quantization-aware (fake-quantized) student
    # Also distil on the split's unlabelled images (no mask) when the cache holds the teachers'
    # probabilities for them: the vote's argmax is their hard label, the vote their soft target.
    unlabelled: bool = True


def _default_space() -> dict[str, dict[str, Any]]:
    return {
        "distill.alpha": {"low": 0.2, "high": 0.9},
        "distill.temperature": {"low": 1.0, "high": 6.0},
        "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
        "train.optimizer": {"choices": ["adamw", "adam"]},
        "data.batch_size": {"choices": [4, 8, 16]},
        "model.options.width": {"choices": [0.5, 0.75, 1.0]},
    }


@dataclass
class SearchConfig:
    """Hyperparameter search (``lightseg tune``): each trial is a short training or distillation run.

    ``space`` maps dotted config keys to ``{low, high[, log]}`` (numbers) or ``{choices: [...]}``.
    """

    engine: Literal["optuna", "kerastuner"] = "optuna"
    algorithm: Literal["tpe", "random", "bayesian", "hyperband"] = "tpe"
    trials: int = 10
    epochs: int = 3  # per trial (hyperband: the most epochs a trial gets)
    storage: str = ""  # Optuna RDB URL shared by workers; "" = SQLite file in the run directory
    seed: int = 0
    space: dict[str, dict[str, Any]] = field(default_factory=_default_space)


def _default_teachers() -> dict[str, dict[str, Any]]:
    return {
        "unet": {"model": "unet", "options": {"base_filters": 16, "depth": 4}},
        "attention_unet": {"model": "attention_unet", "options": {"base_filters": 16, "depth": 4}},
    }


@dataclass
class PipelineConfig:
    """The whole LightSeg chain (``lightseg pipeline``); the student is ``model``, trained with ``train``.

    ``teachers`` maps a teacher name to ``{model, options[, epochs, learning_rate, seed]}``.
    """

    teachers: dict[str, dict[str, Any]] = field(default_factory=_default_teachers)
    teacher_epochs: int = 0  # 0 = train.epochs
    # Epochs of the distilled student; 0 = train.epochs. With unlabelled images each epoch is longer:
    # e.g. train.epochs x labelled / (labelled + unlabelled) gives the labels-only twin's step count.
    distill_epochs: int = 0
    ensemble_engine: Literal["optuna", "kerastuner"] = "optuna"
    ensemble_trials: int = 100
    # A teacher whose Dice on some class is < this x the best teacher's is left out of the vote (0 = keep all).
    ensemble_screen: float = 0.5
    ensemble_folds: int = 3  # tuned weights are used only if they beat equal ones in this K-fold check on VAL
    ensemble_margin: float = 0.005  # ... by more than this held-out mean fg Dice (so does the best teacher alone)
    baseline: bool = True  # also train the student on the labels alone, to measure what distillation adds
    select: bool = True  # with baseline: ship the better student on VAL (false: always the distilled one)
    select_margin: float = 0.01  # the labels-only twin ships only if its VAL mean fg Dice is higher by more
    qat: bool = True  # quantization-aware fine-tuning (with the Distiller) before the int8 export
    qat_epochs: int = 2
    qat_learning_rate: float = 2e-4
    # with qat: also convert the shipped student by post-training quantization and ship the int8 file
    # better on VAL (false: always the QAT one)
    int8_choice: bool = True
    export: list[str] = field(default_factory=lambda: ["int8"])  # TFLite variants to export
    explain_images: int = 2
    robustness: bool = True
    robustness_images: int = 0  # test images through the corruption table (every model, severity); 0 = all
    biometry_images: int = 8


@dataclass
class StudyConfig:
    """A comparative study (``lightseg study``): several models under one pipeline and split."""

    models: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "unet": {"model": "unet", "options": {"base_filters": 16, "depth": 4}},
        "attention_unet": {"model": "attention_unet", "options": {"base_filters": 16, "depth": 4}},
        "deeplabv3plus": {"model": "deeplabv3plus", "options": {"encoder": "mobilenetv3small"}},
    })
    tta: bool = True  # test metrics with and without horizontal-flip TTA


@dataclass
class Config:
    """The whole run: one of these is resolved and written into every run directory."""

    name: str = "run"
    run_root: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    study: StudyConfig = field(default_factory=StudyConfig)


# ---------------------------------------------------------------------------- type checking

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value, tp, key: str):
    """Return ``value`` checked (and losslessly converted) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"config key {key!r}: {value!r} is not {_type_name(tp)}")
    if origin is Literal:
        if isinstance(value, bool) and {"on", "off"} <= set(typing.get_args(tp)):
            value = "on" if value else "off"  # YAML 1.1 reads a bare on / off as a boolean
        if value not in typing.get_args(tp):
            raise ConfigError(f"config key {key!r}: {value!r} is not one of {list(typing.get_args(tp))}")
        return value
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping, got {value!r}")
        _, vt = typing.get_args(tp) or (str, Any)
        return {str(k): _coerce(v, vt, f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a mapping of {tp.__name__} fields")
        return _merge(tp(), value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"config key {key!r}: {value!r} is not of type {_type_name(tp)}")


def _merge(obj, updates: dict, prefix: str = ""):
    """Apply a nested mapping of overrides onto the dataclass instance ``obj``."""
    hints = typing.get_type_hints(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for k, v in updates.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if k not in names:
            raise ConfigError(f"unknown config key {key!r}; known keys here: {sorted(names)}")
        tp = hints[k]
        current = getattr(obj, k)
        if dataclasses.is_dataclass(current) and isinstance(v, dict):
            _merge(current, v, key)
        else:
            setattr(obj, k, _coerce(v, tp, key))
    return obj


def _parse_override(item: str) -> tuple[str, Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.sub=value")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults, then the YAML file at ``path`` (if any), then ``key.sub=value`` overrides.

    Raises:
        ConfigError: unknown key or wrong type, naming the dotted key.
    """
    cfg = Config()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc})") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at top level")
        try:
            _merge(cfg, data)
            check_ranges(cfg)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    return with_overrides(cfg, dict(_parse_override(item) for item in overrides), copy=False)


# (dotted key, test, what it must be). Checked whenever a config is loaded or overridden, so a
# bad value stops before a run directory (and its config.yaml) is written.
RANGES: list[tuple[str, Callable[[Any], bool], str]] = [
    ("data.image_size", lambda v: v >= 16 and v % 16 == 0, "a multiple of 16 (>= 16): the models downsample by 16"),
    ("data.batch_size", lambda v: v >= 1, ">= 1"),
    ("data.val_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.test_fraction", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("data.shuffle_buffer", lambda v: v >= 1, ">= 1"),
    ("data.oversample_rare", lambda v: v >= 1, ">= 1"),
    ("data.rare_class_fraction", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("data.phantom_n", lambda v: v >= 3, ">= 3 (train, val and test each need an image)"),
    ("data.phantom_unlabelled", lambda v: v >= 0, ">= 0"),
    ("pipeline.distill_epochs", lambda v: v >= 0, ">= 0 (0 = train.epochs)"),
    *[(f"data.augment.{k}", lambda v: 0 <= v <= 1, "a probability in [0, 1]")
      for k in ("affine", "hflip", "vflip", "brightness_contrast", "blur", "grid_distortion", "elastic", "speckle")],
    ("train.epochs", lambda v: v >= 1, ">= 1"),
    ("train.learning_rate", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("train.weight_decay", lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    ("train.early_stopping_patience", lambda v: v >= 0, ">= 0 (0 disables it)"),
    ("train.bn_momentum", lambda v: v is None or 0 <= v < 1, "in [0, 1) or null"),
    ("distill.alpha", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("distill.temperature", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    ("search.trials", lambda v: v >= 1, ">= 1"),
    ("search.epochs", lambda v: v >= 1, ">= 1"),
    ("pipeline.teacher_epochs", lambda v: v >= 0, ">= 0 (0 = train.epochs)"),
    ("pipeline.ensemble_trials", lambda v: v >= 1, ">= 1"),
    ("pipeline.ensemble_screen", lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("pipeline.ensemble_folds", lambda v: v == 0 or v >= 2, "0 (no check) or >= 2"),
    ("pipeline.select_margin", lambda v: 0 <= v < 1, "in [0, 1)"),
    ("pipeline.qat_epochs", lambda v: v >= 1, ">= 1"),
    ("pipeline.robustness_images", lambda v: v >= 0, ">= 0 (0 = the whole test split)"),
    ("pipeline.qat_learning_rate", lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
]


def check_ranges(cfg: Config) -> Config:
    """Raise ConfigError naming the first key whose value is out of range; returns ``cfg``."""
    for dotted, ok, what in RANGES:
        value = cfg
        for part in dotted.split("."):
            value = getattr(value, part)
        if not ok(value):
            raise ConfigError(f"config key {dotted!r}: {value!r} must be {what}")
    if cfg.data.val_fraction + cfg.data.test_fraction >= 1:
        raise ConfigError(f"config keys 'data.val_fraction' + 'data.test_fraction' = "
                          f"{cfg.data.val_fraction + cfg.data.test_fraction:g} must be < 1 (train needs images)")
    return cfg


def with_overrides(cfg: Config, values: dict[str, Any], copy: bool = True) -> Config:
    """``cfg`` with dotted keys set (``{"train.epochs": 5, "model.options.width": 0.5}``).

    A key reaching inside a mapping field (``model.options.width``) sets that one entry and
    keeps the mapping's others; a YAML file, by contrast, replaces a mapping it gives.
    Returns a modified deep copy unless ``copy=False``.
    """
    import copy as _copy

    cfg = _copy.deepcopy(cfg) if copy else cfg
    for dotted, value in values.items():
        parts = dotted.split(".")
        obj, prefix = cfg, []
        while len(parts) > 1 and dataclasses.is_dataclass(getattr(obj, parts[0], None)):
            prefix.append(parts[0])
            obj = getattr(obj, parts.pop(0))
        if len(parts) > 1 and isinstance(getattr(obj, parts[0], None), dict):
            entry = _copy.deepcopy(getattr(obj, parts[0]))
            inner = entry
            for part in parts[1:-1]:
                inner = inner.setdefault(part, {})
                if not isinstance(inner, dict):
                    raise ConfigError(f"config key {dotted!r}: {part!r} is not a mapping")
            inner[parts[-1]] = value
            parts, value = parts[:1], entry
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        _merge(obj, nested, ".".join(prefix))
    return check_ranges(cfg)


def config_to_dict(cfg) -> dict:
    """Plain nested dict of a config dataclass (YAML/JSON-safe)."""
    return dataclasses.asdict(cfg)


# Settings that change how a run talks, not what it computes: ignored when deciding whether a
# run directory or a pipeline stage holds the same experiment.
PRESENTATION_KEYS = {"train": ("verbose",)}


def config_identity(cfg) -> dict:
    """:func:`config_to_dict` without the presentation-only keys (``train.verbose``)."""
    out = config_to_dict(cfg) if not isinstance(cfg, dict) else dict(cfg)
    for section, keys in PRESENTATION_KEYS.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    return out


def dump_config(cfg) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
