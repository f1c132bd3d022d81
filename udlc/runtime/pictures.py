"""`udlc predict MODEL.onnx picture.png` (or a folder of them): each picture decoded as the training folder's
were (grey or RGB, udlc.data.image_folder.decode), then classified by the ONNX graph, which resizes and crops
them as training's decoding did (udlc.exporter.picture_front) and standardizes them itself. numpy, Pillow and onnxruntime only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.data.image_folder import SUFFIXES, decode
from udlc.errors import SpecError, UdlcError
from udlc.runtime.predict import Model, Predictions, open_session


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


def predict_pictures(model_path: Path, path: Path, device: str = "cpu") -> str:
    """CSV: each picture's file, its class, and every class's probability. Each picture goes in at its own size
    (pictures of one size together): the graph resizes it as training's decoding did. A file exported before
    the graph resized reads pictures resized here instead."""
    meta = open_session(model_path, device)[1]
    settings = json.loads(meta["pictures"])
    size = None if settings.get("resized_in_graph") else tuple(settings["size"])
    files = picture_paths(path)
    try:
        pictures = [decode(f, size, settings["channels"], settings["resize"]) for f in files]
    except SpecError as e:
        raise UdlcError(e.message) from None
    model = Model(model_path, device=device)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, picture in enumerate(pictures):
        by_shape.setdefault(picture.shape, []).append(i)
    probabilities = np.zeros((len(files), len(model.classes or [])), np.float32)
    for rows in by_shape.values():
        probabilities[rows] = model.predict(np.stack([pictures[i] for i in rows]).astype(np.float32)).probabilities
    predictions = Predictions(model.task, probabilities.argmax(axis=1), probabilities, model.classes)
    names = [str(f.relative_to(path)) if f != path else f.name for f in files]
    return predictions.to_csv(names)
