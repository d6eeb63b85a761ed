"""segmentation_models (qubvel, 1.0.1) architectures as registered builders.

``sm_unet``, ``sm_fpn``, ``sm_linknet``, ``sm_pspnet`` with any of that package's backbones
(``backbone="resnet18"``, ...). ImageNet weights are off by default (``encoder_weights=None``);
"imagenet" needs the internet. The 1-channel input is repeated to 3 channels inside the model.
The package is imported lazily: SM_FRAMEWORK=tf.keras is set by ``lightseg_tf``.
"""

from __future__ import annotations

import tf_keras as keras

from lightseg_tf.errors import LightsegError
from lightseg_tf.models import register_model
from lightseg_tf.models.backbones import GrayToBackbone
from lightseg_tf.models.blocks import model_input

PAPER = "Yakubovskiy, segmentation_models (2019)"


def _sm(arch: str, input_shape, num_classes, backbone, encoder_weights, **options):
    try:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):  # it prints its framework on import
            import segmentation_models as sm
    except Exception as exc:  # import problems of the optional package, reported with context
        raise LightsegError(f"segmentation_models cannot be imported ({exc})") from None
    inputs = model_input(input_shape)
    x = GrayToBackbone("tf", name="gray_to_rgb")(inputs)
    try:
        net = getattr(sm, arch)(backbone, input_shape=(*input_shape[:2], 3), classes=num_classes,
                                activation="linear", encoder_weights=encoder_weights, **options)
    except Exception as exc:
        if encoder_weights == "imagenet":
            raise LightsegError(f"cannot get ImageNet weights for {backbone} ({exc}); this needs the internet, "
                                "or use encoder_weights=None") from None
        raise
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(net(x))
    return keras.Model(inputs, logits, name=f"sm_{arch.lower()}")


@register_model("sm_unet", role="teacher", paper=PAPER)
def build_sm_unet(input_shape, num_classes: int, *, backbone: str = "resnet18", encoder_weights=None, **options):
    """segmentation_models Unet (logits out)."""
    return _sm("Unet", input_shape, num_classes, backbone, encoder_weights, **options)


@register_model("sm_fpn", role="teacher", paper=PAPER)
def build_sm_fpn(input_shape, num_classes: int, *, backbone: str = "resnet18", encoder_weights=None, **options):
    """segmentation_models FPN (logits out)."""
    return _sm("FPN", input_shape, num_classes, backbone, encoder_weights, **options)


@register_model("sm_linknet", role="teacher", paper=PAPER)
def build_sm_linknet(input_shape, num_classes: int, *, backbone: str = "resnet18", encoder_weights=None, **options):
    """segmentation_models Linknet (logits out)."""
    return _sm("Linknet", input_shape, num_classes, backbone, encoder_weights, **options)


@register_model("sm_pspnet", role="teacher", paper=PAPER)
def build_sm_pspnet(input_shape, num_classes: int, *, backbone: str = "resnet18", encoder_weights=None, **options):
    """segmentation_models PSPNet (logits out; input sides must be multiples of 48)."""
    return _sm("PSPNet", input_shape, num_classes, backbone, encoder_weights, **options)
