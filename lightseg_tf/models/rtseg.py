"""RTSeg-Net-style real-time edge student (Ou et al., "RTSeg-Net: A lightweight network for
real-time segmentation of fetal head and pubic symphysis from intrapartum ultrasound images",
Computers in Biology and Medicine, 2024).

Three 3x3 conv-BN-hard-swish stages with max-pooling (16, 32, 128 channels; strides 2-8),
overlapping patch embeddings to 160 (H/16) and 256 (H/32) channels with tokenized
shifted-MLP blocks (shift along H, fc, 3x3 depthwise, GELU, shift along W, fc), and a decoder
of conv-BN-bilinear-hard-swish steps fused with the skips by EEF blocks: a dilated 3x3 "low"
branch, a 1x1 "high" branch and channel attention ``w = sigmoid(conv1d(alpha*avg + beta*max))``
giving ``low*w + high*(1-w)``. Optional deep supervision averages auxiliary heads into the
single logits output. The tokenized MLP normalises with BatchNormalization instead of the
paper's LayerNorm, which keeps every op int8-convertible.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.blocks import check_divisible, logits_head, model_input, upsample


@keras.utils.register_keras_serializable(package="lightseg")
class HardSwish(layers.Layer):
    """``x * relu6(x + 3) / 6`` (Howard et al., MobileNetV3, ICCV 2019).

    Written as ``(x / 6) * relu6(x + 3)`` on purpose: the TFLite converter fuses the textbook
    form into one HARD_SWISH op, which LiteRT's XNNPACK delegate runs in float only, so in an
    int8 graph every hard-swish fell back to the single-threaded builtin kernel and split the
    delegated graph (rtseg int8 at 256 px, 2 threads: 25.2 -> 10.9 ms, docs/BENCHMARKS.md,
    experiments/bench_rtseg_int8.py). This form converts to an ADD with fused RELU6 and a MUL,
    both XNNPACK int8 ops.
    """

    def call(self, x):
        return (x * (1.0 / 6.0)) * tf.nn.relu6(x + 3.0)


@keras.utils.register_keras_serializable(package="lightseg")
class AxisShift(layers.Layer):
    """Shift channel groups by -g..g pixels along one spatial axis (zero fill), as in UNeXt's
    tokenized shifted MLP (Valanarasu & Patel, MICCAI 2022): group k moves by ``k - groups // 2``.

    Pad + slice with Python slicing on static shapes: the converter emits SLICEs with explicit
    sizes, which XNNPACK (int8 and float) and the Edge TPU take; ``tf.slice(..., -1)`` sizes
    and tf.split's SPLIT_V fell back to builtin kernels.
    """

    def __init__(self, axis: int, groups: int = 5, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.groups = int(axis), int(groups)

    def call(self, x):
        half = self.groups // 2
        size = x.shape[self.axis]
        out, start = [], 0
        for k, n in enumerate(self._sizes(x.shape[-1])):
            chunk = x[..., start:start + n]
            start += n
            shift = k - half  # out[i] = chunk[i - shift], zero where i - shift is outside
            if shift:
                pad = [[0, 0]] * 4
                pad[self.axis] = [max(shift, 0), max(-shift, 0)]
                index = [slice(None)] * 4
                index[self.axis] = slice(max(-shift, 0), max(-shift, 0) + size)
                chunk = tf.pad(chunk, pad)[tuple(index)]
            out.append(chunk)
        return tf.concat(out, axis=-1)

    def _sizes(self, channels: int) -> list[int]:
        base, extra = divmod(channels, self.groups)
        return [base + (1 if k < extra else 0) for k in range(self.groups)]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "groups": self.groups}


@keras.utils.register_keras_serializable(package="lightseg")
class ChannelAttention1D(layers.Layer):
    """``sigmoid(conv1d_k(alpha * avgpool(x) + beta * maxpool(x)))`` over channels -> ``[B,1,1,C]``."""

    def __init__(self, kernel_size: int = 3, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)

    def build(self, input_shape):
        self.alpha = self.add_weight(name="alpha", shape=(), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(), initializer="ones")
        self.kernel = self.add_weight(name="kernel", shape=(self.kernel_size, 1, 1), initializer="glorot_uniform")

    def call(self, x):
        pooled = self.alpha * tf.reduce_mean(x, axis=[1, 2]) + self.beta * tf.reduce_max(x, axis=[1, 2])
        w = tf.nn.conv1d(pooled[..., None], self.kernel, stride=1, padding="SAME")  # [B, C, 1]
        # A reshape, not [..., 0]: the converter's shrink-axis STRIDED_SLICE is not an XNNPACK op.
        return tf.reshape(tf.sigmoid(w), [-1, 1, 1, x.shape[-1]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1, 1, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


def conv_bn_hswish(x, filters: int, name: str, strides: int = 1, dilation: int = 1, kernel: int = 3):
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return HardSwish(name=f"{name}_hswish")(x)


def tokenized_mlp(x, ratio: float, name: str):
    """Shift along H -> fc -> depthwise 3x3 -> GELU -> shift along W -> fc, residual, BN."""
    c = x.shape[-1]
    h = AxisShift(1, name=f"{name}_shift_h")(x)
    h = layers.Dense(int(c * ratio), name=f"{name}_fc1")(h)
    h = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(h)
    h = layers.Activation("gelu", name=f"{name}_gelu")(h)
    h = AxisShift(2, name=f"{name}_shift_w")(h)
    h = layers.Dense(c, name=f"{name}_fc2")(h)
    x = layers.Add(name=f"{name}_res")([x, h])
    return layers.BatchNormalization(name=f"{name}_bn")(x)


def eef(low, high, name: str):
    """EEF fusion: dilated 3x3 on the decoder path, 1x1 on the skip, channel-attention blend."""
    c = high.shape[-1]
    lo = layers.BatchNormalization(name=f"{name}_low_bn")(
        layers.Conv2D(c, 3, dilation_rate=2, padding="same", use_bias=False, name=f"{name}_low")(low))
    hi = layers.BatchNormalization(name=f"{name}_high_bn")(
        layers.Conv2D(c, 1, use_bias=False, name=f"{name}_high")(high))
    w = ChannelAttention1D(3, name=f"{name}_att")(layers.Add(name=f"{name}_sum")([lo, hi]))
    # low*w + high*(1-w) = high + w*(low - high)
    diff = layers.Subtract(name=f"{name}_diff")([lo, hi])
    return layers.Add(name=f"{name}_out")([hi, layers.Multiply(name=f"{name}_blend")([w, diff])])


@register_model("rtseg", role="student", qat_ready=True, paper="Ou et al., Comput Biol Med 2024 (RTSeg-Net)")
def build_rtseg(input_shape, num_classes: int, *, stem=(16, 32, 128), embed=(160, 256), mlp_ratio: float = 1.0,
                blocks: int = 1, width: float = 1.0, deep_supervision: bool = False) -> keras.Model:
    """Build the RTSeg-Net-style student (about 1.86 M parameters at the defaults).

    Args:
        stem, embed: channel widths of the conv stages and the two patch embeddings.
        mlp_ratio, blocks: tokenized-MLP hidden ratio and blocks per embedding stage.
        width: multiplier on every width (tiny test variants).
        deep_supervision: average auxiliary heads (strides 4 and 8, upsampled) into the output.

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits.
    """
    w = lambda c: max(4, int(round(c * width)))  # noqa: E731
    check_divisible(input_shape, 32, "rtseg")
    inputs = model_input(input_shape)
    x, skips = inputs, []
    for k, c in enumerate(stem):  # strides 2, 4, 8
        x = conv_bn_hswish(x, w(c), name=f"stem{k}")
        x = layers.MaxPooling2D(2, name=f"stem{k}_pool")(x)
        skips.append(x)
    for k, c in enumerate(embed):  # strides 16, 32
        x = layers.BatchNormalization(name=f"embed{k}_bn")(
            layers.Conv2D(w(c), 3, strides=2, padding="same", use_bias=False, name=f"embed{k}_conv")(x))
        for b in range(blocks):
            x = tokenized_mlp(x, mlp_ratio, name=f"tok{k}_{b}")
        skips.append(x)
    aux = []
    for k, skip in enumerate(reversed(skips[:-1])):  # to strides 16, 8, 4, 2
        x = conv_bn_hswish(x, skip.shape[-1], name=f"dec{k}")
        x = upsample(x, name=f"dec{k}_up")
        x = eef(x, skip, name=f"eef{k}")
        if deep_supervision and skip.shape[1] in (input_shape[0] // 4, input_shape[0] // 8):
            aux.append(upsample(logits_head(x, num_classes, name=f"aux{k}"), name=f"aux{k}_up",
                                factor=input_shape[0] // skip.shape[1]))
    x = upsample(x, name="out_up")
    x = conv_bn_hswish(x, skips[0].shape[-1], name="out")
    out = logits_head(x, num_classes, name="main_logits" if aux else "logits")
    if aux:
        out = layers.Average(name="logits", dtype="float32")([out, *aux])
    return keras.Model(inputs, out, name="rtseg")
