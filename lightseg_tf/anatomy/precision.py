"""Clinical reporting precision: a value is reported rounded, and every flag decides on it as printed.

Lengths are reported to 0.1 mm (0.1 px where the pixel size is unknown), as calipers are read.
A flag compares the reported value with its limit, so a CSP of 1.971 mm is reported as 2.0 mm and
is not "outside 2.0-9.0 mm": the report never contradicts its own numbers.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

LENGTH_DECIMALS = 1  # mm (or px)


def round_half_up(x: float | None, decimals: int) -> float | None:
    """``x`` to ``decimals`` places, halves away from zero, on its shortest decimal form.

    1.95 -> 2.0 and 2.25 -> 2.3 (Python's ``round`` gives 1.9 / 2.2: it rounds the binary value,
    half to even). None, inf and NaN pass through unchanged.
    """
    if x is None or not math.isfinite(x):
        return x
    step = Decimal(1).scaleb(-decimals)
    return float(Decimal(repr(float(x))).quantize(step, rounding=ROUND_HALF_UP))


def round_mm(x: float | None) -> float | None:
    """A length as reported: to 0.1 mm (or 0.1 px on the pixel-unit path)."""
    return round_half_up(x, LENGTH_DECIMALS)
