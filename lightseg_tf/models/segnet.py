"""SegNet (Badrinarayanan, Kendall, Cipolla, TPAMI 2017): the decoder upsamples with the
encoder's max-pooling indices (serializable custom layers)."""

from __future__ import annotations

import tensorflow as tf
import tf_keras as keras
from tf_keras import layers

from lightseg_tf.models import register_model
from lightseg_tf.models.blocks import check_divisible, conv_bn_act, logits_head, model_input


@keras.utils.register_keras_serializable(package="lightseg")
class MaxPoolWithIndices(layers.Layer):
    """2x2 max-pooling that also returns the flat argmax index of every pooled value."""

    def call(self, x):
        pooled, argmax = tf.nn.max_pool_with_argmax(x, ksize=2, strides=2, padding="SAME",
                                                    include_batch_in_index=True)
        return pooled, argmax

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        shape = (b, h // 2 if h else None, w // 2 if w else None, c)
        return shape, shape


@keras.utils.register_keras_serializable(package="lightseg")
class MaxUnpool(layers.Layer):
    """Place each value at its recorded argmax in a map twice as large; zeros elsewhere."""

    def call(self, inputs):
        x, argmax = inputs
        b = tf.shape(x, out_type=tf.int64)[0]
        h, w, c = x.shape[1], x.shape[2], x.shape[3]
        flat_size = b * (2 * h) * (2 * w) * c
        out = tf.scatter_nd(tf.reshape(argmax, [-1, 1]), tf.reshape(x, [-1]), tf.reshape(flat_size, [1]))
        return tf.reshape(out, [-1, 2 * h, 2 * w, c])

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape[0]
        return (b, 2 * h, 2 * w, c)


@register_model("segnet", role="teacher", qat_ready=False, paper="Badrinarayanan et al., TPAMI 2017")
def build_segnet(input_shape, num_classes: int, *, base_filters: int = 32, depth: int = 4,
                 convs_per_stage: int = 2) -> keras.Model:
    """Build SegNet (VGG-style stages of conv-BN-ReLU; index unpooling in the decoder).

    Returns:
        Functional model ``[B,H,W,C] -> [B,H,W,num_classes]`` logits.
    """
    check_divisible(input_shape, 2**depth, "segnet")
    inputs = model_input(input_shape)
    x, indices, filters = inputs, [], [base_filters * 2**min(i, 3) for i in range(depth)]
    for i, f in enumerate(filters):
        for k in range(convs_per_stage):
            x = conv_bn_act(x, f, name=f"enc{i}_{k}")
        x, idx = MaxPoolWithIndices(name=f"pool{i}")(x)
        indices.append(idx)
    for i in reversed(range(depth)):
        x = MaxUnpool(name=f"unpool{i}")([x, indices[i]])
        for k in range(convs_per_stage):
            last = k == convs_per_stage - 1
            x = conv_bn_act(x, filters[i - 1] if last and i > 0 else filters[i], name=f"dec{i}_{k}")
    return keras.Model(inputs, logits_head(x, num_classes), name="segnet")
