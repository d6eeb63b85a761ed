"""DeepLabV3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic
Image Segmentation", ECCV 2018): ASPP (rates 6/12/18 and image pooling) on the stride-16
encoder features, a 48-channel projection of the stride-4 features, and a light decoder."""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.backbones import build_encoder
from lightseg_tf.models.blocks import check_divisible, conv_bn_act, logits_head, model_input, upsample


def aspp(x, filters: int = 256, rates=(6, 12, 18), name: str = "aspp"):
    """Atrous spatial pyramid pooling: 1x1, three dilated 3x3 and an image-pooling branch."""
    h, w = int(x.shape[1]), int(x.shape[2])
    branches = [conv_bn_act(x, filters, 1, name=f"{name}_1x1")]
    branches += [conv_bn_act(x, filters, 3, dilation=r, name=f"{name}_r{r}") for r in rates]
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_act(pooled, filters, 1, name=f"{name}_pool_proj")
    # The pooled map is 1x1: nearest upsampling by the feature size broadcasts it (static shapes).
    branches.append(layers.UpSampling2D((h, w), interpolation="nearest", name=f"{name}_pool_up")(pooled))
    x = layers.Concatenate(name=f"{name}_cat")(branches)
    return conv_bn_act(x, filters, 1, name=f"{name}_proj")


@register_model("deeplabv3plus", role="teacher", qat_ready=False, paper="Chen et al., ECCV 2018")
def build_deeplabv3plus(input_shape, num_classes: int, *, encoder: str = "resnet50", encoder_weights=None,
                        aspp_filters: int = 256, low_level_filters: int = 48, decoder_filters: int = 256,
                        encoder_options: dict | None = None) -> keras.Model:
    """Build DeepLabV3+ at output stride 16.

    Args:
        encoder: "xception", "resnet50", "mobilenetv3large" or any backbone name.
        aspp_filters, low_level_filters, decoder_filters: widths (paper: 256, 48, 256).
        encoder_options: extra keyword options of the application (e.g. ``{"alpha": 0.75}``).

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits.
    """
    check_divisible(input_shape, 32, "deeplabv3plus")
    inputs = model_input(input_shape)
    feats, _ = build_encoder(encoder, inputs, encoder_weights, **(encoder_options or {}))
    low, high = feats[1], feats[3]  # strides 4 and 16
    x = aspp(high, aspp_filters)
    x = upsample(x, name="aspp_up", factor=4)
    low = conv_bn_act(low, low_level_filters, 1, name="low_proj")
    x = layers.Concatenate(name="dec_cat")([x, low])
    x = conv_bn_act(x, decoder_filters, 3, name="dec_1")
    x = conv_bn_act(x, decoder_filters, 3, name="dec_2")
    x = upsample(x, name="out_up", factor=4)
    return keras.Model(inputs, logits_head(x, num_classes), name="deeplabv3plus")
