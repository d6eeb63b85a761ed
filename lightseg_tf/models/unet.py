"""U-Net (Ronneberger, Fischer, Brox: "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015) with configurable depth and width."""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.blocks import check_divisible, double_conv, logits_head, model_input, upsample


@register_model("unet", role="teacher", qat_ready=True, paper="Ronneberger et al., MICCAI 2015")
def build_unet(input_shape, num_classes: int, *, base_filters: int = 32, depth: int = 4,
               dropout: float = 0.0) -> keras.Model:
    """Build a U-Net.

    Args:
        input_shape: ``(H, W, C)``; H and W multiples of ``2**depth``.
        num_classes: number of output classes (background included).
        base_filters: filters of the first stage; doubled at every level.
        depth: number of down-sampling steps.
        dropout: dropout rate at the bottleneck (0 disables it).

    Returns:
        Functional model ``[B, H, W, C] -> [B, H, W, num_classes]`` logits.
    """
    check_divisible(input_shape, 2**depth, "unet")
    inputs = model_input(input_shape)
    x, skips = inputs, []
    for level in range(depth):
        x = double_conv(x, base_filters * 2**level, name=f"enc{level}")
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"pool{level}")(x)
    x = double_conv(x, base_filters * 2**depth, name="bottleneck")
    if dropout:
        x = layers.Dropout(dropout, name="bottleneck_dropout")(x)
    for level in reversed(range(depth)):
        x = upsample(x, name=f"up{level}")
        x = layers.Concatenate(name=f"cat{level}")([x, skips[level]])
        x = double_conv(x, base_filters * 2**level, name=f"dec{level}")
    return keras.Model(inputs, logits_head(x, num_classes), name="unet")
