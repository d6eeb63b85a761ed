"""Run MediaPipe Tasks' ImageSegmenter on RGB images; run by tests/deploy/test_mediapipe.py in
MediaPipe's own virtual environment (mediapipe's pins conflict with the project's).

    python mediapipe_segment.py MODEL.tflite IMAGES.npz OUT.npz

IMAGES.npz holds ``images`` uint8 ``[N, H, W, 3]``; OUT.npz gets ``category_masks`` uint8
``[N, H, W]`` and ``labels`` (the names MediaPipe read from the model's metadata).
"""

import sys

import numpy as np
import mediapipe as mp
from mediapipe.tasks.python import BaseOptions
from mediapipe.tasks.python.vision import ImageSegmenter, ImageSegmenterOptions


def main(model: str, images: str, out: str) -> int:
    rgb = np.load(images)["images"]
    options = ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model),
                                    output_category_mask=True, output_confidence_masks=False)
    with ImageSegmenter.create_from_options(options) as segmenter:
        masks = []
        for image in rgb:
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                data=np.ascontiguousarray(image)))
            # copy: the view points into the result, which the next call may reuse
            masks.append(np.array(result.category_mask.numpy_view(), copy=True).reshape(image.shape[:2]))
        labels = list(segmenter.labels)
    np.savez(out, category_masks=np.stack(masks).astype(np.uint8), labels=np.array(labels))
    print(f"{len(masks)} images segmented by mediapipe {mp.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
