"""Layers shared by every architecture, so no encoder or decoder is copied between files."""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers


def conv_bn_act(x, filters: int, kernel_size: int = 3, *, activation: str = "relu", name: str):
    """Conv2D (no bias) -> BatchNorm -> activation.  ``[B,H,W,*] -> [B,H,W,filters]``."""
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation(activation, name=f"{name}_{activation}")(x)


def double_conv(x, filters: int, *, name: str):
    """Two conv-BN-ReLU units, the U-Net stage (Ronneberger et al., MICCAI 2015)."""
    x = conv_bn_act(x, filters, name=f"{name}_1")
    return conv_bn_act(x, filters, name=f"{name}_2")


def upsample(x, *, name: str, mode: str = "bilinear"):
    """x2 spatial upsampling (bilinear by default; quantizes cleanly, unlike Resizing)."""
    return layers.UpSampling2D(2, interpolation=mode, name=name)(x)


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
