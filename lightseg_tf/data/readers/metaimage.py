"""A small reader for 2-D MetaImage (.mha / .mhd) files: header, raw or zlib data."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from lightseg_tf.errors import LightsegError

TYPES = {"MET_UCHAR": np.uint8, "MET_CHAR": np.int8, "MET_USHORT": np.uint16, "MET_SHORT": np.int16,
         "MET_UINT": np.uint32, "MET_INT": np.int32, "MET_FLOAT": np.float32, "MET_DOUBLE": np.float64}


def read_mha(path: str | Path) -> np.ndarray:
    """Pixel array ``[H, W]`` or ``[H, W, channels]`` of a MetaImage file.

    Supports ``ElementDataFile = LOCAL`` (.mha) and a detached file (.mhd + .raw),
    ``CompressedData = True`` (zlib), ``ElementNumberOfChannels`` and byte order.
    A 3-D image with one slice is squeezed to 2-D.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise LightsegError(f"{path}: no such MetaImage file") from None
    header, pos = {}, 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise LightsegError(f"{path}: MetaImage header has no ElementDataFile line")
        line = blob[pos:end].decode("latin-1").strip()
        pos = end + 1
        if "=" in line:
            key, value = (s.strip() for s in line.split("=", 1))
            header[key] = value
            if key == "ElementDataFile":
                break
    try:
        dims = [int(v) for v in header["DimSize"].split()]
        dtype = np.dtype(TYPES[header["ElementType"]])
    except KeyError as exc:
        raise LightsegError(f"{path}: MetaImage header lacks or has an unknown {exc}") from None
    if header.get("BinaryDataByteOrderMSB", header.get("ElementByteOrderMSB", "False")).lower() == "true":
        dtype = dtype.newbyteorder(">")
    source = header["ElementDataFile"]
    data = blob[pos:] if source == "LOCAL" else (path.parent / source).read_bytes()
    if header.get("CompressedData", "False").lower() == "true":
        try:
            data = zlib.decompress(data)
        except zlib.error as exc:
            raise LightsegError(f"{path}: corrupt compressed MetaImage data ({exc})") from None
    channels = int(header.get("ElementNumberOfChannels", 1))
    count = int(np.prod(dims)) * channels
    if len(data) < count * dtype.itemsize:
        raise LightsegError(f"{path}: truncated MetaImage data ({len(data)} of {count * dtype.itemsize} bytes)")
    arr = np.frombuffer(data[:count * dtype.itemsize], dtype=dtype)
    shape = list(reversed(dims)) + ([channels] if channels > 1 else [])  # DimSize is x, y[, z]
    arr = arr.reshape(shape)
    if arr.ndim >= 3 and arr.shape[0] == 1 and len(dims) == 3:
        arr = arr[0]
    return arr.astype(dtype.newbyteorder("="))


def write_mha(path: str | Path, array: np.ndarray, compressed: bool = True) -> None:
    """Write a 2-D (optionally channels-last) array as .mha (used by tests and converters)."""
    inv = {np.dtype(v): k for k, v in TYPES.items()}
    arr = np.ascontiguousarray(array)
    channels = arr.shape[2] if arr.ndim == 3 else 1
    data = arr.tobytes()
    if compressed:
        data = zlib.compress(data)
    head = ["ObjectType = Image", "NDims = 2", f"DimSize = {arr.shape[1]} {arr.shape[0]}",
            f"ElementType = {inv[arr.dtype]}", f"ElementNumberOfChannels = {channels}",
            "BinaryData = True", "BinaryDataByteOrderMSB = False",
            f"CompressedData = {compressed}", "ElementDataFile = LOCAL"]
    Path(path).write_bytes(("\n".join(head) + "\n").encode() + data)
