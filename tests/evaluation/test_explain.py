"""GradCAM++ closed form, the layer it reads, and a heatmap that peaks inside the structure on a phantom."""

import numpy as np
import pytest
import tf_keras as keras
from conftest import phantom_arrays

from lightseg_tf.evaluation.explain import default_layer, gradcam, gradcam_plus_plus
from lightseg_tf.models import build_model
from lightseg_tf.training.trainer import set_bn_momentum


def test_closed_form_on_a_linear_toy_model():
    # feats A = conv3x3 of the input (fixed kernel), logits = 1x1 conv with weights v:
    # S = sum_region sum_k v_k A_k  ->  g_k(ij) = v_k inside the region, 0 outside.
    inp = keras.Input((8, 8, 1))
    feats = keras.layers.Conv2D(2, 3, padding="same", use_bias=False, name="feats")(inp)
    logits = keras.layers.Conv2D(2, 1, use_bias=False, name="head")(feats)
    model = keras.Model(inp, logits)
    model.get_layer("feats").set_weights([np.ones((3, 3, 1, 2), np.float32) * [1.0, 0.5]])
    v = np.array([[2.0, -1.0], [-1.0, 1.0]], np.float32)  # [in_channel k, class]
    model.get_layer("head").set_weights([v[None, None]])
    image = np.random.default_rng(0).random((8, 8, 1)).astype(np.float32)
    region = np.zeros((8, 8), bool)
    region[2:5, 3:6] = True
    cam = gradcam_plus_plus(model, image, 0, layer="feats", region=region)
    a = model.get_layer("feats")(image[None]).numpy()[0].astype(np.float64)
    g = np.where(region[..., None], v[:, 0], 0.0)
    alpha = np.divide(g**2, 2 * g**2 + a.sum((0, 1)) * g**3, out=np.zeros_like(g), where=g != 0)
    w = (alpha * np.maximum(g, 0)).sum((0, 1))
    expected = np.maximum((a * w).sum(-1), 0)
    np.testing.assert_allclose(cam, expected / expected.max(), atol=1e-5)
    # logit1 = -0.5 a < logit0 = 1.5 a everywhere: class 1 is never predicted, so it has no region
    # to explain (the whole-image fallback drew class 0's map under its name).
    assert (model.predict(image[None], verbose=0)[0].argmax(-1) == 0).all()
    assert gradcam_plus_plus(model, image, 0, layer="feats").max() == pytest.approx(1.0)
    for method in (gradcam_plus_plus, gradcam):
        assert not method(model, image, 1, layer="feats").any()


@pytest.mark.parametrize("name, options, expected", [
    ("lightseg_student", {"width": 0.25}, "x03_out"),  # not the last block's shortcut projection
    ("unet", {"base_filters": 4, "depth": 2}, "dec0_2_relu"),
    ("deeplabv3plus", {}, "out_up"),
    ("unetpp", {"base_filters": 4, "depth": 2, "deep_supervision": True}, "x01_2_relu"),
])
def test_default_layer_is_what_the_logits_head_reads(name, options, expected):
    model = build_model(name, (32, 32, 1), 4, **options)
    assert default_layer(model) == expected


@pytest.mark.slow
def test_heatmap_is_not_uniform_and_peaks_inside_the_brain():
    x, y = phantom_arrays(40, seed=11)
    keras.utils.set_random_seed(0)
    model = build_model("unet", (64, 64, 1), 4, base_filters=8, depth=3)
    set_bn_momentum(model, 0.9)
    model.compile(keras.optimizers.Adam(5e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=20, verbose=0)
    assert default_layer(model) == "dec0_2_relu"
    pred = model.predict(x[:1], verbose=0)[0].argmax(-1)
    brain = y[0] >= 1
    assert ((pred >= 1) == brain).mean() > 0.9  # the model is right on this image
    for method in (gradcam_plus_plus, gradcam):
        cam = method(model, x[0], 1)
        assert cam.shape == (64, 64) and cam.std() > 0.05
        assert cam[brain].mean() > 2 * cam[~brain].mean()
        peak = np.unravel_index(cam.argmax(), cam.shape)
        assert brain[peak]
