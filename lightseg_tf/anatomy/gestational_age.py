"""Gestational age (GA) from head biometry, and head size against the INTERGROWTH-21st standard.

Two directions, each with its own published equations:

- dating: GA from a measurement (Hadlock 1984 from HC or BPD; INTERGROWTH-21st from HC);
- size for a known GA: the INTERGROWTH-21st mean and SD of HC and BPD at that GA, hence the
  z-score, the centile, the value at a centile, and a flag outside the 3rd-97th centiles.

Every equation is used only inside the range it was derived on. Outside it a function returns
``Result(None, reason)``; it never extrapolates. Lengths are in mm, GA in (decimal) weeks since
the last menstrual period. Centiles are percentages (0-100). The normal CDF is ``math.erf``; its
inverse is the standard library's ``statistics.NormalDist``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist
from typing import Callable, NamedTuple

from lightseg_tf.anatomy.precision import round_half_up
from lightseg_tf.errors import LightsegError

GA_DECIMALS = 1  # weeks, as reported
CENTILE_DECIMALS = 1
Z_DECIMALS = 2
FLAG_CENTILES = (3.0, 97.0)  # a reported centile below the first or above the second is flagged


class Result(NamedTuple):
    """A value, or ``None`` with the reason there is none."""

    value: float | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.value is not None


def format_ga(weeks: float) -> str:
    """``20.43`` -> ``"20+3"``: completed weeks + days (days to the nearest day)."""
    days = int(round(weeks * 7))
    return f"{days // 7}+{days % 7}"


def parse_ga(text: str | float) -> float:
    """GA in weeks from ``"20.5"``, ``"20"`` or weeks+days ``"20+3"`` (days 0-6)."""
    s = str(text).strip()
    m = re.fullmatch(r"(\d+)\+([0-6])", s)
    if m:
        return int(m.group(1)) + int(m.group(2)) / 7
    try:
        weeks = float(s)
    except ValueError:
        weeks = math.nan
    if not math.isfinite(weeks) or weeks <= 0:
        raise LightsegError(f"GA {text!r}: expected weeks such as 20.5, or weeks+days such as 20+3")
    return weeks


def _checked_length(name: str, value_mm: float) -> str | None:
    """Why ``value_mm`` is no length at all (None, not finite, not positive); None when it is one."""
    if value_mm is None or not math.isfinite(value_mm) or value_mm <= 0:
        return f"{name} {value_mm!r} is not a positive length in mm"
    return None


def _invert(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """The ``x`` in [lo, hi] where the increasing ``f`` reaches ``target`` (bisection to 1e-9 mm)."""
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if f(mid) < target else (lo, mid)
    return (lo + hi) / 2


@dataclass(frozen=True)
class DatingFormula:
    """GA (weeks) from one measurement (mm) by an increasing published formula, within a GA range.

    The range is the one the formula was derived on; ``mm_range`` is the same range in
    measurement units (the formula inverted at its ends).
    """

    name: str
    measure: str
    weeks: Callable[[float], float]
    ga_range: tuple[float, float]

    @property
    def mm_range(self) -> tuple[float, float]:
        return tuple(_invert(self.weeks, ga, 1.0, 1000.0) for ga in self.ga_range)

    def estimate(self, value_mm: float) -> Result:
        """GA in weeks (unrounded), or None with the reason when outside the formula's range."""
        bad = _checked_length(self.measure, value_mm)
        if bad:
            return Result(None, bad)
        lo, hi = self.ga_range
        mm_lo, mm_hi = self.mm_range
        # Compared in mm first: far outside its range a formula overflows (INTERGROWTH's exp at ~4.8 m).
        ga = self.weeks(value_mm) if mm_lo <= value_mm <= mm_hi else math.nan
        if not lo <= ga <= hi:
            return Result(None, f"{self.measure} {value_mm:.1f} mm is outside {mm_lo:.1f}-{mm_hi:.1f} mm, the range of "
                                f"{self.name}: GA {format_ga(lo)} to {format_ga(hi)} weeks")
        return Result(ga)


# Hadlock FP, Deter RL, Harrist RB, Park SK. Estimating fetal age: computer-assisted analysis of multiple
# fetal growth parameters. Radiology 1984;152:497-501. Cross-sectional, 361 fetuses of 14-42 menstrual
# weeks (the abstract); GA (weeks) = 8.96 + 0.540 HC + 0.0003 HC^3 and GA = 9.54 + 1.482 BPD + 0.1676 BPD^2
# (HC, BPD in cm). Coefficient source: the paper's single-parameter equations, quoted identically by
# several public implementations (the paper's full text was not opened); the tests check rows of a vendor
# table of the HC formula (Hologic SuperSonic MACH "Obstetrical References" PM.LAB.175-A, "GA by HC -
# Hadlock1984", as quoted by a public project's tests). Valid range: the study's 14-42 weeks (that vendor
# table goes down to HC 68 mm, 12.7 weeks: extrapolation, refused here).
HADLOCK_GA_WEEKS = (14.0, 42.0)
HADLOCK_HC = DatingFormula("Hadlock 1984", "HC",
                           lambda mm: 8.96 + 0.540 * (mm / 10) + 0.0003 * (mm / 10) ** 3, HADLOCK_GA_WEEKS)
HADLOCK_BPD = DatingFormula("Hadlock 1984", "BPD",
                            lambda mm: 9.54 + 1.482 * (mm / 10) + 0.1676 * (mm / 10) ** 2, HADLOCK_GA_WEEKS)

# Papageorghiou AT, Kemp B, Stones W, Ohuma EO, Kennedy SH, Purwar M, et al. Ultrasound-based gestational-age
# estimation in late pregnancy. Ultrasound Obstet Gynecol 2016;48:719-726 (INTERGROWTH-21st).
# ln GA (days) = 0.05970 (ln HC)^2 + 0.000000006409 HC^3 + 3.3258 (HC in mm). Coefficient source: the
# paper's equation as implemented in the R packages gigs (LSHTM, ig_fet_estimate_ga) and intergrowth
# (nutriverse, calculate_gestage_hcfl). Valid range: HC measured at 98-181 days (14+0 to 25+6 weeks),
# the window gigs documents for this equation (women first seen after the CRL window).
INTERGROWTH_DATING_WEEKS = (98 / 7, 181 / 7)
INTERGROWTH_HC = DatingFormula(
    "INTERGROWTH-21st (Papageorghiou 2016)", "HC",
    lambda mm: math.exp(0.05970 * math.log(mm) ** 2 + 6.409e-9 * mm ** 3 + 3.3258) / 7, INTERGROWTH_DATING_WEEKS)


def ga_from_hc_hadlock(hc_mm: float) -> Result:
    """GA (weeks) from HC by Hadlock et al., Radiology 1984;152:497-501; None outside 14-42 weeks."""
    return HADLOCK_HC.estimate(hc_mm)


def ga_from_bpd_hadlock(bpd_mm: float) -> Result:
    """GA (weeks) from BPD by Hadlock et al., Radiology 1984;152:497-501; None outside 14-42 weeks."""
    return HADLOCK_BPD.estimate(bpd_mm)


def ga_from_hc_intergrowth(hc_mm: float) -> Result:
    """GA (weeks) from HC by INTERGROWTH-21st (Papageorghiou et al., Ultrasound Obstet Gynecol
    2016;48:719-726); None outside 14+0 to 25+6 weeks."""
    return INTERGROWTH_HC.estimate(hc_mm)


# INTERGROWTH-21st fetal growth standards: Papageorghiou AT, Ohuma EO, Altman DG, Todros T, Cheikh Ismail L,
# Lambert A, et al. International standards for fetal growth based on serial ultrasound measurements: the
# Fetal Growth Longitudinal Study of the INTERGROWTH-21st Project. Lancet 2014;384:869-879.
# Mean and SD (mm) as fractional polynomials of GA in exact weeks, valid 14+0 to 40+0 weeks; normal at each
# GA. (Not the UOG 2014 paper of the same group: that one is first-trimester CRL.) Coefficient source: the
# paper's equations as implemented in the R package intergrowth (nutriverse: calculate_hc_gestage,
# calculate_bpd_gestage); the range is the one the R package gigs (LSHTM) documents for "hcfga" and
# "bpdfga" (98-280 days). The tests check them against the INTERGROWTH-21st centile tables.
INTERGROWTH_SIZE_WEEKS = (14.0, 40.0)


def _hc_mean(ga: float) -> float:
    return -28.2849 + 1.69267 * ga ** 2 - 0.397485 * ga ** 2 * math.log(ga)


def _hc_sd(ga: float) -> float:
    ln = math.log(ga)
    return 1.98735 + 0.0136772 * ga ** 3 - 0.00726264 * ga ** 3 * ln + 0.000976253 * ga ** 3 * ln ** 2


def _bpd_mean(ga: float) -> float:
    return 5.60878 + 0.158369 * ga ** 2 - 0.00256379 * ga ** 3


def _bpd_sd(ga: float) -> float:
    ln = math.log(ga)
    return math.exp(0.101242 + 0.00150557 * ga ** 3 - 0.000771535 * ga ** 3 * ln + 0.0000999638 * ga ** 3 * ln ** 2)


SIZE_STANDARDS = {"hc": (_hc_mean, _hc_sd), "bpd": (_bpd_mean, _bpd_sd)}


def _standard(measure: str, ga_weeks: float, fn: Callable[[float, float], float]) -> Result:
    """``fn(mean, SD)`` of ``measure`` (mm) at ``ga_weeks``, or None with the reason there is none."""
    if measure not in SIZE_STANDARDS:
        raise LightsegError(f"measure {measure!r}: INTERGROWTH-21st size standards here are {sorted(SIZE_STANDARDS)}")
    lo, hi = INTERGROWTH_SIZE_WEEKS
    if ga_weeks is None or not math.isfinite(ga_weeks) or not lo <= ga_weeks <= hi:
        return Result(None, f"GA {ga_weeks!r} weeks is outside {format_ga(lo)} to {format_ga(hi)} weeks, the range "
                            "of the INTERGROWTH-21st fetal growth standards")
    mean, sd = SIZE_STANDARDS[measure]
    return Result(fn(mean(ga_weeks), sd(ga_weeks)))


def expected_mean(measure: str, ga_weeks: float) -> Result:
    """Mean ``"hc"`` or ``"bpd"`` (mm) at ``ga_weeks`` (INTERGROWTH-21st, Papageorghiou et al., Lancet 2014)."""
    return _standard(measure, ga_weeks, lambda mean, sd: mean)


def expected_sd(measure: str, ga_weeks: float) -> Result:
    """SD of ``"hc"`` or ``"bpd"`` (mm) at ``ga_weeks`` (INTERGROWTH-21st, Papageorghiou et al., Lancet 2014)."""
    return _standard(measure, ga_weeks, lambda mean, sd: sd)


def z_score(measure: str, value_mm: float, ga_weeks: float) -> Result:
    """(value - mean) / SD at ``ga_weeks`` (INTERGROWTH-21st, Papageorghiou et al., Lancet 2014)."""
    bad = _checked_length(measure.upper(), value_mm)
    return Result(None, bad) if bad else _standard(measure, ga_weeks, lambda mean, sd: (value_mm - mean) / sd)


def normal_cdf(z: float) -> float:
    """Standard normal CDF, via ``math.erf``."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def centile(measure: str, value_mm: float, ga_weeks: float) -> Result:
    """Centile (0-100) of ``value_mm`` at ``ga_weeks`` (INTERGROWTH-21st, Papageorghiou et al., Lancet 2014)."""
    z = z_score(measure, value_mm, ga_weeks)
    return Result(100.0 * normal_cdf(z.value)) if z.ok else z


def value_at_centile(measure: str, centile_pct: float, ga_weeks: float) -> Result:
    """The ``measure`` (mm) at centile ``centile_pct`` (0 < c < 100) at ``ga_weeks`` (INTERGROWTH-21st,
    Papageorghiou et al., Lancet 2014): mean + z SD."""
    if centile_pct is None or not 0.0 < centile_pct < 100.0:
        return Result(None, f"centile {centile_pct!r} is not between 0 and 100")
    z = NormalDist().inv_cdf(centile_pct / 100.0)
    return _standard(measure, ga_weeks, lambda mean, sd: mean + z * sd)


def centile_flag(measure: str, value_mm: float, ga_weeks: float) -> str | None:
    """``"HC below 3rd centile ..."`` / ``"... above 97th centile ..."``, or None inside 3rd-97th.

    Decided on the centile as reported (0.1): 2.96 reads 3.0 and is not flagged. Where no centile
    can be given (GA or value out of range) the reason is returned, so it is never silently missing.
    """
    c = centile(measure, value_mm, ga_weeks)
    name = measure.upper()
    if not c.ok:
        return f"no {name} centile: {c.reason}"
    reported = round_half_up(c.value, CENTILE_DECIMALS)
    low, high = FLAG_CENTILES
    if low <= reported <= high:
        return None
    side = "below 3rd" if reported < low else "above 97th"
    return (f"{name} {value_mm:.1f} mm {side} centile at GA {format_ga(ga_weeks)} weeks "
            f"(centile {reported:.1f}, INTERGROWTH-21st)")


def head_dating(hc_mm: float | None, bpd_mm: float | None, ga_weeks: float | None = None) -> tuple[dict, list, list]:
    """GA estimates from HC, and with a known GA the HC and BPD z-scores, centiles and flags, as reported.

    Args:
        hc_mm, bpd_mm: reported head circumference and BPD in mm (None: not measured).
        ga_weeks: the GA known from dating (e.g. a first-trimester CRL), or None.

    Returns:
        ``(fields, flags, notes)``: ``ga_weeks_hadlock`` and ``ga_weeks_intergrowth`` (0.1 week, None
        outside their ranges), and with ``ga_weeks``: ``ga_weeks``, ``hc_z``, ``hc_centile``, ``bpd_z``,
        ``bpd_centile`` (z to 0.01, centiles to 0.1); flags for centiles outside 3rd-97th; notes saying
        why a value is missing.
    """
    fields: dict = {}
    flags: list[str] = []
    notes: list[str] = []
    for key, formula in (("ga_weeks_hadlock", HADLOCK_HC), ("ga_weeks_intergrowth", INTERGROWTH_HC)):
        est = formula.estimate(hc_mm) if hc_mm is not None else Result(None, "no HC")
        fields[key] = round_half_up(est.value, GA_DECIMALS)
        if not est.ok and hc_mm is not None:
            notes.append(f"no GA: {est.reason}")
    if ga_weeks is None:
        return fields, flags, notes
    ga_weeks = fields["ga_weeks"] = round_half_up(ga_weeks, 2)  # as reported; the centiles use this value
    for measure, value in (("hc", hc_mm), ("bpd", bpd_mm)):
        z, c = z_score(measure, value, ga_weeks), centile(measure, value, ga_weeks)
        fields[f"{measure}_z"] = round_half_up(z.value, Z_DECIMALS)
        fields[f"{measure}_centile"] = round_half_up(c.value, CENTILE_DECIMALS)
        flag = centile_flag(measure, value, ga_weeks) if value is not None else None
        if flag and c.ok:
            flags.append(flag)
        elif flag:
            notes.append(flag)
    return fields, flags, notes

