"""``lightseg measure``: HC, BPD, OFD, CSP / LV widths and flags, on phantoms and HC18."""

import csv
import json
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from conftest import REPO_ROOT

from lightseg_tf.anatomy.biometry import lv_flag, measure_mask, width_across
from lightseg_tf.cli import main
from lightseg_tf.data.phantom import CLASSES, make_phantom
from lightseg_tf.data.readers import read_dataset
from lightseg_tf.evaluation.measure import format_hc_errors, hc_errors
from lightseg_tf.models.predictor import Predictor


def test_phantom_truth_is_recovered_from_masks():
    hc, csp = [], []
    for i in range(12):
        _, mask, t = make_phantom(256, np.random.default_rng([8, i]))
        m = measure_mask(mask, CLASSES, t.pixel_size_mm)
        hc.append(abs(m["hc"] / t.hc_mm - 1))
        if abs((mask > 0).sum() / (np.pi * t.a * t.b) - 1) > 0.01:
            continue  # the sector edge cut this head: its ellipse is only partly visible
        assert m["ofd"] == pytest.approx(2 * t.a * t.pixel_size_mm, rel=0.01)
        assert m["bpd"] == pytest.approx(2 * t.b * t.pixel_size_mm, rel=0.02)
        assert m["angle_deg"] == pytest.approx(t.angle_deg, abs=2.0)
        if m.get("csp_width"):
            csp.append(m["csp_width"] - t.csp_width_mm)
        if m.get("lv_width"):
            assert m["lv_width"] == pytest.approx(t.lv_width_mm, rel=0.03)  # fitted vs true midline angle
    assert np.median(hc) < 0.01
    # the CSP box's width is recovered to within about one pixel
    assert abs(np.median(csp)) < 0.8


def test_width_across_and_flags():
    m = np.zeros((20, 20), bool)
    m[5:8, 2:15] = True  # 13 wide along x, 3 tall
    assert width_across(m, 0.0) == pytest.approx(3.0)  # across a horizontal midline
    assert width_across(m, 90.0) == pytest.approx(13.0)
    assert [lv_flag(w) for w in (9.9, 10.0, 12.5, 15.0, None)] == ["normal", "mild", "moderate", "severe", None]
    mask = np.zeros((64, 64), int)
    yy, xx = np.mgrid[0:64, 0:64]
    mask[((xx - 32) / 25) ** 2 + ((yy - 32) / 20) ** 2 <= 1] = 1
    mask[20:26, 20:32] = 3  # a 6 px tall LV across a horizontal midline: 12 mm at 2 mm/px
    m = measure_mask(mask, CLASSES, 2.0)
    assert "CSP not visible" in m["flags"] and m["lv_flag"] == "moderate"
    assert measure_mask(np.zeros((8, 8), int), CLASSES, 1.0)["flags"] == ["no head found"]


def test_cli_writes_annotated_png_csv_and_json(tmp_path, capsys):
    main(["data", "synth", str(tmp_path / "p"), "--n", "2", "--size", "128", "--seed", "4"])
    meta = list(csv.DictReader(open(tmp_path / "p/meta.csv")))
    (tmp_path / "px.csv").write_text("file,px\n" + "".join(f"{r['id']}.png,{r['pixel_size_mm']}\n" for r in meta))
    capsys.readouterr()
    args = ["measure", "--mask", str(tmp_path / "p/masks/00000.png"), "--mask", str(tmp_path / "p/masks/00001.png"),
            str(tmp_path / "p/images/00000.png"), str(tmp_path / "p/images/00001.png"),
            "--pixel-sizes", str(tmp_path / "px.csv"), "--out", str(tmp_path / "out"), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    for r, t in zip(rows, meta):
        assert r["units"] == "mm" and r["hc"] == pytest.approx(float(t["hc_mm"]), rel=0.01)
    assert (tmp_path / "out/00000_measure.png").exists()
    assert len(list(csv.DictReader(open(tmp_path / "out/measurements.csv")))) == 2
    assert main(["measure", "--mask", str(tmp_path / "p/masks/00000.png"), str(tmp_path / "p/images/00000.png")]) == 0
    assert "values in pixels" in capsys.readouterr().out


def test_hc18_annotations_reproduce_the_reference_hc(shared_datasets, capsys):
    folder = shared_datasets / "hc18" / "training_set"
    names = sorted(p.name for p in folder.glob("*HC.png"))[::10]
    args = ["measure", *sum((["--mask", str(folder / n.replace(".png", "_Annotation.png"))] for n in names), []),
            *[str(folder / n) for n in names], "--pixel-sizes",
            str(shared_datasets / "hc18" / "training_set_pixel_size_and_HC.csv"), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    ref = {r["filename"]: float(r["head circumference (mm)"])
           for r in csv.DictReader(open(shared_datasets / "hc18" / "training_set_pixel_size_and_HC.csv"))}
    err = [abs(r["hc"] / ref[r["image"].split("/")[-1]] - 1) for r in rows]
    assert len(err) == len(names) >= 70 and np.median(err) <= 0.01


def test_cli_ga_and_centiles_from_a_mask_of_known_pixel_size(tmp_path, capsys):
    # A filled head ellipse of semi-axes 61 x 48.6 px at 0.5 mm/px: true HC 172.7 mm (fitted 172.9), BPD 48.6 mm,
    # about the INTERGROWTH-21st medians at 20 weeks (172.5 / 48.4 mm) and below the 3rd centiles at 28 weeks
    # (243.6 / 67.9 mm). Hadlock: 8.96 + 0.540 * 17.29 + 0.0003 * 17.29^3 = 19.85 weeks.
    yy, xx = np.mgrid[0:140, 0:160]
    head = ((xx + 0.5 - 80) / 61) ** 2 + ((yy + 0.5 - 70) / 48.6) ** 2 <= 1
    Image.fromarray((head * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((140, 160), np.uint8)).save(tmp_path / "image.png")
    base = ["measure", "--mask", str(tmp_path / "mask.png"), str(tmp_path / "image.png"), "--pixel-size", "0.5"]
    capsys.readouterr()

    assert main(base + ["--ga-weeks", "20", "--out", str(tmp_path / "at20")]) == 0
    out = capsys.readouterr().out
    assert "HC 172.9 mm, BPD 48.7 mm" in out and "GA from HC: 19.8 weeks (Hadlock 1984), 20.0 weeks" in out
    assert "at GA 20+0 weeks: HC centile" in out and "!" not in out
    (row,) = csv.DictReader(open(tmp_path / "at20/measurements.csv"))
    assert row["hc"] == "172.9" and row["ga_weeks"] == "20.0" and row["flags"] == "" and row["notes"] == ""
    assert 25 < float(row["hc_centile"]) < 75 and 25 < float(row["bpd_centile"]) < 75
    assert abs(float(row["hc_z"])) < 0.5 and float(row["ga_weeks_hadlock"]) == 19.8

    assert main(base + ["--ga-weeks", "28+0", "--out", str(tmp_path / "at28")]) == 0
    out = capsys.readouterr().out
    assert "! HC 172.9 mm below 3rd centile at GA 28+0 weeks" in out and "! BPD 48.7 mm below 3rd" in out
    (row,) = csv.DictReader(open(tmp_path / "at28/measurements.csv"))
    assert row["ga_weeks"] == "28.0" and row["hc_centile"] == "0.0" and "below 3rd centile" in row["flags"]

    assert main(base + ["--ga-weeks", "41", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["hc_centile"] is None and r["ga_weeks_intergrowth"] == 20.0 and not r["flags"]
    assert any("no HC centile: GA 41.0 weeks is outside 14+0 to 40+0 weeks" in n for n in r["notes"])

    assert main(base + ["--ga-weeks", "20+9"]) == 2
    assert "expected weeks such as 20.5" in capsys.readouterr().err


class _MaskInOrder(Predictor):
    """Returns each record's true mask (optionally grown by ``grow`` px), in dataset order, as
    certain probabilities (``predict_mask`` is their argmax)."""

    def __init__(self, dataset, grow=0):
        super().__init__(64, dataset.classes)
        self.masks, self.grow = [dataset.load_mask(r) for r in dataset.records], grow

    def predict_image(self, image):
        mask = self.masks.pop(0)
        if self.grow:
            head = cv2.dilate((mask > 0).astype(np.uint8), np.ones((3, 3), np.uint8), iterations=self.grow)
            mask = np.where((mask == 0) & (head > 0), 1, mask)
        return np.eye(len(self.classes), dtype=np.float32)[mask]


def test_hc_errors_are_signed_and_split_by_hc_quartile(phantom_dir, tmp_path):
    ds = read_dataset(phantom_dir)
    exact = hc_errors(_MaskInOrder(ds), ds)
    assert exact["n"] == len(ds) and exact["no_head_found"] == 0
    assert abs(exact["mean_signed"]) < 1.0 and exact["mean_abs"] < 1.0  # the phantom's truth is the mask's ellipse
    grown = hc_errors(_MaskInOrder(ds, grow=2), ds, out_dir=tmp_path, stem="g")
    assert grown["mean_signed"] > exact["mean_signed"] + 1.0  # heads drawn too large: a positive bias
    quartiles = grown["by_hc_quartile"]
    assert len(quartiles) == 4 and sum(q["n"] for q in quartiles) == len(ds)
    assert all(q["mean_signed"] > 0 for q in quartiles)
    assert (tmp_path / "g_per_image.csv").exists() and "all" in format_hc_errors(grown)
    lo, hi = grown["mean_abs_ci95"]
    assert lo <= grown["mean_abs"] <= hi and "interval over subjects" in format_hc_errors(grown)


def test_direct_fit_is_opencvs_fit_ellipse_direct_on_the_contour_pixels():
    """fit_ellipse_direct is Fitzgibbon's direct fit (OpenCV fitEllipseDirect), boundary_points
    are the pixels of OpenCV's outer contour (each once), on noisy blobs like a model's output."""
    import cv2

    from lightseg_tf.anatomy.biometry import boundary_points, fit_ellipse_direct, largest_component

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:120, 0:160] + 0.5
    for _ in range(40):
        a, b, t = rng.uniform(15, 60), rng.uniform(10, 45), rng.uniform(0, np.pi)
        cx, cy = rng.uniform(50, 110), rng.uniform(40, 80)
        u, v = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t), -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
        region = largest_component(((u / a) ** 2 + (v / b) ** 2 <= 1) | (rng.random(xx.shape) < 0.03))
        pts = boundary_points(region)
        contours, _ = cv2.findContours(region.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        traced = max(contours, key=len)[:, 0, :]
        assert {tuple(p) for p in traced.tolist()} == {tuple(p) for p in (pts - 0.5).astype(int).tolist()}
        e = fit_ellipse_direct(pts)
        (ocx, ocy), sides, _ = cv2.fitEllipseDirect(pts.astype(np.float32))
        assert (e.cx, e.cy) == pytest.approx((ocx, ocy), abs=1e-3)
        assert (e.a, e.b) == pytest.approx((max(sides) / 2, min(sides) / 2), rel=1e-5)
    assert fit_ellipse_direct(np.array([[0.0, 0], [1, 1], [2, 2], [3, 3], [4, 4]])) is None  # collinear


def test_direct_fit_weights_scale_each_point_and_zero_drops_it():
    from dataclasses import astuple

    from lightseg_tf.anatomy.biometry import fit_ellipse_direct as fit

    def fit_ellipse_direct(*args):
        e = fit(*args)
        return None if e is None else astuple(e)

    rng = np.random.default_rng(1)
    th = rng.uniform(0, 2 * np.pi, 60)
    on = np.stack([50 + 30 * np.cos(th), 40 + 18 * np.sin(th)], axis=1) + rng.normal(0, 0.3, (60, 2))
    stray = np.array([[95.0, 40], [90, 70], [20, 5]])
    pts = np.concatenate([on, stray])
    plain = fit_ellipse_direct(on)
    dropped = fit_ellipse_direct(pts, np.r_[np.ones(60), np.zeros(3)])
    assert dropped == pytest.approx(plain, rel=1e-9)
    assert fit_ellipse_direct(pts)[2] > plain[2] + 3  # the stray points pull the unweighted fit
    # Scaling all weights changes nothing; weight 2 on a point is that point counted twice.
    assert fit_ellipse_direct(pts, np.full(63, 7.0)) == pytest.approx(fit_ellipse_direct(pts), rel=1e-9)
    twice = fit_ellipse_direct(np.concatenate([pts, pts[-1:]]))
    assert fit_ellipse_direct(pts, np.r_[np.ones(62), 2.0]) == pytest.approx(twice, rel=1e-9)
    assert fit_ellipse_direct(pts, np.r_[np.ones(4), np.zeros(59)]) is None  # under 5 points of weight
    with pytest.raises(ValueError, match="non-negative"):
        fit_ellipse_direct(pts, -np.ones(63))
    with pytest.raises(ValueError, match="one per point"):
        fit_ellipse_direct(pts, np.ones(5))


def test_measure_of_a_tflite_shows_the_training_domain_its_card_holds(phantom_dir, tmp_path, capsys):
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.deploy.convert import build_card, convert, training_domain_of, write_export
    from lightseg_tf.models import build_model

    domain = training_domain_of(read_dataset(phantom_dir))
    assert domain["dataset"] == "lightseg-phantom" and domain["format"] == "lightseg" and "synthetic" in domain["note"]
    model = build_model("unet", (32, 32, 1), 4, base_filters=4, depth=2)
    rng = np.random.default_rng(0)
    content = convert(model, "int8", [rng.random((32, 32, 1), dtype=np.float32) for _ in range(3)])
    card = build_card(content, name="tiny", classes=CLASSES, colors=[[0, 0, 0]] * 4, size=32, quant="int8",
                      training_domain=domain)
    path, _ = write_export(content, card, tmp_path / "model.tflite")
    image = str(phantom_dir / "images" / "00000.png")
    assert main(["measure", "--model", str(path), image, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["training_domain"] == "lightseg-phantom (lightseg)"
    assert main(["measure", "--model", str(path), image, "--out", str(tmp_path / "out")]) == 0
    assert "model trained on: lightseg-phantom (lightseg)" in capsys.readouterr().out
    assert next(csv.DictReader(open(tmp_path / "out/measurements.csv")))["training_domain"] == "lightseg-phantom (lightseg)"


def test_measure_opens_the_run_directory_the_pipeline_prints(tmp_path, capsys):
    """``lightseg measure --model runs/quickstart``: the export stage's int8 model, also when the run
    stopped after export (no pipeline.json yet; this used to fail on a missing split.json). Fast: the
    run's layout around the committed golden export, no training."""
    golden = REPO_ROOT / "android_demo" / "app" / "src" / "test" / "resources" / "golden"
    case = json.loads((golden / "golden.json").read_text())["cases"][0]
    image = str(golden / case["files"]["png"])
    run = tmp_path / "quickstart"
    (run / "stages" / "data").mkdir(parents=True)
    (run / "config.yaml").write_text("name: quickstart\n")
    assert main(["measure", "--model", str(run), image]) == 2
    err = capsys.readouterr().err
    assert "quickstart: no exported model in this run yet" in err and "resume it with the same command" in err
    export = run / "stages" / "export"
    export.mkdir()
    for name in ("student_int8.tflite", "student_int8.json"):
        shutil.copy(golden / name, export / name)
    (export / "done.json").write_text(json.dumps({"key": "k", "results": {
        "source": "/elsewhere/stages/distill/student", "files": {"int8": "student_int8.tflite"}}}))
    assert main(["measure", "--model", str(run), image, "--pixel-size", str(case["pixel_size_mm"]), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    # The golden vectors' HC is the Python TFLite runner's on this image: the same model answered.
    assert row["hc"] == round(case["measurements"]["hc_mm"], 1)  # measure reports 0.1 mm
    assert row["training_domain"] == "phantom (lightseg)"


def test_commands_that_need_one_training_run_name_the_runs_inside_a_pipeline_run(tmp_path, capsys):
    """``lightseg export`` / ``explain`` on the pipeline's run directory say which of its runs to pass
    (they failed on a missing split.json, or called it a .tflite); evaluate and robustness find its split."""
    from lightseg_tf.runs import run_split_file

    run = tmp_path / "quickstart"
    for stage in ("teachers/unet", "distill/student"):
        (run / "stages" / stage).mkdir(parents=True)
        (run / "stages" / stage / "split.json").write_text("{}")
    (run / "stages" / "export").mkdir()
    (run / "stages" / "export" / "student_int8.tflite").write_bytes(b"")
    (run / "stages" / "export" / "done.json").write_text(json.dumps({"key": "k", "results": {
        "files": {"int8": "student_int8.tflite"}}}))  # the export stage's record names the shipped file
    (run / "config.yaml").write_text("name: quickstart\n")
    for argv in (["export", str(run), "--out", str(tmp_path / "m.tflite")], ["explain", str(run), "x.png"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "a `lightseg pipeline` run directory" in err, err
        assert "stages/distill/student, stages/teachers/unet" in err and "stages/export/student_int8.tflite" in err
    assert not (tmp_path / "m.tflite").exists()
    assert run_split_file(run) == run / "stages" / "data" / "split.json"
    assert run_split_file(run / "stages" / "teachers" / "unet") == run / "stages" / "teachers" / "unet" / "split.json"
    assert run_split_file(run / "stages" / "export" / "student_int8.tflite") is None

