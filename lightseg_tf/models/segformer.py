"""SegFormer (Xie et al., "SegFormer: Simple and Efficient Design for Semantic Segmentation
with Transformers", NeurIPS 2021): the MiT hierarchical transformer encoder (overlapping patch
embedding, efficient self-attention with spatial reduction, Mix-FFN) and the all-MLP decoder;
plus the CNN-encoder variant of the LightSeg table.

The MiT encoder is written here with stock Keras layers (Conv2D, LayerNormalization,
MultiHeadAttention over the two spatial axes, DepthwiseConv2D). keras-cv 0.9's MiTBackbone was
tried first (2026-11-22): under tf-keras it builds and nests, but a train step fails inside its
HierarchicalTransformerEncoder (a reshape fixed at build time) and a saved model does not
reload (its layer config does not deserialise), so it cannot serve as a teacher here.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.backbones import build_encoder
from lightseg_tf.models.blocks import check_divisible, conv_bn_act, logits_head, model_input, upsample

MIT_B0 = {"dims": (32, 64, 160, 256), "depths": (2, 2, 2, 2), "heads": (1, 2, 5, 8), "sr": (8, 4, 2, 1)}


def overlap_patch_embed(x, dim: int, kernel: int, stride: int, name: str):
    """Overlapping patch embedding: a strided conv (kernel > stride) and LayerNorm."""
    x = layers.Conv2D(dim, kernel, strides=stride, padding="same", name=f"{name}_proj")(x)
    return layers.LayerNormalization(epsilon=1e-6, name=f"{name}_norm")(x)


def efficient_attention(x, dim: int, heads: int, sr: int, name: str):
    """Self-attention whose keys/values come from a ``sr``-times spatially reduced map."""
    kv = x
    if sr > 1:
        kv = layers.Conv2D(dim, sr, strides=sr, name=f"{name}_sr")(x)
        kv = layers.LayerNormalization(epsilon=1e-6, name=f"{name}_sr_norm")(kv)
    return layers.MultiHeadAttention(heads, dim // heads, attention_axes=(1, 2), name=f"{name}_mha")(x, kv)


def mix_ffn(x, dim: int, ratio: int, name: str):
    """Mix-FFN: dense -> 3x3 depthwise conv (positional information) -> GELU -> dense."""
    h = layers.Dense(dim * ratio, name=f"{name}_fc1")(x)
    h = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_dw")(h)
    h = layers.Activation("gelu", name=f"{name}_gelu")(h)
    return layers.Dense(dim, name=f"{name}_fc2")(h)


def mit_encoder(x, dims=MIT_B0["dims"], depths=MIT_B0["depths"], heads=MIT_B0["heads"], sr=MIT_B0["sr"],
                mlp_ratio: int = 4):
    """MiT encoder; returns the four stage outputs at strides 4, 8, 16, 32."""
    feats = []
    for s, (dim, depth, nh, r) in enumerate(zip(dims, depths, heads, sr)):
        x = overlap_patch_embed(x, dim, 7 if s == 0 else 3, 4 if s == 0 else 2, name=f"mit{s}_embed")
        for b in range(depth):
            n = f"mit{s}_b{b}"
            a = efficient_attention(layers.LayerNormalization(epsilon=1e-6, name=f"{n}_ln1")(x), dim, nh, r, n)
            x = layers.Add(name=f"{n}_res1")([x, a])
            f = mix_ffn(layers.LayerNormalization(epsilon=1e-6, name=f"{n}_ln2")(x), dim, mlp_ratio, n)
            x = layers.Add(name=f"{n}_res2")([x, f])
        x = layers.LayerNormalization(epsilon=1e-6, name=f"mit{s}_norm")(x)
        feats.append(x)
    return feats


def all_mlp_decoder(feats, size: int, num_classes: int, width: int = 256, dropout: float = 0.1):
    """Per-stage linear projection, upsampling to stride 4, concatenation, fusion, head, x4."""
    target = feats[0].shape[1]
    up = []
    for s, f in enumerate(feats):
        p = layers.Dense(width, name=f"dec{s}_linear")(f)
        if p.shape[1] != target:
            p = upsample(p, name=f"dec{s}_up", factor=target // p.shape[1])
        up.append(p)
    x = layers.Concatenate(name="dec_cat")(up[::-1])
    x = conv_bn_act(x, width, 1, name="dec_fuse")
    if dropout:
        x = layers.Dropout(dropout, name="dec_dropout")(x)
    x = upsample(x, name="out_up", factor=size // target)
    return logits_head(x, num_classes)


@register_model("segformer", role="teacher", qat_ready=False, paper="Xie et al., NeurIPS 2021 (MiT-B0)")
def build_segformer(input_shape, num_classes: int, *, dims=MIT_B0["dims"], depths=MIT_B0["depths"],
                    heads=MIT_B0["heads"], sr=MIT_B0["sr"], decoder_width: int = 256) -> keras.Model:
    """Build SegFormer (MiT-B0 by default; shrink ``dims``/``depths`` for tiny variants).

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits.
    """
    check_divisible(input_shape, 32, "segformer")
    inputs = model_input(input_shape)
    feats = mit_encoder(inputs, tuple(dims), tuple(depths), tuple(heads), tuple(sr))
    return keras.Model(inputs, all_mlp_decoder(feats, input_shape[0], num_classes, decoder_width), name="segformer")


@register_model("segformer_cnn", role="teacher", qat_ready=False,
                paper="Xie et al., NeurIPS 2021 decoder on a CNN encoder (LightSeg table)")
def build_segformer_cnn(input_shape, num_classes: int, *, encoder: str = "efficientnetb4", encoder_weights=None,
                        decoder_width: int = 256, encoder_options: dict | None = None) -> keras.Model:
    """The all-MLP SegFormer decoder on a CNN encoder's stride 4..32 features."""
    check_divisible(input_shape, 32, "segformer_cnn")
    inputs = model_input(input_shape)
    feats, _ = build_encoder(encoder, inputs, encoder_weights, **(encoder_options or {}))
    return keras.Model(inputs, all_mlp_decoder(feats[1:], input_shape[0], num_classes, decoder_width),
                       name="segformer_cnn")
