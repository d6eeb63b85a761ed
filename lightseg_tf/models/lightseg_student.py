"""The LightSeg student (Alzubaidi et al., 2023): a residual UNet++ with L3 nesting.

Filters [24, 48, 96, 192]; every node is a residual block (conv3x3-BN-ReLU-conv3x3-BN +
shortcut, identity or 1x1 conv + BN when channels differ, add, ReLU); 2x2 max-pooling down,
bilinear x2 up; nested nodes X21, X11, X01, X12, X02, X03 concatenate the upsampled lower node
with every earlier node of their row; a 1x1 conv head on X03. Built only from Conv2D,
BatchNormalization, ReLU, Add, Concatenate, MaxPooling2D and bilinear UpSampling2D, all of
which tensorflow-model-optimization quantizes and TFLite runs in int8.
"""

from __future__ import annotations

import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.blocks import check_divisible, logits_head, model_input, residual_block
from lightseg_tf.models.unetpp import nested_decoder

PAPER_FILTERS = (24, 48, 96, 192)


@register_model("lightseg_student", role="student", qat_ready=True, paper="Alzubaidi et al., LightSeg, 2023")
def build_lightseg_student(input_shape, num_classes: int, *, filters=PAPER_FILTERS, width: float = 1.0) -> keras.Model:
    """Build the LightSeg student.

    Args:
        input_shape: ``(H, W, C)``, H and W multiples of 8.
        filters: widths of the four levels (the paper's [24, 48, 96, 192]).
        width: multiplier on ``filters`` (tiny test variants, width search).

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits; 1,339,588 parameters
        for 224x224x3 inputs and 4 classes with the paper's filters.
    """
    filters = [max(1, int(round(f * width))) for f in filters]
    check_divisible(input_shape, 2 ** (len(filters) - 1), "lightseg_student")
    inputs = model_input(input_shape)
    column0, x = [], inputs
    for i, f in enumerate(filters):
        x = residual_block(x if i == 0 else layers.MaxPooling2D(2, name=f"pool{i}")(x), f, name=f"x{i}0")
        column0.append(x)
    grid = nested_decoder(column0, filters, block=residual_block)
    return keras.Model(inputs, logits_head(grid[(0, len(filters) - 1)], num_classes), name="lightseg_student")
