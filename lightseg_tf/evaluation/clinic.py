"""The chain's clinical checks of a student: GradCAM++ panels, robustness (Keras vs TFLite) and
head biometry from the deployed TFLite model against the dataset's reference HC."""

from __future__ import annotations

from pathlib import Path

from lightseg_tf.anatomy.biometry import measure_mask
from lightseg_tf.core.io import write_json_atomic
from lightseg_tf.core.log import LOG, progress
from lightseg_tf.deploy.runtime import load_predictor
from lightseg_tf.evaluation.explain import explain_image
from lightseg_tf.evaluation.measure import hc_errors
from lightseg_tf.evaluation.robustness import SEVERITIES, robustness_table, write_robustness
from lightseg_tf.runs import open_run


def clinic_checks(student_run: str | Path, tflite: str | Path, out: str | Path, explain_images: int = 2,
                  robustness: bool = True, biometry_images: int = 8,
                  models: dict[str, str | Path] | None = None, robustness_images: int = 0) -> dict:
    """Explain, stress and measure a trained student on its run's TEST split.

    Args:
        student_run: the student's run directory (Keras model, split, dataset).
        tflite: the exported model the biometry is measured with (what a device would run).
        out: folder for ``explain/``, ``robustness/`` and ``biometry.json``.
        explain_images: test images that get a GradCAM++ panel.
        robustness: also run the corruption table for ``models``.
        biometry_images: test images measured (HC, BPD) from the TFLite prediction.
        models: the models whose robustness is measured, ``{label: run directory or .tflite}``;
            default the student's Keras model and ``tflite``.
        robustness_images: the first this many test images go through the corruption table
            (each is predicted by every model at every severity); 0 = the whole test split.

    Returns:
        ``{"explain": [png names], "biometry": [per image], "robustness_rows"?, "hc_error_mm"?}``;
        ``hc_error_mm`` (:func:`~lightseg_tf.evaluation.measure.hc_errors`: signed, by HC quartile)
        is there when the data has a reference HC.
    """
    out = Path(out)
    test = open_run(student_run).part("test")
    keras_pred = load_predictor(student_run)
    tfl = load_predictor(tflite)
    results: dict = {"explain": [], "biometry": []}
    ids = list(range(1, test.num_classes))
    explained = test.records[:explain_images]
    if explained:
        LOG.info("GradCAM++ panels of %d test images -> %s", len(explained), out / "explain")
    for rec in progress(explained, "GradCAM++"):
        path = explain_image(keras_pred.model, test.load_image(rec), ids, list(test.classes),
                             path=out / "explain" / f"{rec.id}_gradcampp.png")
        results["explain"].append(path.name)
    if robustness:
        predictors = ({label: load_predictor(m) for label, m in models.items()} if models
                      else {"student (Keras)": keras_pred, f"{Path(tflite).stem} (TFLite)": tfl})
        stressed = test.subset([r.id for r in test.records[:robustness_images]]) if robustness_images else test
        LOG.info("robustness: %s on %d test images, %d corruptions at graded severities -> %s",
                 ", ".join(predictors), len(stressed), len(SEVERITIES), out / "robustness")
        rows = robustness_table(predictors, stressed)
        write_robustness(rows, out / "robustness")
        results["robustness_rows"] = len(rows)
    part = test.subset([r.id for r in test.records[:biometry_images]])
    LOG.info("biometry (HC, BPD) of %d test images from %s", len(part), Path(tflite).name)
    if any(r.hc_mm and r.pixel_size_mm for r in part.records):  # a reference HC: the signed error too
        hc = hc_errors(tfl, part, out, "hc")
        results["biometry"] = hc.pop("rows")
        results["hc_error_mm"] = hc
    else:
        for rec in progress(part.records, "biometry"):
            m = measure_mask(tfl.predict_mask(part.load_image(rec)), part.classes, rec.pixel_size_mm)
            results["biometry"].append({"id": rec.id, "hc": m.get("hc"), "bpd": m.get("bpd"),
                                        "units": m.get("units"), "flags": m["flags"]})
    write_json_atomic(out / "biometry.json", results["biometry"])
    return results
