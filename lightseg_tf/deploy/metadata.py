"""TFLite Model Metadata: written into a ``.tflite`` and read back, without tflite-support.

TFLite Model Metadata is a second flatbuffer (schema ``metadata_schema.fbs`` of tflite-support,
file identifier ``M001``) stored in one of the model's buffers and named ``TFLITE_METADATA``
in ``Model.metadata``; the files it names (a labels file, ...) are a zip archive (stored, not
compressed) appended to the model. MediaPipe Tasks and the TFLite Task Library read both.
tflite-support, the maintained writer, needs ``protobuf<4`` and cannot install beside the
pinned TensorFlow, so this module writes the tables itself with the ``flatbuffers`` builder.

A metadata table is a plain dict here: ``{"name": ..., "subgraph_metadata": [{...}]}`` with the
schema's field names, enums by name (``"RGB"``, ``"TENSOR_AXIS_LABELS"``) and a union as a dict
with its member's name under ``"type"`` (``{"type": "ImageProperties", "color_space": "RGB"}``).
:func:`encode_metadata` / :func:`decode_metadata` convert such a dict to and from the metadata
flatbuffer; :func:`write_metadata` / :func:`read_metadata` / :func:`read_associated_files` put it
into and get it out of a model; :func:`segmenter_metadata` builds an image segmenter's from a
model card.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from lightseg_tf.errors import LightsegError

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MODEL_IDENTIFIER = b"TFL3"
# The oldest metadata parser that understands every field the tables below can hold.
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"

ASSOCIATED_FILE_TYPES = ("UNKNOWN", "DESCRIPTIONS", "TENSOR_AXIS_LABELS", "TENSOR_VALUE_LABELS",
                         "TENSOR_AXIS_SCORE_CALIBRATION", "VOCABULARY")
COLOR_SPACES = ("UNKNOWN", "RGB", "GRAYSCALE")
# Union members in schema order (the union's type byte is the index + 1).
CONTENT_PROPERTIES = ("FeatureProperties", "ImageProperties", "BoundingBoxProperties")
PROCESS_UNIT_OPTIONS = ("NormalizationOptions", "ScoreCalibrationOptions", "ScoreThresholdingOptions")

# The tables this module writes, fields in schema order (a field's vtable slot is its position;
# a union takes two slots: its type byte, then the table). Kinds: "str", "[str]", "[float]",
# "int", "uint", ("enum", names), ("union", members), a table name, or "[" table name "]".
SCHEMA: dict[str, list[tuple[str, object]]] = {
    "ModelMetadata": [("name", "str"), ("description", "str"), ("version", "str"),
                      ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "str"), ("license", "str"),
                      ("associated_files", "[AssociatedFile]"), ("min_parser_version", "str")],
    "SubGraphMetadata": [("name", "str"), ("description", "str"),
                         ("input_tensor_metadata", "[TensorMetadata]"),
                         ("output_tensor_metadata", "[TensorMetadata]"),
                         ("associated_files", "[AssociatedFile]")],
    "TensorMetadata": [("name", "str"), ("description", "str"), ("dimension_names", "[str]"),
                       ("content", "Content"), ("process_units", "[ProcessUnit]"), ("stats", "Stats"),
                       ("associated_files", "[AssociatedFile]")],
    "AssociatedFile": [("name", "str"), ("description", "str"), ("type", ("enum", ASSOCIATED_FILE_TYPES)),
                       ("locale", "str")],
    "Content": [("content_properties", ("union", CONTENT_PROPERTIES)), ("range", "ValueRange")],
    "FeatureProperties": [],
    "ImageProperties": [("color_space", ("enum", COLOR_SPACES)), ("default_size", "ImageSize")],
    "BoundingBoxProperties": [],  # not written here; named so that the union's numbering holds
    "ImageSize": [("width", "uint"), ("height", "uint")],
    "ValueRange": [("min", "int"), ("max", "int")],
    "ProcessUnit": [("options", ("union", PROCESS_UNIT_OPTIONS))],
    "NormalizationOptions": [("mean", "[float]"), ("std", "[float]")],
    "ScoreCalibrationOptions": [],
    "ScoreThresholdingOptions": [],
    "Stats": [("max", "[float]"), ("min", "[float]")],
}


def _slots(table: str):
    """``(field, kind, slot)`` of a table; a union's slot is its type byte's (the table is next)."""
    slot = 0
    for field, kind in SCHEMA[table]:
        yield field, kind, slot
        slot += 2 if isinstance(kind, tuple) and kind[0] == "union" else 1


# ----------------------------------------------------------------------------------- writing

def _offsets_vector(builder, offsets: list[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _build_table(builder, table: str, obj: dict) -> int:
    if table not in SCHEMA:
        raise LightsegError(f"metadata: unknown table {table!r}")
    unknown = set(obj) - {f for f, _ in SCHEMA[table]} - {"type"}
    if unknown:
        raise LightsegError(f"metadata: {table} has no field(s) {sorted(unknown)}")
    # Children (strings, vectors, tables) first: a flatbuffers table is built after them.
    children: dict[str, int] = {}
    for field, kind, _ in _slots(table):
        value = obj.get(field)
        if value is None or kind in ("int", "uint") or (isinstance(kind, tuple) and kind[0] == "enum"):
            continue
        if kind == "str":
            children[field] = builder.CreateString(str(value))
        elif kind == "[str]":
            children[field] = _offsets_vector(builder, [builder.CreateString(str(v)) for v in value])
        elif kind == "[float]":
            children[field] = builder.CreateNumpyVector(np.asarray(value, np.float32))
        elif isinstance(kind, tuple):  # union
            member = value.get("type")
            if member not in kind[1]:
                raise LightsegError(f"metadata: {table}.{field} must be one of {list(kind[1])}, got {member!r}")
            children[field] = _build_table(builder, member, {k: v for k, v in value.items() if k != "type"})
        elif kind.startswith("["):
            children[field] = _offsets_vector(builder, [_build_table(builder, kind[1:-1], v) for v in value])
        else:
            children[field] = _build_table(builder, kind, value)
    builder.StartObject(sum(2 if isinstance(k, tuple) and k[0] == "union" else 1 for _, k in SCHEMA[table]))
    for field, kind, slot in _slots(table):
        value = obj.get(field)
        if value is None:
            continue
        if kind == "int":
            builder.PrependInt32Slot(slot, int(value), 0)
        elif kind == "uint":
            builder.PrependUint32Slot(slot, int(value), 0)
        elif isinstance(kind, tuple) and kind[0] == "enum":
            if value not in kind[1]:
                raise LightsegError(f"metadata: {table}.{field} must be one of {list(kind[1])}, got {value!r}")
            builder.PrependInt8Slot(slot, kind[1].index(value), 0)
        elif isinstance(kind, tuple):  # union: type byte, then the table
            builder.PrependUint8Slot(slot, kind[1].index(value["type"]) + 1, 0)
            builder.PrependUOffsetTRelativeSlot(slot + 1, children[field], 0)
        else:
            builder.PrependUOffsetTRelativeSlot(slot, children[field], 0)
    return builder.EndObject()


def encode_metadata(metadata: dict) -> bytes:
    """A ``ModelMetadata`` dict as the metadata flatbuffer (identifier ``M001``).

    Every scalar given is written, zeros included, so :func:`decode_metadata` gives the dict back.
    """
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.ForceDefaults(True)
    root = _build_table(builder, "ModelMetadata", metadata)
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


# ----------------------------------------------------------------------------------- reading

def _read_table(tab, table: str) -> dict:
    from flatbuffers import number_types as nt

    out: dict = {}
    for field, kind, slot in _slots(table):
        o = tab.Offset(4 + 2 * slot)
        if not o:
            continue
        if kind == "str":
            out[field] = tab.String(o + tab.Pos).decode("utf-8")
        elif kind == "int":
            out[field] = int(tab.Get(nt.Int32Flags, o + tab.Pos))
        elif kind == "uint":
            out[field] = int(tab.Get(nt.Uint32Flags, o + tab.Pos))
        elif isinstance(kind, tuple) and kind[0] == "enum":
            index = int(tab.Get(nt.Int8Flags, o + tab.Pos))
            out[field] = kind[1][index] if 0 <= index < len(kind[1]) else index
        elif isinstance(kind, tuple):  # union
            index = int(tab.Get(nt.Uint8Flags, o + tab.Pos)) - 1
            value_o = tab.Offset(4 + 2 * (slot + 1))
            if not (0 <= index < len(kind[1])) or not value_o:
                continue
            out[field] = {"type": kind[1][index], **_read_table(_subtable(tab, tab.Indirect(value_o + tab.Pos)), kind[1][index])}
        elif kind.startswith("["):
            start, n = tab.Vector(o), tab.VectorLen(o)
            if kind == "[float]":
                out[field] = [float(tab.Get(nt.Float32Flags, start + 4 * i)) for i in range(n)]
            elif kind == "[str]":
                out[field] = [tab.String(start + 4 * i).decode("utf-8") for i in range(n)]
            else:
                out[field] = [_read_table(_subtable(tab, tab.Indirect(start + 4 * i)), kind[1:-1]) for i in range(n)]
        else:
            out[field] = _read_table(_subtable(tab, tab.Indirect(o + tab.Pos)), kind)
    return out


def _subtable(tab, pos: int):
    from flatbuffers.table import Table

    return Table(tab.Bytes, pos)


def decode_metadata(buf: bytes) -> dict:
    """The ``ModelMetadata`` dict of a metadata flatbuffer (fields absent from it are left out)."""
    import flatbuffers
    from flatbuffers.table import Table

    buf = bytearray(buf)
    if len(buf) < 8 or bytes(buf[4:8]) != FILE_IDENTIFIER:
        raise LightsegError(f"not a TFLite metadata flatbuffer (identifier {bytes(buf[4:8])!r}, "
                            f"expected {FILE_IDENTIFIER!r})")
    root = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
    return _read_table(Table(buf, root), "ModelMetadata")


# ------------------------------------------------------------------------- into / out of a model

def _model_bytes(model: bytes | str | Path) -> bytes:
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise LightsegError(f"{path}: no such model file")
        return path.read_bytes()
    return bytes(model)


def _unpack_model(content: bytes):
    from ai_edge_litert import schema_py_generated as fb

    buf = bytearray(content)
    if len(buf) < 8 or bytes(buf[4:8]) != MODEL_IDENTIFIER:
        raise LightsegError("not a TFLite model (flatbuffer identifier is not TFL3)")
    return fb, fb.Model.GetRootAs(buf, 0), buf


def _aligned_buffer_type(fb):
    """``BufferT`` whose data vector starts on a 16-byte boundary, as the converter writes it."""

    class AlignedBufferT(fb.BufferT):
        def Pack(self, builder):
            data = None
            if self.data is not None:
                raw = np.asarray(self.data, np.uint8).tobytes()
                builder.StartVector(1, len(raw), 16)
                builder.head = builder.head - len(raw)
                builder.Bytes[builder.head:builder.head + len(raw)] = raw
                data = builder.EndVector()
            fb.BufferStart(builder)
            if data is not None:
                fb.BufferAddData(builder, data)
            fb.BufferAddOffset(builder, self.offset)
            fb.BufferAddSize(builder, self.size)
            return fb.BufferEnd(builder)

    return AlignedBufferT


def write_metadata(model: bytes | str | Path, metadata: dict, files: dict[str, bytes] | None = None) -> bytes:
    """``model`` (bytes or path) with ``metadata`` as its TFLITE_METADATA buffer and ``files`` zipped behind.

    A metadata buffer the model had is replaced (and its old associated files dropped). Every
    associated file the metadata names must be in ``files``; they are stored uncompressed, as
    MediaPipe and the Task Library need to read them in place.

    Returns:
        The new .tflite bytes.
    """
    import flatbuffers

    content = _model_bytes(model)
    files = dict(files or {})
    named = sorted(_associated_file_names(metadata))
    missing = [n for n in named if n not in files]
    if missing:
        raise LightsegError(f"metadata names associated file(s) {missing} that were not given")
    fb, _, buf = _unpack_model(content)
    obj = fb.ModelT.InitFromPackedBuf(buf, 0)
    if any(b.offset > 1 for b in obj.buffers or []):
        raise LightsegError("model keeps its weights outside the flatbuffer (> 2 GB layout); not supported")
    aligned = _aligned_buffer_type(fb)
    for i, b in enumerate(obj.buffers):
        nb = aligned()
        nb.data, nb.offset, nb.size = b.data, b.offset, b.size
        obj.buffers[i] = nb
    entries = [m for m in (obj.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    meta_buffer = aligned()
    meta_buffer.data = np.frombuffer(encode_metadata({**metadata}), np.uint8)
    obj.buffers.append(meta_buffer)
    entry = fb.MetadataT()
    entry.name, entry.buffer = METADATA_NAME, len(obj.buffers) - 1
    obj.metadata = [*entries, entry]
    builder = flatbuffers.Builder(len(content) + 4096)
    builder.Finish(obj.Pack(builder), file_identifier=MODEL_IDENTIFIER)
    out = bytearray(builder.Output())
    if files:
        stream = io.BytesIO()
        stream.write(out)
        # Append mode on a non-zip stream adds the archive after the flatbuffer, its offsets
        # counted from the file's start (what the TFLite metadata populator writes).
        with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as zf:
            for name in sorted(files):
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # reproducible bytes
                zf.writestr(info, files[name])
        out = bytearray(stream.getvalue())
    return bytes(out)


def _associated_file_names(obj) -> set[str]:
    names = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "associated_files":
                names |= {f["name"] for f in value}
            else:
                names |= _associated_file_names(value)
    elif isinstance(obj, list):
        for value in obj:
            names |= _associated_file_names(value)
    return names


def read_metadata(model: bytes | str | Path) -> dict | None:
    """The ``ModelMetadata`` dict of a model (bytes or path); None when it has no TFLITE_METADATA."""
    _, root, _ = _unpack_model(_model_bytes(model))
    for i in range(root.MetadataLength()):
        entry = root.Metadata(i)
        if (entry.Name() or b"").decode() == METADATA_NAME:
            data = root.Buffers(entry.Buffer()).DataAsNumpy()
            if isinstance(data, int):  # flatbuffers returns 0 for an absent vector
                raise LightsegError("the TFLITE_METADATA buffer is empty")
            return decode_metadata(data.tobytes())
    return None


def read_associated_files(model: bytes | str | Path) -> dict[str, bytes]:
    """The files zipped behind a model (bytes or path), by name; empty when there are none."""
    content = _model_bytes(model)
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as zf:
            return {name: zf.read(name) for name in zf.namelist()}
    except zipfile.BadZipFile:
        return {}


# ------------------------------------------------------------------------ an image segmenter's

def segmenter_metadata(card: dict, *, input_scale: float | None = None,
                       description: str | None = None) -> tuple[dict, dict[str, bytes]]:
    """TFLite Model Metadata of an RGB image segmenter made from a lightseg model card.

    The input is an RGB image ``[1, S, S, 3]`` of raw uint8 pixels (ImageProperties RGB, S x S)
    with its NormalizationOptions in the schema's convention: the value is ``(pixel - mean) /
    std``, then quantized with the tensor's own parameters where it has them. So a quantized
    input that the graph reads with scale 1/255 (``input_scale``) has mean 0, std 255, and a
    plain uint8 input (the graph divides by 255 itself) mean 0, std 1; either way the host
    feeds raw RGB bytes (MediaPipe does so for any uint8 input). The single output
    ``probs [1, S, S, C]`` is a segmentation mask (ImageProperties GRAYSCALE over dimensions
    1-2, as tflite-support's image segmenter writer marks it) with the class names as its
    TENSOR_AXIS_LABELS file ``labels.txt`` (line k + 1 = channel k).

    Returns:
        ``(metadata dict, {"labels.txt": bytes})`` for :func:`write_metadata`.
    """
    size = int(card["input"]["size"])
    names = [c["name"] for c in card["classes"]]
    std = float(round(1.0 / input_scale, 3)) if input_scale else 1.0
    letterbox = card["input"].get("letterbox", "")
    default_description = (
        f"Fetal-ultrasound segmentation into {len(names)} classes ({', '.join(names)}), made by lightseg_tf "
        f"{card.get('lightseg_tf', '')} from model {card.get('name', '')} ({card.get('quantization', '')}). "
        f"Input: the letterboxed image, RGB {size}x{size}; the graph averages the channels to gray, as the "
        f"model was trained on gray images. Output: per-class probabilities; the category mask is their argmax.")
    metadata = {
        "name": card.get("name", "lightseg"),
        "description": description or default_description,
        "version": str(card.get("version", "1")),
        "author": card.get("author") or f"lightseg_tf {card.get('lightseg_tf', '')}".strip(),
        "license": card.get("license") or ("Apache-2.0 (lightseg_tf); the weights carry the terms of their "
                                           "training data (the model card's training_data)"),
        "subgraph_metadata": [{
            "name": "segmenter",
            "input_tensor_metadata": [{
                "name": "image",
                "description": (f"Letterboxed RGB image {size}x{size}, raw uint8 pixels (R = G = B for an "
                                f"ultrasound frame). Letterbox: {letterbox}").strip(),
                "content": {"content_properties": {"type": "ImageProperties", "color_space": "RGB",
                                                   "default_size": {"width": size, "height": size}}},
                "process_units": [{"options": {"type": "NormalizationOptions", "mean": [0.0], "std": [std]}}],
                "stats": {"max": [255.0], "min": [0.0]},
            }],
            "output_tensor_metadata": [{
                "name": "probs",
                "description": (f"Per-class probabilities [1, {size}, {size}, {len(names)}] (softmax); channel k "
                                f"is line k + 1 of {LABELS_FILE}; the category mask is their argmax."),
                "content": {"content_properties": {"type": "ImageProperties", "color_space": "GRAYSCALE"},
                            "range": {"min": 1, "max": 2}},
                "stats": {"max": [1.0], "min": [0.0]},
                "associated_files": [{"name": LABELS_FILE, "description": "class names, one per line",
                                      "type": "TENSOR_AXIS_LABELS"}],
            }],
        }],
        "min_parser_version": MIN_PARSER_VERSION,
    }
    return metadata, {LABELS_FILE: ("\n".join(names) + "\n").encode("utf-8")}
