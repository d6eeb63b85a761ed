"""tensorflow-model-optimization QuantizeConfigs for layers its default 8-bit scheme rejects.

tfmot's ``quantize_model`` refuses Multiply, GELU / hard-swish activations, LayerNormalization,
Resizing and custom layers. Such a layer is annotated with :class:`OutputQuantizeConfig`: its
weights stay float during QAT (the int8 converter quantizes them afterwards) and its OUTPUT
gets a moving-average fake-quant, so the next layer sees int8-ranged activations and the
converted model needs no float fallback. :func:`annotate_for_qat` applies it to every layer
that needs it.

:class:`GlobalRangeQuantizer` is tfmot's moving-average activation quantizer with its batch
range taken over the global batch under ``tf.distribute`` (tfmot averages the per-replica
ranges, so a mirrored QAT step would differ from the same batch on one device).
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tf_keras import layers

QuantizeConfig = tfmot.quantization.keras.QuantizeConfig
MovingAverageQuantizer = tfmot.quantization.keras.quantizers.MovingAverageQuantizer

# Activations tfmot's default registry supports; any other Activation layer needs a config.
SUPPORTED_ACTIVATIONS = {"relu", "relu6", "linear", "softmax", "sigmoid", "tanh"}


EMA_DECAY = 0.999  # tfmot's MovingAverageQuantizer's decay


class GlobalRangeQuantizer(MovingAverageQuantizer):
    """tfmot's per-tensor moving-average quantizer, with the batch range of the global batch.

    tfmot's ``MovingAvgQuantize`` updates its range variables with ``assign_moving_average``,
    which under ``tf.distribute`` averages each replica's batch min / max: the mean of the
    per-replica minima, not the minimum of the global batch one device would see. This
    quantizer all-gathers the replicas' minima and maxima first, so every replica moves the
    range towards the same global value (and the MEAN reduction leaves it unchanged). On one
    replica, outside training, and for per-axis or symmetric ranges it is tfmot's quantizer.
    """

    def __call__(self, inputs, training, weights, **kwargs):
        ctx = tf.distribute.get_replica_context()
        if (not training or self.per_axis or self.symmetric or ctx is None
                or ctx.num_replicas_in_sync == 1):
            return super().__call__(inputs, training, weights, **kwargs)
        # int8 ranges hold zero (TFLite's rule, as in tfmot); max(-min) is the min of the minima.
        local = tf.stack([-tf.minimum(tf.reduce_min(inputs), 0.0), tf.maximum(tf.reduce_max(inputs), 0.0)])
        extent = tf.reduce_max(ctx.all_gather(local[tf.newaxis], axis=0), axis=0)
        assign = tf.__internal__.train.assign_moving_average
        lo = assign(weights["min_var"], -extent[0], EMA_DECAY, zero_debias=False, name="AssignMinEma")
        hi = assign(weights["max_var"], extent[1], EMA_DECAY, zero_debias=False, name="AssignMaxEma")
        return tf.quantization.fake_quant_with_min_max_vars(inputs, lo, hi, num_bits=self.num_bits,
                                                            narrow_range=self.narrow_range)


def use_global_ranges(qat: keras.Model) -> int:
    """Swap every per-tensor MovingAverageQuantizer of a QAT model for a :class:`GlobalRangeQuantizer`.

    Call before the model is first traced for training. The range variables are kept (the
    quantizers hold only their settings); saved models are unchanged, as tfmot rebuilds its
    quantizers from the layer configs on load.

    Returns:
        The number of quantizers swapped.
    """
    def swap(q):
        return GlobalRangeQuantizer(**q.get_config()) if type(q) is MovingAverageQuantizer else q

    swapped = 0
    for layer in qat.submodules:
        outputs = getattr(layer, "_output_quantizers", None) or []  # QuantizeWrapperV2
        for i, q in enumerate(outputs):
            outputs[i] = swap(q)
            swapped += outputs[i] is not q
        for act in getattr(layer, "_quantize_activations", None) or []:  # its QuantizeAwareActivations
            q, act.quantizer = act.quantizer, swap(act.quantizer)
            swapped += act.quantizer is not q
    return swapped


@keras.utils.register_keras_serializable(package="lightseg")
class OutputQuantizeConfig(QuantizeConfig):
    """Fake-quantize only the layer's output (8-bit, asymmetric, moving average)."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


def _bn_after_conv(layer) -> bool:
    """Whether a BatchNormalization's input comes from a convolution (which tfmot folds)."""
    inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
    inbound = inbound if isinstance(inbound, list) else [inbound]
    return bool(inbound) and all(isinstance(p, (layers.Conv2D, layers.DepthwiseConv2D)) for p in inbound)


def needs_output_config(layer) -> bool:
    """True for layers tfmot's default scheme cannot quantize on its own."""
    if isinstance(layer, layers.BatchNormalization):
        return not _bn_after_conv(layer)
    if isinstance(layer, layers.Activation):
        act = layer.get_config()["activation"]
        return (act if isinstance(act, str) else str(act)) not in SUPPORTED_ACTIVATIONS
    if isinstance(layer, (layers.Multiply, layers.Subtract, layers.LayerNormalization, layers.Resizing,
                          layers.GlobalMaxPooling2D)):
        return True
    return type(layer).__module__.startswith("lightseg_tf.")


def annotate_for_qat(model: keras.Model) -> keras.Model:
    """Clone ``model`` with every layer annotated: output-only configs where needed, default elsewhere."""
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    special = {layer.name for layer in model.layers if needs_output_config(layer)}

    def clone(layer):
        if layer.name in special:
            return annotate(layer.__class__.from_config(layer.get_config()), OutputQuantizeConfig())
        return annotate(layer.__class__.from_config(layer.get_config()))

    annotated = keras.models.clone_model(model, clone_function=clone)
    annotated.set_weights(model.get_weights())
    return annotated


def custom_objects() -> dict:
    """Objects needed inside ``quantize_scope`` to load a QAT model of this project.

    The .h5 format stores wrapped layers by bare class name ("HardSwish"), not by the
    registered "lightseg>HardSwish", so every project class is offered under both.
    """
    registered = keras.utils.get_custom_objects()
    short = {k.split(">", 1)[1]: v for k, v in registered.items() if k.startswith("lightseg>")}
    return {**short, "OutputQuantizeConfig": OutputQuantizeConfig}
