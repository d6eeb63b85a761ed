"""Reported precision: lengths to 0.1 mm (or px), and every flag decided on the value as printed."""

import numpy as np
import pytest

from lightseg_tf.anatomy.biometry import measure_mask
from lightseg_tf.anatomy.precision import round_half_up, round_mm

CLASSES = ("background", "Brain", "CSP", "LV")


def test_round_half_up_on_the_decimal_form():
    assert [round_mm(x) for x in (1.971, 1.95, 2.25, 1.9499999, -2.25, 0.04)] == [2.0, 2.0, 2.3, 1.9, -2.3, 0.0]
    assert round(1.95, 1) == 1.9 and round(2.25, 1) == 2.2  # what Python's round would have printed
    assert round_half_up(49.95, 1) == 50.0 and round_half_up(-0.125, 2) == -0.13
    assert round_mm(None) is None and np.isnan(round_mm(float("nan")))


def _head(csp_rows: int, lv_rows: int) -> np.ndarray:
    """A horizontal head ellipse (semi-axes 60 x 45 px) with a CSP box and an LV box across the midline."""
    yy, xx = np.mgrid[0:128, 0:160]
    mask = np.zeros((128, 160), np.int32)
    mask[((xx - 80) / 60) ** 2 + ((yy - 64) / 45) ** 2 <= 1] = 1
    mask[60:60 + csp_rows, 70:74] = 2
    mask[40:40 + lv_rows, 50:58] = 3
    return mask


@pytest.mark.parametrize("px, csp_mm, csp_flagged", [(0.657, 2.0, False), (0.648, 1.9, True)])
def test_csp_flag_decides_on_the_printed_width(px, csp_mm, csp_flagged):
    m = measure_mask(_head(3, 6), CLASSES, px)  # 3 px of CSP: 1.971 / 1.944 mm
    assert m["csp_width"] == csp_mm
    flags = [f for f in m["flags"] if f.startswith("CSP width")]
    assert flags == ([f"CSP width {csp_mm} mm outside 2.0-9.0 mm"] if csp_flagged else [])
    for key in ("hc", "bpd", "ofd", "lv_width", "centre_x", "centre_y"):
        assert m[key] == round_mm(m[key]) and len(repr(m[key]).split(".")[1]) == 1, key


def test_lv_flag_decides_on_the_printed_width():
    m = measure_mask(_head(3, 6), CLASSES, 1.66)  # 6 px of LV: 9.96 mm, printed 10.0 mm: mild
    assert m["lv_width"] == 10.0 and m["lv_flag"] == "mild"
    assert "mild ventriculomegaly (LV atrium 10.0 mm)" in m["flags"]


def test_pixel_units_are_rounded_to_a_tenth_of_a_pixel_and_get_no_mm_flags():
    m = measure_mask(_head(3, 6), CLASSES, None, ga_weeks=20)
    assert m["units"] == "px" and m["csp_width"] == 3.0 and m["lv_width"] == 6.0 and "lv_flag" not in m
    assert m["hc"] == round_mm(m["hc"]) and not any("CSP width" in f for f in m["flags"])
    assert "ga_weeks_hadlock" not in m and "pixel size is unknown" in m["notes"][0]
    assert m["ellipse_px"]["a"] != round_mm(m["ellipse_px"]["a"])  # the fit itself stays unrounded
