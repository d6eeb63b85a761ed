"""Layers shared by every architecture, so no encoder or decoder is copied between files."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers


def conv_bn_act(x, filters: int, kernel_size: int = 3, *, activation: str = "relu", name: str,
                dilation: int = 1, strides: int = 1, use_bias: bool = False):
    """Conv2D -> BatchNorm -> activation.  ``[B,H,W,*] -> [B,H/s,W/s,filters]``.

    The bias is off by default (BatchNorm's beta replaces it).
    """
    x = layers.Conv2D(filters, kernel_size, strides=strides, padding="same", dilation_rate=dilation,
                      use_bias=use_bias, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def double_conv(x, filters: int, *, name: str):
    """Two conv-BN-ReLU units, the U-Net stage (Ronneberger et al., MICCAI 2015)."""
    x = conv_bn_act(x, filters, name=f"{name}_1")
    return conv_bn_act(x, filters, name=f"{name}_2")


def residual_block(x, filters: int, *, name: str, use_bias: bool = True):
    """conv3x3-BN-ReLU-conv3x3-BN + shortcut (identity, or 1x1 conv + BN when channels differ), add, ReLU.

    He et al., "Deep Residual Learning for Image Recognition", CVPR 2016 (basic block). The
    convolutions keep their biases by default, as the LightSeg student does (its published
    1,339,588 parameters count them).
    """
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, use_bias=use_bias, name=f"{name}_proj_conv")(x)
        shortcut = layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = conv_bn_act(x, filters, name=f"{name}_1", use_bias=use_bias)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=use_bias, name=f"{name}_2_conv")(y)
    y = layers.BatchNormalization(name=f"{name}_2_bn")(y)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.Activation("relu", name=f"{name}_out")(y)


def upsample(x, *, name: str, factor: int = 2, mode: str = "bilinear"):
    """Spatial upsampling by ``factor`` (bilinear by default; quantizes cleanly, unlike Resizing)."""
    return layers.UpSampling2D(factor, interpolation=mode, name=name)(x)


def attention_gate(skip, gating, inter_filters: int, *, name: str):
    """Additive attention gate on a skip connection (Oktay et al., "Attention U-Net", MIDL 2018).

    ``alpha = sigmoid(psi(relu(W_x * skip + W_g * up(gating))))``; returns ``skip * alpha``.
    The gating signal comes from the coarser level and is upsampled to the skip's size.
    """
    g = layers.Conv2D(inter_filters, 1, name=f"{name}_wg")(gating)
    if g.shape[1] != skip.shape[1]:
        g = upsample(g, name=f"{name}_up", factor=skip.shape[1] // g.shape[1])
    x = layers.Conv2D(inter_filters, 1, use_bias=False, name=f"{name}_wx")(skip)
    a = layers.Activation("relu", name=f"{name}_relu")(layers.Add(name=f"{name}_add")([x, g]))
    a = layers.Conv2D(1, 1, name=f"{name}_psi")(a)
    a = layers.Activation("sigmoid", name=f"{name}_sigmoid")(a)
    return layers.Multiply(name=f"{name}_gate")([skip, a])


def logits_head(x, num_classes: int, *, name: str = "logits"):
    """1x1 conv to ``num_classes`` logits in float32 (safe under mixed precision)."""
    return layers.Conv2D(num_classes, 1, dtype="float32", name=name)(x)


def check_divisible(input_shape, factor: int, model: str) -> None:
    """Raise a clear error when H or W is not a multiple of the network's total stride."""
    h, w = input_shape[:2]
    if (h and h % factor) or (w and w % factor):
        raise ValueError(f"{model}: input {h}x{w} must be a multiple of {factor}")


def model_input(input_shape, name: str = "image"):
    """The network's image input ``[B, H, W, C]``."""
    return keras.Input(shape=tuple(input_shape), name=name)


@keras.utils.register_keras_serializable(package="lightseg")
class ResizeTo(layers.Layer):
    """Bilinear resize to a fixed ``(height, width)`` (aligns odd-sized backbone features)."""

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        self.height, self.width = int(height), int(width)

    def call(self, x):
        return tf.cast(tf.image.resize(x, (self.height, self.width), method="bilinear"), x.dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def resize_to(x, height: int, width: int, *, name: str):
    """``x`` itself when it already has that size, else a :class:`ResizeTo` of it."""
    if x.shape[1] == height and x.shape[2] == width:
        return x
    return ResizeTo(height, width, name=name)(x)


@keras.utils.register_keras_serializable(package="lightseg")
class WeightedSoftVote(layers.Layer):
    """Weighted soft voting of several logit maps: ``log(sum_t w_t softmax(z_t))``.

    The output is a valid logit map (its softmax is the vote's probability, its argmax the
    vote), so an ensemble model slots in wherever a single model's logits are expected.
    """

    def __init__(self, vote_weights, **kwargs):
        super().__init__(**kwargs)
        self.vote_weights = [float(w) for w in vote_weights]

    def call(self, logits):
        probs = [w * tf.nn.softmax(tf.cast(z, tf.float32), axis=-1) for w, z in zip(self.vote_weights, logits)]
        return tf.math.log(tf.maximum(tf.add_n(probs), 1e-7))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "vote_weights": self.vote_weights}
