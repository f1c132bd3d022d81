"""`udlc predict MODEL.onnx picture.png` (or a folder of them): each picture decoded as the training folder's
were (grey or RGB, udlc.data.image_folder.decode), then classified by the ONNX graph (udlc.runtime.predict.Model),
which resizes and crops them as training's decoding did (udlc.exporter.picture_front) and standardizes them
itself. numpy and Pillow only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.data.image_folder import decode
from udlc.data.layout import SUFFIXES
from udlc.errors import SpecError, UdlcError


def is_picture_model(meta: dict[str, str]) -> bool:
    return json.loads(meta.get("pictures") or "null") is not None


def picture_paths(path: Path) -> list[Path]:
    """A picture file, or every picture in a folder and its subfolders, in name order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UdlcError(f"no picture or folder at {path}")
    found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not found:
        raise UdlcError(f"{path} holds no pictures ({', '.join(SUFFIXES)})")
    return found


def read_pictures(meta: dict[str, str], path: Path) -> tuple[list[str], list[np.ndarray]]:
    """The picture at `path`, or every picture in that folder, each decoded at its own size (the graph resizes
    it as training's decoding did), with its name as the answers show it. A file exported before the graph
    resized reads pictures resized here instead."""
    settings = json.loads(meta["pictures"])
    size = None if settings.get("resized_in_graph") else tuple(settings["size"])
    files = picture_paths(path)
    try:
        pictures = [decode(f, size, settings["channels"], settings["resize"]) for f in files]
    except SpecError as e:
        raise UdlcError(e.message) from None
    return [str(f.relative_to(path)) if f != path else f.name for f in files], pictures
