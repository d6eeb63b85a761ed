"""Every reader on fixtures built here, plus the errors a user can hit."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightseg_tf.data.readers import read_dataset
from lightseg_tf.data.readers.colors import rle_decode
from lightseg_tf.data.readers.medsegbench import npz_split
from lightseg_tf.data.readers.metaimage import read_mha, write_mha
from lightseg_tf.errors import LightsegError


def _png(path: Path, array) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path)
    return path


def _ellipse(h=40, w=60, cx=30, cy=20, a=20, b=12):
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    return ((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2 <= 1


# ---------------------------------------------------------------- HC18

@pytest.fixture()
def hc18_dir(tmp_path):
    root = tmp_path / "hc18"
    ts = root / "training_set"
    filled = _ellipse()
    outline = filled & ~np.pad(filled, 1)[2:, 1:-1] | filled & ~np.pad(filled, 1)[:-2, 1:-1] \
        | filled & ~np.pad(filled, 1)[1:-1, 2:] | filled & ~np.pad(filled, 1)[1:-1, :-2]
    for name, ann in (("000_HC", outline), ("000_2HC", filled), ("001_HC", filled)):
        _png(ts / f"{name}.png", np.random.default_rng(0).integers(0, 255, (40, 60)))
        _png(ts / f"{name}_Annotation.png", np.repeat(ann[..., None] * 255, 3, axis=2))
    (root / "training_set_pixel_size_and_HC.csv").write_text(
        "filename,pixel size(mm),head circumference (mm)\n000_HC.png,0.1,10.5\n000_2HC.png,0.2,11\n001_HC.png,0.15,12\n")
    return root


def test_hc18_subjects_pixel_sizes_and_outline_filled(hc18_dir):
    ds = read_dataset(hc18_dir)
    assert ds.format == "hc18" and ds.classes == ("background", "head") and len(ds) == 3
    assert {r.id: r.subject for r in ds.records} == {"000_HC": "000", "000_2HC": "000", "001_HC": "001"}
    assert ds.record("000_2HC").pixel_size_mm == 0.2 and ds.record("001_HC").hc_mm == 12.0
    outline = ds.load_mask(ds.record("000_HC"))
    filled = ds.load_mask(ds.record("000_2HC"))
    assert set(np.unique(outline)) == {0, 1}
    np.testing.assert_array_equal(outline, filled)  # the outline was filled to the same head


def test_hc18_csv_row_without_image_is_an_error(hc18_dir):
    csv = hc18_dir / "training_set_pixel_size_and_HC.csv"
    csv.write_text(csv.read_text() + "002_HC.png,0.1,9\n")
    with pytest.raises(LightsegError, match=r"rows without an image.*002_HC\.png"):
        read_dataset(hc18_dir, "hc18")


# ---------------------------------------------------------------- PSFHS

def test_psfhs_png_and_mha_agree_and_blocks_group_ids(tmp_path):
    rng = np.random.default_rng(1)
    for i in (100, 101, 131, 132):
        img = rng.integers(0, 255, (16, 16), dtype=np.uint8)
        lab = rng.integers(0, 3, (16, 16), dtype=np.uint8)
        _png(tmp_path / "png/images" / f"{i:05d}.png", np.repeat(img[..., None], 3, 2))
        _png(tmp_path / "png/labels" / f"{i:05d}.png", lab)
        (tmp_path / "mha/image_mha").mkdir(parents=True, exist_ok=True)
        (tmp_path / "mha/label_mha").mkdir(parents=True, exist_ok=True)
        write_mha(tmp_path / "mha/image_mha" / f"{i:05d}.mha", np.repeat(img[..., None], 3, 2))
        write_mha(tmp_path / "mha/label_mha" / f"{i:05d}.mha", lab, compressed=False)
    png, mha = read_dataset(tmp_path / "png"), read_dataset(tmp_path / "mha")
    assert png.format == mha.format == "psfhs" and png.classes == ("background", "pubic symphysis", "fetal head")
    for a, b in zip(png.records, mha.records):
        np.testing.assert_array_equal(png.load_mask(a), mha.load_mask(b))
        np.testing.assert_allclose(png.load_image(a), mha.load_image(b), atol=1 / 255)
    assert [r.subject for r in png.records] == ["block0003", "block0003", "block0004", "block0004"]


def test_metaimage_truncated_is_an_error(tmp_path):
    write_mha(tmp_path / "x.mha", np.zeros((8, 8), np.uint8), compressed=False)
    blob = (tmp_path / "x.mha").read_bytes()
    (tmp_path / "x.mha").write_bytes(blob[:-10])
    with pytest.raises(LightsegError, match="truncated"):
        read_mha(tmp_path / "x.mha")


# ---------------------------------------------------------------- fetal head biometry (CVAT + COCO)

def _cvat_group(root: Path, name: str, csp_colour):
    g = root / name
    (g / "labelmap.txt").parent.mkdir(parents=True, exist_ok=True)
    (g / "labelmap.txt").write_text(
        "# label:color_rgb:parts:actions\nbackground:0,0,0::\nBrain:255,0,0::\n"
        f"CSP:{csp_colour[0]},{csp_colour[1]},{csp_colour[2]}::\nLV:0,0,255::\n")
    mask = np.zeros((20, 30, 3), np.uint8)
    mask[2:18, 2:28] = (255, 0, 0)
    mask[8:11, 10:14] = csp_colour
    mask[12:15, 18:22] = (0, 0, 255)
    _png(g / "SegmentationClass" / "img1.png", mask)
    _png(g / "JPEGImages" / "img1.png", np.full((20, 30), 90))
    return g


def test_cvat_classes_by_name_whatever_the_colour(tmp_path):
    _cvat_group(tmp_path, "Trans-ventricular", (255, 255, 0))  # yellow CSP
    _cvat_group(tmp_path, "Trans-thalamic", (0, 255, 0))  # green CSP
    ds = read_dataset(tmp_path)
    assert ds.format == "fetal-head-biometry" and ds.classes == ("background", "Brain", "CSP", "LV")
    assert {r.plane for r in ds.records} == {"Trans-ventricular", "Trans-thalamic"}
    for rec in ds.records:
        m = ds.load_mask(rec)
        assert m[9, 11] == 2 and m[13, 19] == 3 and m[5, 5] == 1 and m[0, 0] == 0


def test_unknown_colour_names_file_colour_and_labelmap(tmp_path):
    g = _cvat_group(tmp_path, "Diverse", (255, 255, 0))
    mask = np.asarray(Image.open(g / "SegmentationClass" / "img1.png")).copy()
    mask[1, 1] = (12, 34, 56)
    _png(g / "SegmentationClass" / "img1.png", mask)
    ds = read_dataset(tmp_path, "fetal-head-biometry")
    with pytest.raises(LightsegError) as err:
        ds.load_mask(ds.records[0])
    msg = str(err.value)
    assert "img1.png" in msg and "(12, 34, 56)" in msg and "labelmap.txt" in msg


def _rle_encode_compressed(mask: np.ndarray) -> str:
    """COCO's compressed RLE string (the reference algorithm), to build a fixture."""
    runs = _uncompressed(mask)
    out = []
    for i, x in enumerate(runs):
        if i > 2:
            x -= runs[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((c & 0x10 == 0 and x == 0) or (c & 0x10 and x == -1))
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def test_coco_polygons_and_rle(tmp_path):
    g = tmp_path / "Trans-cerebellum"
    _png(g / "images" / "scan7.png", np.full((20, 30), 80))
    brain = np.zeros((20, 30), bool)
    brain[2:18, 3:27] = True
    lv = np.zeros((20, 30), bool)
    lv[5:9, 6:10] = True
    coco = {
        "categories": [{"id": 1, "name": "Brain"}, {"id": 2, "name": "CSP"}, {"id": 3, "name": "LV"}],
        "images": [{"id": 1, "file_name": "scan7.png", "height": 20, "width": 30}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "area": 384,
             "segmentation": {"counts": _rle_encode_compressed(brain), "size": [20, 30]}},
            {"id": 2, "image_id": 1, "category_id": 2, "area": 12,
             "segmentation": [[12, 10, 16, 10, 16, 13, 12, 13]]},
            {"id": 3, "image_id": 1, "category_id": 3, "area": 16,
             "segmentation": {"counts": [int(x) for x in _uncompressed(lv)], "size": [20, 30]}},
        ],
    }
    (g / "annotations").mkdir(parents=True)
    (g / "annotations" / "instances_default.json").write_text(json.dumps(coco))
    (tmp_path / "pixel_sizes.csv").write_text("Label,Pixel in mm\nscan7.png,0.12\n")
    ds = read_dataset(tmp_path, "fetal-head-biometry")
    rec = ds.records[0]
    assert rec.id == "Trans-cerebellum/scan7" and rec.pixel_size_mm == 0.12
    m = ds.load_mask(rec)
    expected = np.where(brain, 1, 0)
    expected[10:13, 12:16] = 2  # polygon (12,10)-(16,13): pixel centres inside
    expected[lv] = 3
    np.testing.assert_array_equal(m, expected)


def _uncompressed(mask):
    """COCO's uncompressed RLE counts: alternating 0/1 runs, column-major, starting with 0s."""
    flat = mask.T.ravel().astype(bool)
    runs, value, count = [], False, 0
    for v in flat:
        if v != value:
            runs.append(count)
            count, value = 0, v
        count += 1
    runs.append(count)
    return runs


def test_rle_string_decoder_round_trip():
    m = np.random.default_rng(3).random((13, 17)) > 0.6
    np.testing.assert_array_equal(rle_decode(_rle_encode_compressed(m), 13, 17), m)


# ---------------------------------------------------------------- folder + generic errors

def test_folder_colour_masks_and_class_id_masks(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[2:8, 2:10] = (255, 0, 0)
    rgb[4:6, 4:6] = (0, 255, 0)
    _png(tmp_path / "c/images/a.png", np.full((10, 12), 50))
    _png(tmp_path / "c/masks/a.png", rgb)
    ds = read_dataset(tmp_path / "c")
    assert ds.format == "folder" and ds.classes == ("background", "Brain", "CSP", "LV")
    m = ds.load_mask(ds.records[0])
    assert m[5, 5] == 2 and m[3, 3] == 1 and m[0, 0] == 0
    ids = np.zeros((10, 12), np.uint8)
    ids[1:3, 1:3] = 2
    _png(tmp_path / "i/images/b.jpg", np.full((10, 12), 50))
    _png(tmp_path / "i/masks/b.png", ids)
    ds = read_dataset(tmp_path / "i", "folder")
    assert ds.classes == ("background", "class1", "class2")
    assert ds.load_mask(ds.records[0])[2, 2] == 2


def test_folder_errors(tmp_path):
    _png(tmp_path / "d/images/a.png", np.zeros((4, 4)))
    _png(tmp_path / "d/images/a.jpg", np.zeros((4, 4)))
    (tmp_path / "d/masks").mkdir()
    with pytest.raises(LightsegError, match="duplicate stem 'a'"):
        read_dataset(tmp_path / "d", "folder")
    _png(tmp_path / "s/images/a.png", np.zeros((4, 4)))
    _png(tmp_path / "s/masks/a.png", np.zeros((5, 4)))
    ds = read_dataset(tmp_path / "s", "folder", classes=["background", "x"])
    with pytest.raises(LightsegError, match=r"mask is 4x5 but image .*a\.png is 4x4"):
        ds.load_pair(ds.records[0])
    (tmp_path / "t/images").mkdir(parents=True)
    (tmp_path / "t/masks").mkdir()
    (tmp_path / "t/images/a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    _png(tmp_path / "t/masks/a.png", np.zeros((4, 4)))
    ds = read_dataset(tmp_path / "t", "folder", classes=["background", "x"])
    with pytest.raises(LightsegError, match=r"a\.png: cannot decode image"):
        ds.load_pair(ds.records[0])
    (tmp_path / "e/images").mkdir(parents=True)
    (tmp_path / "e/masks").mkdir()
    with pytest.raises(LightsegError, match="holds no images"):
        read_dataset(tmp_path / "e", "folder", classes=["background", "x"])
    with pytest.raises(LightsegError, match="cannot detect"):
        read_dataset(tmp_path / "e/images")


# ---------------------------------------------------------------- npz and DICOM

def test_medsegbench_npz_and_its_split(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{s}_images": rng.integers(0, 255, (n, 8, 8), dtype=np.uint8) for s, n in (("train", 5), ("val", 2), ("test", 3))}
    arrays.update({f"{s}_label": rng.integers(0, 4, (n, 8, 8), dtype=np.uint8) for s, n in (("train", 5), ("val", 2), ("test", 3))})
    np.savez(tmp_path / "abdomenus_256.npz", **arrays)
    ds = read_dataset(tmp_path / "abdomenus_256.npz")
    assert ds.format == "medsegbench-npz" and len(ds) == 10 and ds.num_classes == 4
    split = npz_split(ds)
    assert [len(split[k]) for k in ("train", "val", "test")] == [5, 2, 3]
    img, mask = ds.load_pair(ds.record("val/1"))
    np.testing.assert_allclose(img[..., 0], arrays["val_images"][1] / 255.0)
    np.testing.assert_array_equal(mask, arrays["val_label"][1])


def _dicom(path, **tags):
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.PatientID = "P1"
    ds.Rows, ds.Columns = 6, 8
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = (np.arange(48, dtype=np.uint8) * 5).tobytes()
    for k, v in tags.items():
        setattr(ds, k, v)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_pixel_size_from_spacing_regions_or_none(tmp_path, caplog):
    import pydicom

    region = pydicom.Dataset()
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.012
    _dicom(tmp_path / "a.dcm", PixelSpacing=[0.2, 0.2])
    _dicom(tmp_path / "b.dcm", SequenceOfUltrasoundRegions=[region])
    _dicom(tmp_path / "c.dcm")
    ds = read_dataset(tmp_path)
    assert ds.format == "dicom"
    sizes = {r.id: r.pixel_size_mm for r in ds.records}
    assert sizes["a"] == pytest.approx(0.2) and sizes["b"] == pytest.approx(0.12) and sizes["c"] is None
    assert "c.dcm: no pixel spacing" in caplog.text
    img = ds.load_image(ds.record("a"))
    assert img.shape == (6, 8, 1) and img[0, 1, 0] == pytest.approx(5 / 255)
