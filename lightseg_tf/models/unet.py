"""U-Net (Ronneberger, Fischer, Brox, MICCAI 2015) and Attention U-Net (Oktay et al., MIDL 2018),
plain or on a pretrained-architecture encoder, sharing one encoder and one decoder."""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.backbones import build_encoder
from lightseg_tf.models.blocks import (attention_gate, check_divisible, double_conv, logits_head, model_input,
                                       upsample)


def plain_encoder(x, filters: list[int], name: str = "enc"):
    """Double-conv stages with 2x2 max-pooling; returns (skips fine->coarse, bottleneck input)."""
    skips = []
    for level, f in enumerate(filters):
        x = double_conv(x, f, name=f"{name}{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    return skips, x


def unet_decoder(x, skips, filters: list[int], *, attention: bool, name: str = "dec"):
    """Upsample, (gate and) concatenate the skip, double conv; from coarse to fine."""
    for level in reversed(range(len(skips))):
        skip = skips[level]
        if attention:
            skip = attention_gate(skip, x, max(filters[level] // 2, 1), name=f"att{level}")
        x = upsample(x, name=f"up{level}", factor=skip.shape[1] // x.shape[1])
        x = layers.Concatenate(name=f"cat{level}")([x, skip])
        x = double_conv(x, filters[level], name=f"{name}{level}")
    return x


def _build(input_shape, num_classes, *, base_filters, depth, dropout, attention, encoder, encoder_weights,
           encoder_options, name):
    inputs = model_input(input_shape)
    if encoder is None:
        check_divisible(input_shape, 2**depth, name)
        filters = [base_filters * 2**k for k in range(depth)]
        skips, x = plain_encoder(inputs, filters)
        x = double_conv(x, base_filters * 2**depth, name="bottleneck")
    else:
        check_divisible(input_shape, 32, name)
        feats, _ = build_encoder(encoder, inputs, encoder_weights, **(encoder_options or {}))
        skips, x = feats[:4], feats[4]
        filters = [base_filters * 2**k for k in range(4)]
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    x = unet_decoder(x, skips, filters, attention=attention)
    if x.shape[1] != input_shape[0]:  # backbone features start at stride 2
        x = upsample(x, name="up_full", factor=input_shape[0] // x.shape[1])
        x = double_conv(x, base_filters, name="full")
    return keras.Model(inputs, logits_head(x, num_classes), name=name)


@register_model("unet", role="teacher", qat_ready=True, paper="Ronneberger et al., MICCAI 2015")
def build_unet(input_shape, num_classes: int, *, base_filters: int = 32, depth: int = 4, dropout: float = 0.0,
               encoder: str | None = None, encoder_weights=None,
                encoder_options: dict | None = None) -> keras.Model:
    """Build a U-Net.

    Args:
        input_shape: ``(H, W, C)``; H, W multiples of ``2**depth`` (of 32 with an encoder).
        num_classes: output classes (background included).
        base_filters: filters of the finest stage; doubled at every level.
        depth: down-sampling steps of the plain encoder.
        dropout: dropout at the bottleneck (0 disables it).
        encoder: a :data:`lightseg_tf.models.backbones.BACKBONES` name instead of the plain encoder.
        encoder_weights: None, "imagenet" or a weights file for ``encoder``.
        encoder_options: keyword options of the encoder's application (e.g. ``{"alpha": 0.75}``).

    Returns:
        Functional model ``[B, H, W, C] -> [B, H, W, num_classes]`` logits.
    """
    return _build(input_shape, num_classes, base_filters=base_filters, depth=depth, dropout=dropout,
                  attention=False, encoder=encoder, encoder_weights=encoder_weights,
                  encoder_options=encoder_options, name="unet")


@register_model("attention_unet", role="teacher", qat_ready=False, paper="Oktay et al., MIDL 2018")
def build_attention_unet(input_shape, num_classes: int, *, base_filters: int = 32, depth: int = 4,
                         dropout: float = 0.0, encoder: str | None = None, encoder_weights=None,
                         encoder_options: dict | None = None) -> keras.Model:
    """U-Net whose skips pass through additive attention gates (the LightSeg teacher uses
    ``encoder="efficientnetb4"``). Arguments as :func:`build_unet`."""
    return _build(input_shape, num_classes, base_filters=base_filters, depth=depth, dropout=dropout,
                  attention=True, encoder=encoder, encoder_weights=encoder_weights,
                  encoder_options=encoder_options, name="attention_unet")
