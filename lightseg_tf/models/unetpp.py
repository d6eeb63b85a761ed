"""UNet++ (Zhou et al., "UNet++: A Nested U-Net Architecture", DLMIA 2018) with real nested
dense skip pathways: node X(i,j) = conv(concat(X(i,0..j-1), up(X(i+1,j-1))))."""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.backbones import build_encoder
from lightseg_tf.models.blocks import check_divisible, double_conv, logits_head, model_input, upsample


def nested_decoder(column0: list, filters: list[int], block=double_conv, name: str = "x"):
    """Fill the UNet++ grid from its first column (encoder nodes X(i,0), fine->coarse).

    Node ``X(i,j)`` (j >= 1) concatenates every earlier node of its row ``X(i,0..j-1)`` with
    the upsampled ``X(i+1,j-1)`` and applies ``block`` with ``filters[i]``.

    Returns:
        The grid as ``{(i, j): tensor}``.
    """
    depth = len(column0) - 1
    grid = {(i, 0): t for i, t in enumerate(column0)}
    for j in range(1, depth + 1):
        for i in range(0, depth - j + 1):
            below = grid[(i + 1, j - 1)]
            up = upsample(below, name=f"{name}{i}{j}_up", factor=grid[(i, 0)].shape[1] // below.shape[1])
            cat = layers.Concatenate(name=f"{name}{i}{j}_cat")([grid[(i, k)] for k in range(j)] + [up])
            grid[(i, j)] = block(cat, filters[i], name=f"{name}{i}{j}")
    return grid


@register_model("unetpp", role="teacher", qat_ready=True, paper="Zhou et al., DLMIA 2018")
def build_unetpp(input_shape, num_classes: int, *, base_filters: int = 32, depth: int = 4,
                 deep_supervision: bool = False, encoder: str | None = None, encoder_weights=None,
                 encoder_options: dict | None = None) -> keras.Model:
    """Build UNet++.

    Args:
        base_filters, depth: plain encoder widths ``base_filters * 2**i`` for levels 0..depth.
        deep_supervision: average the logits of the heads on X(0,1..depth) (Zhou et al.'s
            deep supervision at inference; one output keeps every tool working).
        encoder, encoder_weights: a pretrained-architecture encoder (the LightSeg teacher uses
            "inceptionresnetv2"); its stride-2..32 features form column 0.
        encoder_options: keyword options of the encoder's application.

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits.
    """
    inputs = model_input(input_shape)
    if encoder is None:
        check_divisible(input_shape, 2**depth, "unetpp")
        filters = [base_filters * 2**i for i in range(depth + 1)]
        column0, x = [], inputs
        for i, f in enumerate(filters):
            x = double_conv(x if i == 0 else layers.MaxPooling2D(2, name=f"pool{i}")(x), f, name=f"x{i}0")
            column0.append(x)
    else:
        check_divisible(input_shape, 32, "unetpp")
        column0, _ = build_encoder(encoder, inputs, encoder_weights, **(encoder_options or {}))
        filters = [base_filters * 2**i for i in range(len(column0))]
    grid = nested_decoder(column0, filters)
    top = len(column0) - 1
    finals = [grid[(0, j)] for j in range(1, top + 1)] if deep_supervision else [grid[(0, top)]]
    outs = []
    for k, x in enumerate(finals):
        if x.shape[1] != input_shape[0]:
            x = upsample(x, name=f"full{k}_up", factor=input_shape[0] // x.shape[1])
            x = double_conv(x, base_filters, name=f"full{k}")
        outs.append(logits_head(x, num_classes, name=f"logits{k}" if deep_supervision else "logits"))
    out = layers.Average(name="logits", dtype="float32")(outs) if deep_supervision else outs[0]
    return keras.Model(inputs, out, name="unetpp")

