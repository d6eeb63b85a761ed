"""Data errors are found before training starts and end as one line naming the file (exit 2),
not as a TensorFlow traceback from inside tf.data."""

import shutil

import numpy as np
import pytest
from PIL import Image

from lightseg_tf.cli import main
from lightseg_tf.data.inspect import check_dataset
from lightseg_tf.data.readers import read_dataset


def _break(root, case):
    if case == "truncated image":
        path = root / "images" / "00003.png"
        path.write_bytes(path.read_bytes()[:200])
    elif case == "mask of another size":
        path = root / "masks" / "00003.png"
        Image.fromarray(np.zeros((40, 64), np.uint8)).save(path)
    elif case == "missing mask":
        (root / "masks" / "00003.png").unlink()
    elif case == "class id outside the classes":
        path = root / "masks" / "00003.png"
        mask = np.asarray(Image.open(path)).copy()
        mask[0, 0] = 9
        Image.fromarray(mask).save(path)
    return "00003.png"


@pytest.mark.parametrize("case", ["truncated image", "mask of another size", "missing mask",
                                  "class id outside the classes"])
def test_training_on_a_broken_file_is_one_line_naming_it(phantom_dir, tmp_path, capsys, case):
    root = tmp_path / "data"
    shutil.copytree(phantom_dir, root)
    name = _break(root, case)
    code = main(["train", f"data.path={root}", "data.image_size=32", "data.batch_size=4", "train.epochs=1",
                 "train.verbose=0", "model.options={base_filters: 4, depth: 2}", f"run_root={tmp_path / 'runs'}",
                 "name=bad"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and name in err[0] and "internal error" not in err[0], err
    assert not list((tmp_path / "runs").rglob("*.keras"))  # nothing trained, nothing saved


def test_inspect_check_lists_every_problem(phantom_dir, tmp_path, capsys):
    root = tmp_path / "data"
    shutil.copytree(phantom_dir, root)
    _break(root, "class id outside the classes")
    (root / "masks" / "00005.png").unlink()
    assert main(["data", "inspect", str(root), "--check"]) == 2
    out = capsys.readouterr().out
    assert "00003.png" in out and "00005.png" in out and "2 problems" in out
    shutil.rmtree(root)
    shutil.copytree(phantom_dir, root)
    assert check_dataset(read_dataset(root)) == []
    assert main(["data", "inspect", str(root), "--check"]) == 0
