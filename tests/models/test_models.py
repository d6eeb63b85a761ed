"""Every registered architecture: logits shape, a train step, save/load, no Lambda layers."""

import numpy as np
import pytest
import tf_keras as keras

from lightseg_tf.errors import LightsegError
from lightseg_tf.models import build_model, list_models
from lightseg_tf.models.saving import load_model_file

# Tiny options per registered name; backbone models use the cheapest encoder.
TINY = {
    "unet": dict(base_filters=4, depth=3),
    "attention_unet": dict(base_filters=4, depth=3),
    "unetpp": dict(base_filters=4, depth=3, deep_supervision=True),
    "segnet": dict(base_filters=4, depth=3),
    "segformer": dict(dims=(8, 16, 24, 32), depths=(1, 1, 1, 1), heads=(1, 1, 2, 2), decoder_width=16),
    "lightseg_student": dict(width=0.25),
    "rtseg": dict(width=0.125, deep_supervision=True),
    "deeplabv3plus": dict(encoder="mobilenetv3small", aspp_filters=16, low_level_filters=8, decoder_filters=16,
                          encoder_options={"minimalistic": True, "alpha": 0.75}),
    "segformer_cnn": dict(encoder="mobilenetv3small", decoder_width=16,
                          encoder_options={"minimalistic": True, "alpha": 0.75}),
    "sm_unet": dict(backbone="resnet18", decoder_filters=(8, 8, 8, 8, 8)),
    "sm_fpn": dict(backbone="mobilenetv2", pyramid_block_filters=16),
    "sm_linknet": dict(backbone="mobilenetv2", decoder_filters=(8, 8, 8, 8, 4)),
    "sm_pspnet": dict(backbone="mobilenetv2", psp_conv_filters=16, downsample_factor=8),
}
SLOW = {"deeplabv3plus", "segformer_cnn", "sm_unet", "sm_fpn", "sm_linknet", "sm_pspnet"}
SIZE = {"sm_pspnet": 96}  # PSPNet needs multiples of 48


def _walk(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _walk(layer)


def test_every_registered_model_has_a_tiny_case():
    assert {s.name for s in list_models()} == set(TINY)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in sorted(TINY)])
def test_build_train_step_save_load(name, tmp_path):
    size = SIZE.get(name, 64)
    keras.utils.set_random_seed(0)
    model = build_model(name, (size, size, 1), 3, **TINY[name])
    x = np.random.default_rng(0).random((2, size, size, 1), dtype=np.float32)
    y = np.random.default_rng(1).integers(0, 3, (2, size, size))
    out = model(x)
    assert out.shape == (2, size, size, 3) and out.dtype == "float32"
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in _walk(model))
    # logits, not probabilities: a softmax'd output would sum to 1 on every pixel
    assert not np.allclose(out.numpy().sum(-1), 1.0, atol=1e-3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "m.keras")
    again = load_model_file(tmp_path / "m.keras")  # the project's loader: every layer on its allowlist
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), atol=1e-6)


def test_a_keras_file_with_broken_or_foreign_weights_is_a_clear_error(tmp_path):
    import zipfile

    keras.utils.set_random_seed(0)
    build_model("unet", (32, 32, 1), 3, base_filters=4, depth=2).save(tmp_path / "m.keras")
    build_model("unet", (32, 32, 1), 3, base_filters=8, depth=2).save(tmp_path / "wide.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(tmp_path / "wide.keras") as z:
        wide = z.read("model.weights.h5")
    for case, weights in (("truncated", members["model.weights.h5"][:2000]), ("foreign", wide)):
        path = tmp_path / f"{case}.keras"
        with zipfile.ZipFile(path, "w") as z:
            for name, data in {**members, "model.weights.h5": weights}.items():
                z.writestr(name, data)
        with pytest.raises(LightsegError, match=f"{case}.keras: cannot load as a Keras model"):
            load_model_file(path)


def test_lightseg_student_has_the_papers_parameter_count_and_flops():
    from lightseg_tf.deploy.model_stats import count_flops

    model = build_model("lightseg_student", (224, 224, 3), 4)
    assert model.count_params() == 1_339_588
    assert abs(count_flops(model) / 1e9 - 18.9) < 0.05


def test_rtseg_is_about_1_86_m_parameters():
    n = build_model("rtseg", (256, 256, 1), 4).count_params()
    assert abs(n - 1.86e6) / 1.86e6 < 0.05, n


def test_rtseg_hard_swish_is_the_mobilenetv3_function():
    from lightseg_tf.models.rtseg import HardSwish

    x = np.linspace(-5, 5, 101, dtype=np.float32)
    np.testing.assert_allclose(HardSwish()(x).numpy(), x * np.clip(x + 3, 0, 6) / 6, atol=1e-6)


def test_rtseg_axis_shift_moves_each_channel_group_with_zero_fill():
    from lightseg_tf.models.rtseg import AxisShift

    x = np.random.default_rng(0).random((2, 6, 7, 11)).astype(np.float32)
    bounds = [0, 3, 5, 7, 9, 11]  # 11 channels in 5 groups: 3, 2, 2, 2, 2
    for axis in (1, 2):
        got = AxisShift(axis, groups=5)(x).numpy()
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            want = np.zeros_like(x[..., a:b])
            shift, n = k - 2, x.shape[axis]
            src = [slice(None)] * 4
            dst = [slice(None)] * 4
            src[axis] = slice(max(-shift, 0), n - max(shift, 0))
            dst[axis] = slice(max(shift, 0), n - max(-shift, 0))
            want[tuple(dst)] = x[..., a:b][tuple(src)]
            np.testing.assert_array_equal(got[..., a:b], want, err_msg=f"axis {axis}, group {k}")


def test_unetpp_has_real_nested_dense_skips():
    model = build_model("unetpp", (64, 64, 1), 3, base_filters=4, depth=3)
    cat = model.get_layer("x02_cat")
    sources = {layer.name for node in cat._inbound_nodes for layer in node.inbound_layers}
    # X(0,2) concatenates X(0,0), X(0,1) and the upsampled X(1,1)
    assert sources == {"x00_2_relu", "x01_2_relu", "x02_up"}
    assert model.get_layer("x02_up")._inbound_nodes[0].inbound_layers.name == "x11_2_relu"
    assert len(model.get_layer("x03_cat")._inbound_nodes[0].inbound_layers) == 4


def test_unknown_model_and_bad_options_are_clear():
    with pytest.raises(LightsegError, match="unknown model 'unet3'"):
        build_model("unet3", (64, 64, 1), 2)
    with pytest.raises(LightsegError, match="bad options"):
        build_model("unet", (64, 64, 1), 2, filterz=3)


@pytest.mark.slow
def test_backbone_encoders_give_five_exact_strides():
    from lightseg_tf.models.backbones import BACKBONES, build_encoder

    for name in BACKBONES:
        keras.backend.clear_session()
        feats, layer_names = build_encoder(name, keras.Input((128, 128, 1)))
        assert [f.shape[1] for f in feats] == [64, 32, 16, 8, 4], name
        assert len(set(layer_names)) == 5


def test_imagenet_weights_offline_give_instructions(monkeypatch):
    from tf_keras.src.utils import data_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                        "Temporary failure in name resolution")

    monkeypatch.setattr(data_utils, "get_file", no_network)
    with pytest.raises(LightsegError, match=r"needs the internet.*~/.keras/models"):
        build_model("unet", (64, 64, 1), 2, encoder="mobilenetv3small", encoder_weights="imagenet")
    with pytest.raises(LightsegError, match="no such file"):
        build_model("unet", (64, 64, 1), 2, encoder="mobilenetv3small", encoder_weights="/nope.h5")


def test_encoder_weights_from_a_local_file(tmp_path):
    from lightseg_tf.models.backbones import BACKBONES

    app = BACKBONES["mobilenetv3small"].build(input_shape=(64, 64, 3), include_top=False, weights=None,
                                              minimalistic=True)
    app.set_weights([np.full_like(w, 0.01) for w in app.get_weights()])
    app.save_weights(tmp_path / "enc.h5")
    model = build_model("unet", (64, 64, 1), 2, base_filters=4, encoder="mobilenetv3small",
                        encoder_weights=str(tmp_path / "enc.h5"), encoder_options={"minimalistic": True})
    enc = model.get_layer("mobilenetv3small_encoder")
    assert all(np.allclose(w, 0.01) for w in enc.get_weights())
