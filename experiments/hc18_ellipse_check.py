"""How well the project's ellipse fit reproduces HC18's reference HC from the experts' own
annotations (no model): relative error (fit - reference) / reference, overall and by quartile of
the reference HC, with its sign. The floor under any model's HC error.

    .venv/bin/python experiments/hc18_ellipse_check.py [../shared/datasets/hc18]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from lightseg_tf.anatomy.biometry import head_circumference_mm
from lightseg_tf.data.readers import read_dataset


def main(path: str = "../shared/datasets/hc18") -> None:
    t0 = time.perf_counter()
    ds = read_dataset(path, "hc18")
    ref = np.array([r.hc_mm for r in ds.records])
    fit = np.array([head_circumference_mm(ds.load_mask(r), r.pixel_size_mm) for r in ds.records])
    rel = (fit - ref) / ref * 100
    err = fit - ref
    print(f"{len(ref)} images, {len({r.subject for r in ds.records})} subjects, HC {ref.min():.0f}-{ref.max():.0f} mm")
    print(f"{'HC range (mm)':<16}{'n':>5}{'rel signed %':>14}{'|rel| median %':>16}{'|rel| max %':>13}{'signed mm':>11}")
    edges = np.quantile(ref, [0, 0.25, 0.5, 0.75, 1.0])
    groups = [("all", np.ones_like(ref, bool))] + [
        (f"{edges[k]:.0f}-{edges[k + 1]:.0f}", (ref >= edges[k]) & ((ref < edges[k + 1]) | (k == 3))) for k in range(4)]
    for name, sel in groups:
        print(f"{name:<16}{sel.sum():>5}{rel[sel].mean():>+14.3f}{np.median(np.abs(rel[sel])):>16.3f}"
              f"{np.abs(rel[sel]).max():>13.3f}{err[sel].mean():>+11.2f}")
    print(f"wall time {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main(*sys.argv[1:])
