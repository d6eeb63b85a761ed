"""Small file helpers shared by every stage: atomic writes and checked image reading."""

from __future__ import annotations

import contextlib
import csv
import glob
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from lightseg_tf.errors import LightsegError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or an exception inside the block leaves no partial file behind. The file gets the
    permissions a plain ``open()`` would give it (mkstemp's are owner-only, which would make
    exported models unreadable to a web server or another user).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files :func:`atomic_path` left beside ``path`` when a process writing
    it was killed; returns them."""
    path = Path(path)
    stale = list(path.parent.glob(f".{glob.escape(path.name)}.*.tmp")) if path.parent.is_dir() else []
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def staged_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder to write a command's outputs into; they move into ``out_dir`` (each by
    a rename) only when the block succeeds. On failure nothing new is left: the staging folder is
    deleted, and the folders this call created for ``out_dir``."""
    out = Path(out_dir)
    created = None if out.exists() else next(p for p in (*reversed(out.parents), out) if not p.exists())
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out))
    try:
        yield stage
        for item in sorted(stage.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def json_text(obj) -> str:
    """``obj`` as the indented JSON every file of the project is written in."""
    return json.dumps(obj, indent=2, sort_keys=False) + "\n"


def read_text_file(path: str | os.PathLike, what: str) -> str:
    """The UTF-8 text of a user's file (``what`` says which, e.g. "pixel-size CSV"), every failure a
    LightsegError naming the file."""
    path = Path(path)
    try:
        return path.read_bytes().decode("utf-8-sig")  # a spreadsheet's byte-order mark is not text
    except FileNotFoundError:
        raise LightsegError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise LightsegError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise LightsegError(f"{path}: the {what} is not UTF-8 text (byte {exc.start}: {exc.reason}); "
                            "save it as UTF-8") from None


def read_json_file(path: str | os.PathLike, what: str, missing: str | None = None):
    """The parsed JSON of a user's file, read as in :func:`read_text_file`; ``missing`` is the
    message (after the path) when the file does not exist."""
    path = Path(path)
    if missing is not None and not path.is_file():
        raise LightsegError(f"{path}: {missing}")
    try:
        return json.loads(read_text_file(path, what))
    except json.JSONDecodeError as exc:
        raise LightsegError(f"{path}: the {what} is not valid JSON ({exc})") from None


def read_csv(path: str | os.PathLike, what: str, dicts: bool = False) -> list:
    """Rows of a user's CSV file, read as in :func:`read_text_file`: lists of cells (header
    included) or, with ``dicts``, dicts keyed by the header (``csv.DictReader``)."""
    text = io.StringIO(read_text_file(path, what), newline="")
    try:
        return list(csv.DictReader(text) if dicts else csv.reader(text))
    except csv.Error as exc:
        raise LightsegError(f"{path}: the {what} is not valid CSV ({exc})") from None


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json_text(obj))


def write_csv_atomic(path: str | os.PathLike, rows: Iterable[dict], fieldnames: Sequence[str] | None = None,
                     ignore_extra: bool = False) -> None:
    """Write dict rows as CSV (header = ``fieldnames``, default the first row's keys) atomically.

    ``ignore_extra`` drops keys not in ``fieldnames`` instead of raising.
    """
    rows = list(rows)
    fields = list(fieldnames if fieldnames is not None else (rows[0] if rows else ()))
    buf = io.StringIO()
    if fields:
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n",
                           extrasaction="ignore" if ignore_extra else "raise")
        w.writeheader()
        w.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_png_atomic(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 ``[H, W]`` or ``[H, W, 3]`` array as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def read_pil(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file, turning every failure into a LightsegError."""
    path = Path(path)
    if not path.is_file():
        raise LightsegError(f"{path}: no such image file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except Image.DecompressionBombError as exc:
        raise LightsegError(f"{path}: refused as a possible decompression bomb ({exc}); "
                            "pass the scan itself, or a smaller export of it") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise LightsegError(
            f"{path}: cannot decode image ({exc}); the file is corrupt or truncated, replace it"
        ) from None


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Read an image as float32 ``[H, W, 1]`` in [0, 1] (RGB is averaged to gray).

    Ultrasound is grayscale; exports often store it as RGB with three equal channels.
    16-bit images are scaled by 65535.
    """
    im = read_pil(path)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32) / 65535.0
    else:
        arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    return arr[..., None]


def read_class_mask(path: str | os.PathLike, num_classes: int | None = None) -> np.ndarray:
    """Read a mask PNG that stores class ids as pixel values; returns int32 ``[H, W]``.

    An RGB mask is accepted only when its three channels are equal. Values outside
    ``[0, num_classes)`` are an error naming the file and the values.
    """
    im = read_pil(path)
    arr = np.asarray(im)
    if arr.ndim == 3:
        if arr.shape[2] == 4:
            arr = arr[..., :3]
        if not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])):
            raise LightsegError(
                f"{path}: mask has colours, not class ids; read it with a colour map "
                "(--format folder with a labelmap) instead"
            )
        arr = arr[..., 0]
    mask = arr.astype(np.int32)
    if num_classes is not None:
        bad = np.unique(mask[(mask < 0) | (mask >= num_classes)])
        if bad.size:
            raise LightsegError(
                f"{path}: mask values {bad[:8].tolist()} are outside the {num_classes} classes "
                f"0..{num_classes - 1}; fix the mask or the class list"
            )
    return mask
