"""Where the model looked: GradCAM++ for segmentation, and GradCAM (tf-explain) as baseline.

GradCAM++ (Chattopadhay et al., "Grad-CAM++", WACV 2018) in closed form from FIRST-order
gradients: with the class score ``S`` (the class's summed logit over the predicted region, or
over a given mask) and ``Y = exp(S)``, the second and third derivatives of ``Y`` w.r.t. the
feature maps ``A`` are ``Y g^2`` and ``Y g^3`` with ``g = dS/dA`` (exact for a piecewise-linear
network above ``A``), so

    alpha = g^2 / (2 g^2 + sum_ij(A) g^3),   w_k = sum_ij alpha * relu(g),   map = relu(sum_k w_k A_k)

(``Y`` cancels). Third-order tapes are avoided: they fail in tf-keras. The map is upsampled to
the input and normalised to [0, 1].

The features ``A`` are those the logits head reads (:func:`default_layer`): post-activation, so
``A >= 0`` as the derivation assumes. A pre-BatchNorm convolution there (the earlier choice)
has signed, offset channels: in the LightSeg student it was the last block's shortcut
projection, whose maps lit everything but the head and looked alike for every class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from lightseg_tf.core.io import read_gray, write_bytes_atomic
from lightseg_tf.data.letterbox import letterbox_image
from lightseg_tf.errors import LightsegError


def default_layer(model: keras.Model) -> str:
    """The layer whose output the logits head reads: the last feature map before the classes.

    From the model's output, pass-through layers (activation, upsampling, an average of several
    heads: its first input) are followed back to the convolution with one channel per class;
    its input layer is the answer (post-activation features, e.g. the LightSeg student's
    ``x03_out``, a U-Net's ``dec0_2_relu``).

    Raises:
        LightsegError: no such head (a model nested inside the model): pass ``--layer``.
    """
    num_classes = model.output_shape[-1]
    layer = model.outputs[0]._keras_history.layer
    for _ in range(len(model.layers)):
        inputs = layer.input if not isinstance(layer, layers.InputLayer) else None
        if isinstance(inputs, (list, tuple)):
            inputs = inputs[0]
        if inputs is None or not hasattr(inputs, "_keras_history"):
            break
        if isinstance(layer, layers.Conv2D) and layer.filters == num_classes:
            return inputs._keras_history.layer.name
        if isinstance(layer, keras.Model):
            break
        layer = inputs._keras_history.layer
    raise LightsegError(f"model {model.name!r}: no convolution head with {num_classes} channels found from its "
                        "output; pass --layer")


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
        region: boolean ``[H, W]`` target region; default the pixels predicted as ``class_id``.

    Returns:
        The map; all zeros when the region is empty (a class the model did not predict has no
        region to explain: the whole-image score it once fell back to is carried by the features
        that find the head, so it drew the Brain map under every absent class's name).
    """
    fmodel, _ = _feature_model(model, layer)
    x = tf.constant(image[None].astype(np.float32))
    with tf.GradientTape() as tape:
        feats, logits = fmodel(x, training=False)
        if region is None:
            pred = tf.argmax(logits, axis=-1)[0]
            region_t = tf.cast(tf.equal(pred, class_id), tf.float32)
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
    (0, with no gradient, when none is: see :func:`gradcam_plus_plus`), so a classifier
    explainer's class index means a class."""

    def call(self, logits):
        pred = tf.one_hot(tf.argmax(logits, axis=-1), tf.shape(logits)[-1], dtype=logits.dtype)
        count = tf.reduce_sum(pred, axis=[1, 2])
        masked = tf.reduce_sum(logits * pred, axis=[1, 2]) / tf.maximum(count, 1.0)
        return tf.where(count > 0, masked, tf.zeros_like(masked))

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


def explain_classes(model: keras.Model, boxed: np.ndarray, ids: list[int], method: str = "gradcam++",
                    layer: str | None = None) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """Heatmaps of the classes ``ids`` for one letterboxed image, and the model's class map.

    Args:
        model: a Keras segmentation model (logits ``[1, S, S, C]``).
        boxed: the letterboxed image ``[S, S, 1]`` in [0, 1].
        ids: class ids to explain.
        method: a key of :data:`METHODS`.
        layer: feature layer (default :func:`default_layer`).

    Returns:
        ``({class id: map [S, S] in [0, 1]}, predicted class map [S, S])``; a class absent from
        the class map has an all-zero map.
    """
    pred = np.asarray(model(boxed[None].astype(np.float32), training=False))[0].argmax(-1)
    return {k: METHODS[method](model, boxed, k, layer) for k in ids}, pred


HEAT_CMAP = "turbo"
HEAT_LABEL = "relative importance\n(0 = none, 1 = this map's maximum)"


def heatmap_png(images: list[np.ndarray], cams: list[dict[int, np.ndarray]], preds: list[np.ndarray],
                names: list[str], method: str = "gradcam++", row_labels: list[str] | None = None,
                caption: str | None = None) -> bytes:
    """A labelled grid: one row per image (the image, then one heatmap per class) with a colour bar.

    Each class panel outlines, in white, the predicted region whose summed logit is explained;
    a class the model did not predict says so in its title (its map is empty).

    Args:
        images: letterboxed images ``[S, S, 1]``.
        cams: per image, ``{class id: map [S, S] in [0, 1]}`` (:func:`explain_classes`).
        preds: per image, the predicted class map ``[S, S]``.
        names: class names, index = class id.
        method: the method's name, for the colour bar.
        row_labels: per image, a label left of its row (e.g. the image id).
        caption: text under the grid (None: none).

    Returns:
        PNG bytes.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ids = list(cams[0])
    cols = len(ids) + 1
    size = (2.6 * cols + 0.9, 2.75 * len(images) + (0.5 if caption else 0))
    fig, axes = plt.subplots(len(images), cols, figsize=size, squeeze=False, layout="constrained")
    for r, (image, row_cams, pred) in enumerate(zip(images, cams, preds)):
        axes[r, 0].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_title("image")
        if row_labels:
            axes[r, 0].set_ylabel(row_labels[r])
        for ax, k in zip(axes[r, 1:], ids):
            ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            region = pred == k
            if region.any():
                ax.imshow(row_cams[k], cmap=HEAT_CMAP, alpha=0.5, vmin=0, vmax=1)
                ax.contour(region, levels=[0.5], colors="white", linewidths=1.0)
                ax.set_title(names[k])
            else:
                ax.set_title(f"{names[k]}: not predicted\nin this image", fontsize=9)
        # An opaque scale: the overlay's alpha would wash the bar's colours out.
        scale = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, 1), HEAT_CMAP)
        bar = fig.colorbar(scale, ax=list(axes[r]), fraction=0.025, pad=0.01)
        bar.set_label(f"{method} {HEAT_LABEL}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if caption:
        fig.text(0.01, 0.0, caption, fontsize=8, va="bottom", wrap=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return buf.getvalue()


PANEL_CAPTION = ("Each map explains one class's logit summed over its predicted region (white outline), at the "
                 "features the logits head reads; the input is letterboxed as the model sees it.")


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
    """Letterbox one image ``[H, W, 1]`` to the model's input and write its heatmap panel to ``path``.

    Returns:
        ``path``: a PNG of the image and one labelled heatmap per class in ``ids`` (:func:`heatmap_png`).
    """
    boxed, _ = letterbox_image(image, int(model.input_shape[1]))
    cams, pred = explain_classes(model, boxed, ids, method, layer)
    write_bytes_atomic(path, heatmap_png([boxed], [cams], [pred], names, method, caption=PANEL_CAPTION))
    return Path(path)


METHODS = {"gradcam++": gradcam_plus_plus, "gradcam": gradcam}
