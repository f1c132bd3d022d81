"""What a friendly route's request uploads (udlc.runtime.http.friendly): a form's one file, a picture, a sound file,
a graph's .npz or its arrays as JSON — each read and bounded as `udlc predict` reads the file, its messages naming
the upload."""

from __future__ import annotations

import io
import json
from typing import Any, Callable

import numpy as np

from udlc.errors import SpecError, UdlcError
from udlc.runtime.audio import ClipTooLong, read_upload
from udlc.runtime.http.limits import HttpError, Limits, json_object, read_body, too_large
from udlc.runtime.http.models import Served
from udlc.runtime.predict import Predictions

GRAPH_ARRAYS = ("x", "edge_index", "batch", "edge_weight", "pairs")  # what a graph request's JSON may hold


class Upload(io.BytesIO):
    """An uploaded file, named by its file name in the messages of Pillow, decode and graph_file."""

    def __init__(self, data: bytes, name: str):
        super().__init__(data)
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return repr(self.name)


async def read_picture(request: Any, content_type: str, limits: Limits, meta: dict[str, str]
                       ) -> tuple[np.ndarray, str]:
    """The uploaded picture decoded as `udlc predict` decodes a picture file (udlc.runtime.pictures), and its
    name."""
    from PIL import Image

    from udlc.data.image_folder import decode

    if content_type == "multipart/form-data":
        data, name = await form_file(request, limits, "curl -F picture=@cat.png")
    elif content_type.startswith("image/") or content_type == "application/octet-stream":
        data, name = await read_body(request, limits), "(body)"
    else:
        raise HttpError(415, "send the picture as the body (Content-Type: image/png, …) or as a form's file "
                             "(curl -F picture=@cat.png)")
    upload = Upload(data, name)
    try:
        with Image.open(upload) as opened:  # reads the header only: the size before any pixel is decoded
            width, height = opened.size
    except Image.DecompressionBombError:
        raise too_large(f"the picture {name}", limits.pixels, "pixels", "--max-pixels",
                        "send a smaller picture") from None
    except Exception as e:  # Pillow's many ways of saying the bytes are no picture
        raise UdlcError(f"cannot read the picture {name}: {e}") from None
    if width * height > limits.pixels:
        raise too_large(f"the picture {name} ({width}×{height} pixels)", limits.pixels, "pixels", "--max-pixels",
                        "send a smaller picture")
    settings = json.loads(meta["pictures"])
    size = None if settings.get("resized_in_graph") else tuple(settings["size"])
    upload.seek(0)
    try:
        return decode(upload, size, settings["channels"], settings["resize"]), name  # type: ignore[arg-type]
    except SpecError as e:
        raise UdlcError(e.message) from None


def sound_answer(model: Served, data: bytes, name: str, limits: Limits) -> Callable[[], Predictions]:
    """The uploaded sound file decoded as `udlc predict` decodes a file (udlc.runtime.audio), on the worker thread:
    resampling a long clip takes a while. It may decode to as many values as a 16-bit WAV within the body's limit
    holds, so a small compressed file cannot unpack to an hour of sound."""
    most = limits.body_bytes // 2

    def run() -> Predictions:
        try:
            clip = read_upload(model.file.meta, data, name, most)
        except ClipTooLong as e:
            raise too_large(f"the sound file {name} ({e.seconds:.1f} s: {e.values:,} values decoded)", most,
                            "values (a 16-bit WAV of the body's limit)", "--max-body-mb",
                            "send a shorter clip") from None
        return model.reader.predict(clip)

    return run


async def form_file(request: Any, limits: Limits, example: str) -> tuple[bytes, str]:
    """The one file of a multipart form, read within the body's limit (`example`: how to send one)."""
    from starlette.datastructures import UploadFile
    from starlette.requests import Request

    body = await read_body(request, limits)

    async def replay() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay).form(max_files=1, max_fields=8)
    except Exception as e:  # a broken multipart body, or more than one file
        raise HttpError(400, f"cannot read the form: {getattr(e, 'detail', e)}") from None
    try:
        files = [v for v in form.values() if isinstance(v, UploadFile)]
        if not files:
            raise HttpError(400, f"the form holds no file — send one ({example})")
        return await files[0].read(), files[0].filename or "(form file)"
    finally:
        await form.close()


async def read_graph(request: Any, content_type: str, limits: Limits, pairs: bool
                     ) -> tuple[dict[str, np.ndarray], Any]:
    """A graph's arrays, from JSON lists or an uploaded .npz (the body, or a form's one file), and what names
    them in messages; sizes are checked here, the arrays themselves by the reader (udlc.runtime.nodes), as a
    file's are."""
    if content_type == "multipart/form-data":
        data, name = await form_file(request, limits, "curl -F graph=@graph.npz")
    else:
        data, name = await read_body(request, limits), "the uploaded graph"
    if data[:4] == b"PK\x03\x04" or content_type in ("application/octet-stream", "application/zip"):
        arrays, source = _npz(data, name, limits, pairs), name
    else:
        keys = '{"x": [[…], …], "edge_index": [[…], […]]' + (', "pairs": [[…], […]]}' if pairs else "}")
        arrays, source = _json_graph(json_object(data, keys), keys, pairs), "the graph"
    x = arrays["x"]
    if x.ndim and len(x) > limits.nodes:
        raise too_large(f"the graph ({len(x):,} nodes)", limits.nodes, "nodes", "--max-nodes")
    for key in ("edge_index", "pairs"):
        count = arrays[key].shape[-1] if key in arrays and arrays[key].ndim else 0
        if count > limits.edges:
            raise too_large(f"the graph's {key} ({count:,})", limits.edges, "edges", "--max-edges")
    return arrays, source


def _npz(data: bytes, name: str, limits: Limits, pairs: bool) -> dict[str, np.ndarray]:
    """An uploaded .npz read as `udlc predict` reads the file (udlc.data.node_files.graph_file, its messages
    naming the upload); a compressed one may unpack to no more than the body's limit."""
    import zipfile

    from udlc.data.node_files import graph_file

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as packed:
            unpacked = sum(info.file_size for info in packed.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        unpacked = 0  # not a zip: graph_file says so
    if unpacked > limits.body_bytes:
        raise too_large(f"{name} (unpacked: {unpacked:,} bytes)", limits.body_bytes, "bytes", "--max-body-mb")
    arrays = graph_file(Upload(data, name), ("x", "edge_index"))  # type: ignore[arg-type]
    if pairs and "pairs" not in arrays:
        graph_file(Upload(data, name), ("pairs",))  # type: ignore[arg-type]  # its message: no pairs
    return arrays


def _json_graph(body: dict[str, Any], keys: str, pairs: bool) -> dict[str, np.ndarray]:
    """A graph's arrays from JSON lists, typed as a file's would be: numbers of x as float32 (so a value beyond
    float32 is inf, and refused as the file's is), node ids as integers."""
    unknown = sorted(set(body) - set(GRAPH_ARRAYS))
    if unknown:
        raise HttpError(422, f"no array {unknown[0][:40]!r} — a graph holds {', '.join(GRAPH_ARRAYS)}")
    if "x" not in body or "edge_index" not in body or (pairs and "pairs" not in body):
        raise HttpError(400, f"send {keys}")
    arrays = {}
    for key, value in body.items():
        if not isinstance(value, list):
            raise HttpError(422, f"`{key}` is a list (of lists) of numbers, not {json.dumps(value)[:40]}")
        try:
            array = np.asarray(value)
        except (ValueError, TypeError, OverflowError, RecursionError):
            raise HttpError(422, f"`{key}` is not a rectangular list of numbers (its rows differ in length)") from None
        if array.dtype.kind == "O":
            raise HttpError(422, f"`{key}` holds a value that is no number (null, or a whole number beyond 64 bits)")
        if key in ("x", "edge_weight") and array.dtype.kind in "iuf":
            with np.errstate(over="ignore"):
                array = array.astype(np.float32)
        elif array.size == 0:
            array = array.astype(np.int64)  # [[], []]: no edges, or no pairs
        arrays[key] = array
    return arrays
