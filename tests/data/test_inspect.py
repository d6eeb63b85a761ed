import json

import numpy as np
from PIL import Image

from lightseg_tf.cli import main
from lightseg_tf.data.inspect import dataset_stats
from lightseg_tf.data.readers import read_dataset


def test_stats_on_the_phantom(phantom_dir):
    ds = read_dataset(phantom_dir)
    stats = dataset_stats(ds)
    assert stats["images"] == 16 and stats["subjects"] == 16 and stats["annotated"] == 16
    assert stats["image_sizes"] == {"64x64": 16}
    assert abs(sum(stats["pixel_fraction"].values()) - 1) < 1e-9
    expected_brain = np.mean([(ds.load_mask(r) == 1).mean() for r in ds.records])
    assert abs(stats["pixel_fraction"]["Brain"] - expected_brain) < 1e-9  # equal-size images
    # 64 px phantoms: an OFD of 55-100 mm over ~40 px -> roughly 1.3-3.5 mm per pixel
    assert 1.0 < stats["pixel_size_mm"]["min"] <= stats["pixel_size_mm"]["max"] < 4.0


def test_inspect_cli_json_and_sheet(phantom_dir, tmp_path, capsys):
    sheet = tmp_path / "sheet.png"
    assert main(["data", "inspect", str(phantom_dir), "--json", "--sheet", str(sheet)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["class_ids_present"] == [0, 1, 2, 3]
    img = np.asarray(Image.open(sheet))
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[1] > img.shape[0]


def test_real_hc18_and_psfhs_counts(shared_datasets, capsys):
    assert main(["data", "inspect", str(shared_datasets / "hc18"), "--format", "hc18", "--json"]) == 0
    hc = json.loads(capsys.readouterr().out)
    # Follow the copy in ../shared (it grew from 741 to 871 images on 2026-12-01): one image per
    # CSV row, one subject per leading number, and the reader must see all of them.
    rows = (shared_datasets / "hc18" / "training_set_pixel_size_and_HC.csv").read_text().splitlines()[1:]
    assert hc["images"] == len(rows) >= 871
    assert hc["subjects"] == len({r.split("_")[0] for r in rows}) >= 703
    assert main(["data", "inspect", str(shared_datasets / "psfhs"), "--format", "psfhs", "--json"]) == 0
    ps = json.loads(capsys.readouterr().out)
    assert ps["images"] == 1056 and ps["class_ids_present"] == [0, 1, 2]
