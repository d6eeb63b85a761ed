import numpy as np
import pytest

from lightseg_tf.data.letterbox import (letterbox_image, letterbox_mask, letterbox_params, reletterbox_probs,
                                        unletterbox_mask, unletterbox_probs)


@pytest.mark.parametrize("h,w,size", [(540, 800, 256), (800, 540, 256), (64, 64, 128), (37, 101, 64)])
def test_coordinate_round_trip(h, w, size):
    lb = letterbox_params(h, w, size)
    assert max(lb.new_h, lb.new_w) == size and lb.pad_x >= 0 and lb.pad_y >= 0
    x = np.array([0.0, w / 2, w - 0.5, 13.25])
    y = np.array([0.0, h / 2, h - 0.5, 7.75])
    xl, yl = lb.to_letterbox(x, y)
    assert (0 <= xl).all() and (xl <= size).all() and (0 <= yl).all() and (yl <= size).all()
    xo, yo = lb.to_original(xl, yl)
    np.testing.assert_allclose(xo, x, atol=1e-9)
    np.testing.assert_allclose(yo, y, atol=1e-9)


def test_letterbox_keeps_aspect_and_centres_content():
    image = np.ones((540, 800, 1), np.float32)
    out, lb = letterbox_image(image, 256)
    assert out.shape == (256, 256, 1)
    assert (lb.new_w, lb.new_h) == (256, 173) and lb.pad_y == (256 - 173) // 2
    rows = np.flatnonzero(out[:, 128, 0] > 0.5)
    assert rows[0] == lb.pad_y and rows[-1] == lb.pad_y + lb.new_h - 1
    assert np.isclose(lb.pixel_size_mm(0.1), 0.1 * 800 / 256)


def test_a_point_lands_where_the_mapping_says():
    """A bright pixel's centre maps to where the letterboxed blob's centre of mass is."""
    image = np.zeros((300, 500, 1), np.float32)
    image[120:126, 310:316] = 1.0  # centre (313, 123)
    out, lb = letterbox_image(image, 200)
    yy, xx = np.mgrid[0:200, 0:200] + 0.5
    w = out[..., 0]
    cx, cy = (xx * w).sum() / w.sum(), (yy * w).sum() / w.sum()
    ex, ey = lb.to_letterbox(313.0, 123.0)
    assert abs(cx - ex) < 0.3 and abs(cy - ey) < 0.3


def test_mask_round_trip_is_nearest_and_close():
    mask = np.zeros((270, 400), np.int32)
    yy, xx = np.mgrid[0:270, 0:400]
    mask[((xx - 200) / 150) ** 2 + ((yy - 135) / 100) ** 2 <= 1] = 1
    mask[((xx - 170) / 30) ** 2 + ((yy - 120) / 20) ** 2 <= 1] = 2
    small = letterbox_mask(mask, 128)
    assert set(np.unique(small)) == {0, 1, 2}
    back = unletterbox_mask(small, letterbox_params(270, 400, 128))
    assert back.shape == mask.shape and (back == mask).mean() > 0.98
    probs = np.eye(3, dtype=np.float32)[small]
    back_p = unletterbox_probs(probs, letterbox_params(270, 400, 128))
    assert back_p.shape == (270, 400, 3) and (back_p.argmax(-1) == mask).mean() > 0.98


def test_reletterbox_halves_a_square_canvas_by_area_averaging():
    probs = np.zeros((4, 4, 2), np.float32)
    probs[..., 1] = [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    probs[..., 0] = 1 - probs[..., 1]
    lb4, lb2 = letterbox_params(8, 8, 4), letterbox_params(8, 8, 2)
    out = reletterbox_probs(probs, lb4, lb2)
    np.testing.assert_allclose(out[..., 1], [[0.75, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(out.sum(-1), 1.0)


@pytest.mark.parametrize("h, w, src, dst", [(540, 800, 256, 128), (540, 800, 128, 256), (300, 120, 96, 64)])
def test_reletterbox_keeps_a_non_square_image_content_aligned(h, w, src, dst):
    # A teacher's one-hot answer at its side, moved to the student's, must match the mask
    # letterboxed straight to the student's side (off by at most the edge pixels of each shape).
    mask = np.zeros((h, w), np.int32)
    mask[h // 5:h // 2, w // 3:w - w // 6] = 1
    mask[h // 2 + 10:h - 12, 8:w // 4] = 2
    one_hot = np.eye(3, dtype=np.float32)[letterbox_mask(mask, src)]
    out = reletterbox_probs(one_hot, letterbox_params(h, w, src), letterbox_params(h, w, dst))
    assert out.shape == (dst, dst, 3)
    np.testing.assert_allclose(out.sum(-1), 1.0, atol=1e-5)
    want = letterbox_mask(mask, dst)
    edges = sum(int((want == c).sum() ** 0.5) * 4 for c in (1, 2))
    assert (out.argmax(-1) != want).sum() <= edges
    lb = letterbox_params(h, w, dst)
    assert (out.argmax(-1)[:lb.pad_y] == 0).all() and (out.argmax(-1)[lb.pad_y + lb.new_h:] == 0).all()


def test_reletterbox_refuses_letterboxes_of_different_images():
    with pytest.raises(ValueError, match="different images"):
        reletterbox_probs(np.zeros((8, 8, 2)), letterbox_params(10, 20, 8), letterbox_params(20, 10, 4))
