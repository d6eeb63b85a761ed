"""Bad inputs users met, one test each: the CLI exits 2 with one line naming the file and what to
do, and leaves nothing partial behind. Every input is built here, tiny (32 px, one conv)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lightseg_tf.cli import main


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: two snapshots equal = nothing written or removed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _fails(capsys, argv: list[str], *words) -> str:
    """Run ``lightseg ARGV``; it must exit 2 with one stderr line containing each of ``words``."""
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightseg: error: "), lines
    for w in words:
        assert str(w) in lines[0], (w, lines[0])
    return lines[0]


def _conv_model(classes: int, layer=None):
    """A 32x32x1 -> classes model: one 1x1 conv, then ``layer`` if given."""
    import tf_keras as keras

    inp = keras.Input((32, 32, 1))
    out = keras.layers.Conv2D(classes, 1)(inp)
    return keras.Model(inp, layer(out) if layer is not None else out)


def _run_dir(path: Path, data: Path) -> Path:
    """A run folder as ``lightseg train`` leaves it, without the training (config + split)."""
    from lightseg_tf.config import dump_config, load_config
    from lightseg_tf.data.readers import read_dataset
    from lightseg_tf.data.split import make_split, save_split

    path.mkdir(parents=True)
    (path / "config.yaml").write_text(dump_config(load_config(None, [f"data.path={data}", "data.image_size=32"])))
    save_split(make_split(read_dataset(data)), path / "split.json")
    return path


@pytest.fixture()
def image(phantom_dir) -> Path:
    return sorted((phantom_dir / "images").glob("*.png"))[0]


# 1 -------------------------------------------------------------- models that carry code

@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_model_with_lambda_payload_is_refused_and_never_runs(tmp_path, capsys, phantom_dir, image):
    import tf_keras as keras

    marker = tmp_path / "payload_ran"
    payload = eval(f"lambda t: (__import__('pathlib').Path({str(marker)!r}).write_text('ran'), t)[1]")
    model = _conv_model(4, keras.layers.Lambda(payload))
    run = _run_dir(tmp_path / "run", phantom_dir)
    model.save(run / "best.h5")  # a run folder whose best model is this .h5
    shutil.copy(run / "best.h5", tmp_path / "evil.h5")
    model.save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran the payload once, here
    before = _tree(tmp_path)
    out = tmp_path / "out"
    evil = tmp_path / "evil.h5"
    for argv, named in (
            (["evaluate", evil, "--data", phantom_dir, "--split", "all", "--out", out], evil),
            (["measure", "--model", evil, image, "--classes", "background", "Brain", "CSP", "LV", "--out", out], evil),
            (["evaluate", run, "--data", phantom_dir, "--out", out], run / "best.h5"),
            (["export", run, "--model-file", "best.h5", "--out", out / "m.tflite"], run / "best.h5"),
            (["evaluate", tmp_path / "evil.keras", "--data", phantom_dir, "--split", "all", "--out", out],
             tmp_path / "evil.keras")):
        _fails(capsys, argv, named, "Lambda layer", "refused", "made by lightseg")
        assert not marker.exists(), argv
    assert _tree(tmp_path) == before


# 2 -------------------------------------------------------------- a model meets other data

def test_model_with_other_classes_than_the_data_is_refused(tmp_path, capsys, phantom_dir, image):
    out = tmp_path / "out"
    # The phantom has 4 classes: a 2-class model printed a bogus Dice table, a 6-class one crashed.
    for classes in (2, 6):
        path = tmp_path / f"c{classes}.keras"
        _conv_model(classes).save(path)
        before = _tree(tmp_path)
        for argv in (["evaluate", path, "--data", phantom_dir, "--split", "all", "--out", out],
                     ["robustness", path, "--data", phantom_dir, "--split", "all", "--out", out],
                     ["measure", "--model", path, image, "--classes", "background", "Brain", "CSP", "LV",
                      "--out", out]):
            _fails(capsys, argv, path, f"outputs {classes} classes", "has 4", "use a model trained on these")
        assert _tree(tmp_path) == before


# 3 -------------------------------------------------------------- measure

def _png(path: Path, array) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def test_measure_refuses_bad_pixel_sizes_and_flags_heads_it_cannot_trust(tmp_path, capsys):
    import json

    import numpy as np

    img = _png(tmp_path / "img.png", np.full((48, 48), 90))
    empty = _png(tmp_path / "empty.png", np.zeros((48, 48)))
    cut = np.zeros((48, 48))
    cut[10:30, 0:20] = 255  # touches the left edge
    cut = _png(tmp_path / "cut.png", cut)
    thin = np.zeros((48, 48))
    thin[20:22, 5:40] = 255  # two pixels tall: no head shape
    thin = _png(tmp_path / "thin.png", thin)
    small = _png(tmp_path / "small.png", np.zeros((40, 40)))
    csv = tmp_path / "px.csv"
    csv.write_text("filename,pixel size(mm)\nimg.png,-0.1\n")
    out = tmp_path / "out"
    before = _tree(tmp_path)
    for px in ("-0.2", "nan", "inf", "0"):
        _fails(capsys, ["measure", "--mask", cut, img, "--pixel-size", px, "--out", out],
               "--pixel-size", "not a positive number of mm per pixel")
    _fails(capsys, ["measure", "--mask", cut, img, "--pixel-sizes", csv, "--out", out], f"{csv}:2", "-0.1")
    # the second image fails after the first was measured: nothing of the first is left either
    _fails(capsys, ["measure", "--mask", cut, "--mask", small, img, img, "--out", out], small, "40x40")
    assert _tree(tmp_path) == before and not out.exists()

    assert main(["measure", "--mask", str(empty), "--mask", str(cut), "--mask", str(thin), str(img), str(img), str(img),
                 "--pixel-size", "0.1", "--json"]) == 0
    none, border, degenerate = (r["flags"] for r in json.loads(capsys.readouterr().out))
    assert none == ["no head found"]
    assert border == ["head cut by the image border: HC underestimated"]
    assert any(f.startswith("degenerate head") for f in degenerate)  # no ellipse, or a degenerate one


# 4 -------------------------------------------------------------- HC18 pixel sizes

def test_hc18_image_without_a_valid_pixel_size_is_refused(tmp_path, capsys):
    import numpy as np

    ts = tmp_path / "hc18" / "training_set"
    ts.mkdir(parents=True)
    yy, xx = np.mgrid[:32, :32]
    head = ((xx - 16) / 10) ** 2 + ((yy - 16) / 7) ** 2 <= 1
    for name in ("000_HC", "001_HC"):
        _png(ts / f"{name}.png", np.full((32, 32), 80))
        _png(ts / f"{name}_Annotation.png", head * 255)
    csv = tmp_path / "hc18" / "training_set_pixel_size_and_HC.csv"
    header = "filename,pixel size(mm),head circumference (mm)\n000_HC.png,0.1,17.3\n"
    argv = ["data", "inspect", tmp_path / "hc18", "--format", "hc18"]
    csv.write_text(header)  # 001_HC.png has no row: it used to load without a pixel size
    _fails(capsys, argv, ts / "001_HC.png", csv, "add its row")
    for bad in ("-0.1", "nan"):
        csv.write_text(header + f"001_HC.png,{bad},17.3\n")
        _fails(capsys, argv, f"{csv}:3", bad, "not a positive number of mm per pixel")


# 5 -------------------------------------------------------------- data fetch

def test_fetch_never_replaces_a_users_folder_nor_writes_outside_dest(tmp_path, capsys):
    import io
    import tarfile
    import zipfile

    from lightseg_tf.data.fetch import RELEASES

    dest = tmp_path / "data"
    (dest / "training_set").mkdir(parents=True)
    (dest / "training_set" / "mine.txt").write_text("the user's own notes")
    with zipfile.ZipFile(dest / RELEASES["hc18"].filename, "w") as z:  # downloaded by hand, as fetch says
        z.writestr("training_set/000_HC.png", b"png")
    before = _tree(tmp_path)
    _fails(capsys, ["data", "fetch", "hc18", dest], dest / "training_set", "replaces nothing", "--force")
    assert _tree(tmp_path) == before  # it used to delete training_set/ and the user's file with it
    assert main(["data", "fetch", "hc18", str(dest), "--force"]) == 0
    assert (dest / "training_set.before-fetch" / "mine.txt").read_text() == "the user's own notes"
    assert (dest / "training_set" / "000_HC.png").read_bytes() == b"png"

    evil = tmp_path / "evil" / RELEASES["hc18"].filename  # a tar under the zip's name: read by content
    evil.parent.mkdir()
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        t.addfile(info, io.BytesIO(b"out"))
    before = _tree(tmp_path)
    _fails(capsys, ["data", "fetch", "hc18", evil.parent], evil, "outside the destination", "delete it")
    assert _tree(tmp_path) == before and not (tmp_path / "escaped.txt").exists()


# 6 -------------------------------------------------------------- plain user errors, not internal ones

def _bomb_png(path: Path) -> Path:
    """A PNG whose header claims 30000x30000 pixels (its data is a few bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_user_errors_are_one_line_not_internal_errors(tmp_path, capsys, phantom_dir):
    import json

    import numpy as np

    img = _png(tmp_path / "img.png", np.full((48, 48), 90))
    mask = _png(tmp_path / "mask.png", np.zeros((48, 48)))
    latin1 = tmp_path / "px.csv"
    latin1.write_bytes("filename,pixel size (mm)\nimg.png,0.1 \xb5m\n".encode("latin-1"))
    bomb = _bomb_png(tmp_path / "bomb.png")
    flipped = tmp_path / "flipped.keras"
    _conv_model(4).save(flipped)
    blob = bytearray(flipped.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # inside the zipped weights: a CRC error (BadZipFile) on reading
    flipped.write_bytes(bytes(blob))
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"not checked before its card")
    out = tmp_path / "out"
    data = ["--data", phantom_dir, "--split", "all", "--out", out]
    before = _tree(tmp_path)
    _fails(capsys, ["measure", "--mask", mask, img, "--pixel-sizes", latin1, "--out", out], latin1, "UTF-8")
    _fails(capsys, ["measure", "--mask", mask, bomb, "--out", out], bomb, "decompression bomb", "pass the scan")
    _fails(capsys, ["evaluate", flipped, *data], flipped, "BadZipFile", "corrupt", "replace it")
    _fails(capsys, ["measure", "--mask", tmp_path / "missing.png", img, "--out", out],
           tmp_path / "missing.png", "check the path")
    card = tmp_path / "m.json"
    for content, problem in (({"schema": "lightseg-model-card/1", "name": "m"}, "no SHA-256"), ([1, 2], "JSON list")):
        card.write_text(json.dumps(content))
        _fails(capsys, ["evaluate", tflite, *data], card, problem, "re-export")
    card.unlink()
    assert _tree(tmp_path) == before and not out.exists()


# 7 -------------------------------------------------------------- export: model and card as one unit

def test_export_killed_between_model_and_card_never_pairs_new_model_with_old_card(tmp_path, capsys, phantom_dir):
    import signal
    import subprocess
    import sys

    from lightseg_tf.deploy.convert import write_export

    out, card = tmp_path / "m.tflite", tmp_path / "m.json"
    write_export(b"old model", {"made": "old"}, out)
    killed = subprocess.run([sys.executable, "-c", f"""
import os, signal
from lightseg_tf.deploy.convert import write_export
rename = os.replace
def replace(src, dst):
    if str(dst).endswith(".json"):  # the model is in place, its card not yet: die here
        os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst)
os.replace = replace
write_export(b"new model", {{"made": "new"}}, {str(out)!r})
"""], capture_output=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert out.read_bytes() == b"new model" and not card.exists()  # not the old card beside the new model
    _fails(capsys, ["evaluate", out, "--data", phantom_dir, "--split", "all"], card, "model card missing",
           "re-export")
    write_export(b"newer model", {"made": "newer"}, out)  # the next export also clears the killed one's temp files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.tflite"]
