"""Contact sheet of the synthetic phantom for the README: images on top, overlays below.

Usage: python experiments/phantom_sheet.py [--out docs/phantom_sheet.png] [--n 8] [--size 192]
"""

from __future__ import annotations

import argparse

import numpy as np

import lightseg_tf  # noqa: F401
from lightseg_tf.data.phantom import make_phantom
from lightseg_tf.core.io import write_png_atomic
from lightseg_tf.core.palette import contact_sheet, overlay


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/phantom_sheet.png")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--size", type=int, default=192)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    images, overlays = [], []
    for i in range(args.n):
        image, mask, _ = make_phantom(args.size, np.random.default_rng([args.seed, i]))
        images.append(np.repeat(np.round(image * 255).astype(np.uint8), 3, axis=2))
        overlays.append(overlay(image, mask, num_classes=4))
    write_png_atomic(args.out, contact_sheet(images + overlays, columns=args.n))
    print(args.out)


if __name__ == "__main__":
    main()
