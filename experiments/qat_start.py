"""Where quantization-aware training starts: test Dice of a run's float model and of its QAT
copy before any fine-tuning, with tfmot's initial [-6, 6] activation ranges and with ranges
calibrated on 64 TRAIN images (issue 7).

    .venv/bin/python experiments/qat_start.py RUN
"""

from __future__ import annotations

import sys

from lightseg_tf.data.tfdata import letterboxed_sample
from lightseg_tf.evaluation.evaluate import evaluate
from lightseg_tf.models.predictor import KerasPredictor
from lightseg_tf.models.qat import quantize_for_qat
from lightseg_tf.models.saving import load_trained_model
from lightseg_tf.runs import open_run


def main(run: str) -> None:
    rd = open_run(run)
    model = load_trained_model(rd.run_dir)
    size = int(model.input_shape[1])

    def test_dice(m) -> float:
        return evaluate(KerasPredictor(m), rd.part("test")).summary["mean_fg_dice"]

    calibration = letterboxed_sample(rd.part("train"), size)
    print(f"float model                          {test_dice(model):.4f}")
    print(f"QAT copy, tfmot's [-6, 6] ranges     {test_dice(quantize_for_qat(model)):.4f}")
    print(f"QAT copy, ranges from TRAIN images   {test_dice(quantize_for_qat(model, calibration)):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
