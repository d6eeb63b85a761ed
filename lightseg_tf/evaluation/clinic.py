"""The chain's clinical checks of a student: GradCAM++ panels, robustness (Keras vs TFLite) and
head biometry from the deployed TFLite model against the dataset's reference HC."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lightseg_tf.anatomy.biometry import measure_mask
from lightseg_tf.core.io import write_json_atomic
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.evaluation.explain import explain_image
from lightseg_tf.evaluation.robustness import robustness_table, write_robustness
from lightseg_tf.runs import open_run


def clinic_checks(student_run: str | Path, tflite: str | Path, out: str | Path, explain_images: int = 2,
                  robustness: bool = True, biometry_images: int = 8) -> dict:
    """Explain, stress and measure a trained student on its run's TEST split.

    Args:
        student_run: the student's run directory (Keras model, split, dataset).
        tflite: the exported model the biometry is measured with (what a device would run).
        out: folder for ``explain/``, ``robustness/`` and ``biometry.json``.
        explain_images: test images that get a GradCAM++ panel.
        robustness: also run the corruption table for the Keras model and the TFLite one.
        biometry_images: test images measured (HC, BPD) from the TFLite prediction.

    Returns:
        ``{"explain": [png names], "biometry": [per image], "robustness_rows"?, "hc_error_mm"?}``;
        ``hc_error_mm`` (signed: predicted - reference) is there when the data has a reference HC.
    """
    out = Path(out)
    test = open_run(student_run).part("test")
    keras_pred = load_predictor(student_run)
    tfl = load_predictor(tflite)
    results: dict = {"explain": [], "biometry": []}
    ids = list(range(1, test.num_classes))
    for rec in test.records[:explain_images]:
        path = explain_image(keras_pred.model, test.load_image(rec), ids, list(test.classes),
                             path=out / "explain" / f"{rec.id}_gradcampp.png")
        results["explain"].append(path.name)
    if robustness:
        rows = robustness_table({"keras": keras_pred, Path(tflite).stem: tfl}, test)
        write_robustness(rows, out / "robustness")
        results["robustness_rows"] = len(rows)
    for rec in test.records[:biometry_images]:
        m = measure_mask(tfl.predict_mask(test.load_image(rec)), test.classes, rec.pixel_size_mm)
        results["biometry"].append({"id": rec.id, "hc": m.get("hc"), "reference_hc": rec.hc_mm,
                                    "bpd": m.get("bpd"), "units": m.get("units"), "flags": m["flags"]})
    write_json_atomic(out / "biometry.json", results["biometry"])
    errors = [b["hc"] - b["reference_hc"] for b in results["biometry"]
              if b["hc"] is not None and b["reference_hc"] and b["units"] == "mm"]
    if errors:
        e = np.asarray(errors)
        results["hc_error_mm"] = {"n": len(e), "median_abs": float(np.median(np.abs(e))),
                                  "mean_abs": float(np.mean(np.abs(e))), "mean_signed": float(np.mean(e)),
                                  "no_head_found": sum(b["hc"] is None for b in results["biometry"])}
    return results
