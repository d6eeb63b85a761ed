import numpy as np

from lightseg_tf.core.palette import PALETTE, class_colors, colorize, contact_sheet, overlay


def test_colours_distinct_and_background_black():
    assert len({tuple(c) for c in PALETTE}) == len(PALETTE)
    assert class_colors(4)[0].tolist() == [0, 0, 0]
    assert class_colors(12).shape == (12, 3) and (class_colors(12)[1:] != 0).any(axis=1).all()


def test_overlay_paints_foreground_only():
    image = np.full((4, 4, 1), 0.5, np.float32)
    mask = np.zeros((4, 4), np.int32)
    mask[1, 2] = 3
    out = overlay(image, mask, alpha=1.0)
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == [128, 128, 128]  # round(0.5 * 255)
    assert out[1, 2].tolist() == PALETTE[3].tolist()
    assert colorize(mask)[1, 2].tolist() == PALETTE[3].tolist()


def test_contact_sheet_layout():
    tiles = [np.full((3, 5, 3), k, np.uint8) for k in range(5)]
    sheet = contact_sheet(tiles, columns=3, gap=1)
    assert sheet.shape == (2 * 3 + 1, 3 * 5 + 2, 3)
    assert sheet[4, 6].tolist() == [4, 4, 4] and sheet[3, 0].tolist() == [255, 255, 255]
