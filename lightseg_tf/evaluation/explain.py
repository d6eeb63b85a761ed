"""Where the model looked: GradCAM++ for segmentation, and GradCAM (tf-explain) as baseline.

GradCAM++ (Chattopadhay et al., "Grad-CAM++", WACV 2018) in closed form from FIRST-order
gradients: with the class score ``S`` (the class's summed logit over the predicted region, or
over a given mask) and ``Y = exp(S)``, the second and third derivatives of ``Y`` w.r.t. the
feature maps ``A`` are ``Y g^2`` and ``Y g^3`` with ``g = dS/dA`` (exact for a piecewise-linear
network above ``A``), so

    alpha = g^2 / (2 g^2 + sum_ij(A) g^3),   w_k = sum_ij alpha * relu(g),   map = relu(sum_k w_k A_k)

(``Y`` cancels). Third-order tapes are avoided: they fail in tf-keras. The map is upsampled to
the input and normalised to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from lightseg_tf.core.io import atomic_path, read_gray
from lightseg_tf.data.letterbox import letterbox_image
from lightseg_tf.errors import LightsegError


def default_layer(model: keras.Model) -> str:
    """The last spatial convolution before the head (the 1x1 logits conv is skipped)."""
    out_channels = model.output_shape[-1]
    for layer in reversed(model.layers):
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) and len(layer.output_shape) == 4:
            is_head = layer.kernel_size == (1, 1) and layer.output_shape[-1] == out_channels
            if not is_head:
                return layer.name
    raise LightsegError(f"model {model.name!r} has no convolution to explain; pass --layer")


def _feature_model(model: keras.Model, layer: str | None):
    name = layer or default_layer(model)
    try:
        target = model.get_layer(name).output
    except ValueError:
        raise LightsegError(f"model {model.name!r} has no layer {name!r}") from None
    return keras.Model(model.inputs, [target, model.output]), name


def gradcam_plus_plus(model: keras.Model, image: np.ndarray, class_id: int, layer: str | None = None,
                      region: np.ndarray | None = None) -> np.ndarray:
    """GradCAM++ heatmap ``[H, W]`` in [0, 1] for one letterboxed image ``[H, W, 1]``.

    Args:
        class_id: the class to explain.
        layer: feature layer (default: :func:`default_layer`).
        region: boolean ``[H, W]`` target region; default the pixels predicted as ``class_id``
            (all pixels if none is).
    """
    fmodel, _ = _feature_model(model, layer)
    x = tf.constant(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        feats, logits = fmodel(x, training=False)
        if region is None:
            pred = tf.argmax(logits, axis=-1)[0]
            region_t = tf.cast(tf.equal(pred, class_id), tf.float32)
            region_t = tf.cond(tf.reduce_sum(region_t) > 0, lambda: region_t, lambda: tf.ones_like(region_t))
        else:
            region_t = tf.constant(region.astype(np.float32))
        score = tf.reduce_sum(logits[0, ..., class_id] * region_t)
    g = tape.gradient(score, feats)[0].numpy().astype(np.float64)
    a = feats[0].numpy().astype(np.float64)
    g2, g3 = g**2, g**3
    denom = 2 * g2 + a.sum(axis=(0, 1), keepdims=True) * g3
    alpha = np.where(np.abs(denom) > 1e-12, g2 / np.where(np.abs(denom) > 1e-12, denom, 1.0), 0.0)
    weights = (alpha * np.maximum(g, 0)).sum(axis=(0, 1))
    cam = np.maximum((a * weights).sum(axis=-1), 0)
    return _to_input(cam, image.shape[:2])


def _to_input(cam: np.ndarray, shape) -> np.ndarray:
    import cv2

    cam = cv2.resize(cam.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    top = cam.max()
    return cam / top if top > 0 else cam


@keras.utils.register_keras_serializable(package="lightseg")
class RegionClassScores(layers.Layer):
    """``[B,H,W,C]`` logits -> ``[B,C]``: each class's mean logit over the pixels predicted as it
    (over all pixels when none is), so a classifier explainer's class index means a class."""

    def call(self, logits):
        pred = tf.one_hot(tf.argmax(logits, axis=-1), tf.shape(logits)[-1], dtype=logits.dtype)
        count = tf.reduce_sum(pred, axis=[1, 2])
        masked = tf.reduce_sum(logits * pred, axis=[1, 2]) / tf.maximum(count, 1.0)
        return tf.where(count > 0, masked, tf.reduce_mean(logits, axis=[1, 2]))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


def gradcam(model: keras.Model, image: np.ndarray, class_id: int, layer: str | None = None) -> np.ndarray:
    """GradCAM heatmap ``[H, W]`` in [0, 1] via tf-explain, on the segmentation model wrapped by
    :class:`RegionClassScores`."""
    from tf_explain.core.grad_cam import GradCAM

    name = layer or default_layer(model)
    wrapped = keras.Model(model.inputs, RegionClassScores(name="region_scores")(model.output))
    outputs, grads = GradCAM.get_gradients_and_filters(wrapped, image[None].astype(np.float32), name, class_id,
                                                       use_guided_grads=False)
    cams = GradCAM.generate_ponderated_output(outputs, grads)
    return _to_input(np.maximum(cams[0].numpy(), 0), image.shape[:2])


def heatmap_panel(image: np.ndarray, cams: dict[str, np.ndarray], path) -> None:
    """One panel per class: the heatmap over the gray image, saved as a PNG (atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cams) + 1, figsize=(3 * (len(cams) + 1), 3.2))
    axes[0].imshow(image[..., 0], cmap="gray")
    axes[0].set_title("image")
    for ax, (title, cam) in zip(axes[1:], cams.items()):
        ax.imshow(image[..., 0], cmap="gray")
        ax.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(title)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def class_ids(wanted: list[str] | None, names: list[str]) -> list[int]:
    """Class ids of ``wanted`` (names or ids; default every foreground class)."""
    ids = []
    for c in wanted or names[1:]:
        if c.isdigit() and int(c) < len(names):
            ids.append(int(c))
        elif c in names:
            ids.append(names.index(c))
        else:
            raise LightsegError(f"class {c!r}: not one of {names}")
    return ids


def explain_files(model: keras.Model, images: list[str], names: list[str] | None = None,
                  wanted: list[str] | None = None, method: str = "gradcam++", layer: str | None = None,
                  out_dir: str | Path = "explain") -> list[Path]:
    """Write one heatmap panel per image (``<stem>_gradcampp.png``) for the wanted classes.

    Args:
        model: a Keras segmentation model (logits ``[N, S, S, C]``).
        images: image paths, letterboxed to the model's input side.
        names: class names (default ``class0``...).
        wanted: class names or ids to explain (default every foreground class).
        method: ``gradcam++`` or ``gradcam``.
        layer: feature layer (default :func:`default_layer`).
        out_dir: output folder.

    Returns:
        The panel paths, one per image.
    """
    if method not in METHODS:
        raise LightsegError(f"unknown method {method!r}; use one of {sorted(METHODS)}")
    num = int(model.output_shape[-1])
    names = list(names or [f"class{k}" for k in range(num)])
    ids = class_ids(wanted, names)
    paths = []
    for path in images:
        target = Path(out_dir) / f"{Path(path).stem}_{method.replace('+', 'p')}.png"
        explain_image(model, read_gray(path), ids, names, method, layer, target)
        paths.append(target)
    return paths


def explain_image(model: keras.Model, image: np.ndarray, ids: list[int], names: list[str],
                  method: str = "gradcam++", layer: str | None = None, path: str | Path = "explain.png") -> Path:
    """Letterbox one image ``[H, W, 1]`` to the model's input and write its heatmap panel to ``path``."""
    boxed, _ = letterbox_image(image, int(model.input_shape[1]))
    cams = {f"{names[k]} ({method})": METHODS[method](model, boxed, k, layer) for k in ids}
    heatmap_panel(boxed, cams, path)
    return Path(path)


METHODS = {"gradcam++": gradcam_plus_plus, "gradcam": gradcam}
