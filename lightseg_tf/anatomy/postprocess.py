"""Anatomy-aware clean-up of predicted class maps, configurable per class.

Head / brain: keep the largest connected component of the head (the brain together with the
structures that live inside it) and fill its holes; where the annotation IS an ellipse (HC18's
"head": the sonographer's ellipse, filled), replace that region by the ellipse fitted to it, the
same fit the head circumference comes from, so a ragged outline does not cost Dice. Small structures (CSP, LV, pubic symphysis):
drop components below a minimum area, keep at most K of them, and, where a containing class
exists, only those inside it. Optionally, pixels whose top-2 probability margin is below a
threshold fall back to their second-best class. Rules are picked by class NAME, so they work
for any dataset's class list. The effect is measured by ``lightseg evaluate --postprocess``,
which scores the same predictions with and without it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lightseg_tf.anatomy.biometry import ellipse_region, fit_head_ellipse

EIGHT = np.ones((3, 3), bool)


@dataclass(frozen=True)
class ClassRule:
    """What to do with one class.

    Attributes:
        region: "head" (largest component + hole filling of the head it forms) or "small".
        min_area_frac: drop components smaller than this share of the image's pixels.
        max_components: keep at most this many components (largest first); None = all.
        inside: name of the class whose (filled) region must contain the component.
        ellipse: ("head" only) the region becomes the ellipse fitted to it.
    """

    region: str = "small"
    min_area_frac: float = 0.0
    max_components: int | None = None
    inside: str | None = None
    ellipse: bool = False


HEAD_NAMES = {"brain", "head", "fetal head", "fh", "skull"}
# Classes annotated as ellipses: HC18's "head" (van den Heuvel et al., PLoS ONE 2018). The brain of
# the LightSeg data and PSFHS's fetal head (cut by the image edge) are not.
ELLIPSE_NAMES = {"head"}
SMALL_DEFAULTS = {
    "csp": ClassRule("small", 1e-4, 1, "brain"),
    "lv": ClassRule("small", 1e-4, 2, "brain"),
    "pubic symphysis": ClassRule("small", 1e-4, 1, None),
    "ps": ClassRule("small", 1e-4, 1, None),
}


def default_rules(classes: tuple[str, ...] | list[str]) -> dict[int, ClassRule]:
    """Rules by class name: head-like classes get "head", known small structures their limits."""
    names = [c.lower() for c in classes]
    rules = {}
    for k, name in enumerate(names[1:], start=1):
        if name in HEAD_NAMES:
            rules[k] = ClassRule("head", ellipse=name in ELLIPSE_NAMES)
        elif name in SMALL_DEFAULTS:
            rule = SMALL_DEFAULTS[name]
            rules[k] = rule if rule.inside is None or rule.inside in names else ClassRule(
                rule.region, rule.min_area_frac, rule.max_components, None)
    return rules


def _components(mask: np.ndarray):
    labels, n = ndimage.label(mask, structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels, sizes


def postprocess(class_map: np.ndarray, classes, rules: dict[int, ClassRule] | None = None,
                probs: np.ndarray | None = None, margin: float = 0.0) -> np.ndarray:
    """Clean a class map ``[H, W]`` (int) following ``rules`` (default: :func:`default_rules`).

    Args:
        probs: ``[H, W, C]`` probabilities, needed only for ``margin``.
        margin: pixels of "small" classes with top1 - top2 < margin take their second-best class.

    Returns:
        A new int32 class map.
    """
    out = np.asarray(class_map, np.int32).copy()
    rules = default_rules(classes) if rules is None else rules
    names = [c.lower() for c in classes]
    if margin > 0 and probs is not None:
        top2 = np.sort(probs, axis=-1)[..., -2:]
        second = np.argsort(probs, axis=-1)[..., -2]
        small = np.isin(out, [k for k, r in rules.items() if r.region == "small"])
        unsure = small & (top2[..., 1] - top2[..., 0] < margin)
        out[unsure] = second[unsure]
    head_ids = [k for k, r in rules.items() if r.region == "head"]
    head_region = None
    for k in head_ids:
        inner = [j for j, r in rules.items() if r.inside == names[k]]
        union = np.isin(out, [k, *inner])
        labels, sizes = _components(union)
        if sizes.max(initial=0) == 0:
            continue
        keep = ndimage.binary_fill_holes(labels == int(np.argmax(sizes)))
        if rules[k].ellipse and (ell := fit_head_ellipse(keep)) is not None:
            keep = ellipse_region(ell, keep.shape)
        out[union & ~keep] = 0  # fragments outside the head (outside its ellipse)
        out[keep & (out == 0)] = k  # holes inside it
        head_region = keep if head_region is None else head_region | keep
    h, w = out.shape
    for k, rule in rules.items():
        if rule.region != "small":
            continue
        labels, sizes = _components(out == k)
        container = rule.inside and rule.inside in names and head_region is not None
        fallback = names.index(rule.inside) if container else 0
        order = np.argsort(sizes)[::-1]
        kept = 0
        for comp in order:
            if sizes[comp] == 0:
                break
            region = labels == comp
            ok = sizes[comp] >= rule.min_area_frac * h * w
            if ok and container:
                ok = head_region[region].mean() > 0.5
            if ok and rule.max_components is not None and kept >= rule.max_components:
                ok = False
            if ok:
                kept += 1
            else:
                out[region] = fallback if container and head_region[region].mean() > 0.5 else 0
    return out


def make_postprocess(classes, rules: dict[int, ClassRule] | None = None, margin: float = 0.0):
    """``fn(class_map, probs) -> class_map`` for :func:`lightseg_tf.evaluation.evaluate.evaluate`."""
    return lambda class_map, probs=None: postprocess(class_map, classes, rules, probs, margin)
