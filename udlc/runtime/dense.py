"""Pictures in, pictures out (served kinds masks and pictures, udlc.tasks.dense), with onnxruntime, numpy and
Pillow only.

`udlc predict model.onnx pictures.npy` (a model trained on arrays) answers as every model of samples does: a CSV
row per picture, here its mask's class ids or its predicted picture's values, row by row (y0 … ). Given a picture file or a folder of
them, each is decoded at the size trained on (grey or RGB as the model reads; a model trained on a folder of
pictures reads pictures only, of any size: its graph resizes them) and its answer is written as a PNG in the
current folder — never beside the inputs, which may be a training folder — `<name>.mask.png` (each pixel's class id as its grey value, the convention masks are read in) or
`<name>.predicted.png` (the targets' range spread over 0..255); a folder's answers under `<folder>-predicted/`,
as its pictures are laid out. The CSV names the files written.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from udlc.data.layout import SUFFIXES
from udlc.errors import SpecError, UdlcError
from udlc.runtime.files import Opened
from udlc.runtime.pictures import is_picture_model, picture_paths
from udlc.runtime.predict import Model
from udlc.runtime.rows import refuse_id
from udlc.tasks.served import MASKS, PICTURES

SUFFIX = {MASKS: ".mask.png", PICTURES: ".predicted.png"}


class DenseModel(Model):
    """A segmentation model (a class per pixel) or an image-to-image one (a picture per picture)."""

    serves = (MASKS, PICTURES)
    reads = "a model of pictures that answers pictures"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        super().__init__(path, device)
        self.kind = MASKS if "mask" in [o.name for o in self.session.get_outputs()] else PICTURES
        self.answer = "mask" if self.kind == MASKS else self.answer  # the class ids, not their probabilities
        self.value_range = json.loads(self.meta.get("value_range") or "null")

    def answer_file(self, inputs: Path, id_column: str | None = None) -> str:
        """A CSV of answers for an array file; for pictures, their answers written as PNGs (the module's doc)."""
        if not (inputs.is_dir() or inputs.suffix.lower() in SUFFIXES):
            if is_picture_model(self.meta):
                raise UdlcError(f"{self.path} reads pictures (PNG, JPEG, …) or a folder of them, not {inputs.name}")
            return super().answer_file(inputs, id_column)
        from udlc.data.image_folder import decode

        refuse_id(id_column, inputs)
        # A model trained on a folder resizes any picture in its graph (udlc.exporter.picture_front); one trained
        # on arrays reads pictures of the size it was trained on.
        settings = json.loads(self.meta.get("pictures") or "null") or {}
        channels = settings.get("channels", self.input_shape[0])
        size = None if settings.get("resized_in_graph") else tuple(self.input_shape[1:])
        files = picture_paths(inputs)
        out_dir = Path(f"{inputs.name}-predicted") if inputs.is_dir() else Path(".")
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["file", "written"])
        for f in files:
            try:
                picture = decode(f, size, channels, "crop")  # (C, H, W), 0..255, as the training folder's were
            except SpecError as e:
                raise UdlcError(e.message) from None
            x = picture[None].astype(np.float32)
            out = self.session.run([self.answer], {self.input_name: x})[0][0] if size is None else \
                self.predict(x).values[0]  # predict checks the size trained on; the graph takes any
            name = f.relative_to(inputs) if f != inputs else Path(f.name)
            target = out_dir / name.with_name(name.stem + SUFFIX[self.kind])
            target.parent.mkdir(parents=True, exist_ok=True)
            self.to_image(out).save(target)
            w.writerow([str(name), str(target)])
        return buf.getvalue()

    def to_image(self, out: np.ndarray):
        """A mask (H, W) of class ids as a grey PNG of those ids; a picture (C, H, W) scaled from the targets'
        range to 0..255 (grey for one channel, RGB for three)."""
        from PIL import Image

        if self.kind == MASKS:
            return Image.fromarray(out.astype(np.uint8))
        low, high = self.value_range or (float(out.min()), float(out.max()))
        scaled = np.clip((out - low) / max(high - low, 1e-12) * 255 + 0.5, 0, 255).astype(np.uint8)
        if len(scaled) not in (1, 3):
            raise UdlcError(f"{self.path} answers pictures of {len(scaled)} channels: a PNG holds 1 (grey) or 3 (RGB) "
                            "— predict from an .npy of pictures for the values")
        return Image.fromarray(scaled[0] if len(scaled) == 1 else scaled.transpose(1, 2, 0))
