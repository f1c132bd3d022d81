"""`udlc sample`: new samples from an exported generative model, with onnxruntime and numpy only.

A VAE's decoder (model.onnx) takes a latent and gives a sample in the data's own units (its graph undoes the
normalization); `sample` draws the latents from the prior N(0, I) with numpy's generator seeded by --seed,
runs the file once per batch, and writes the samples as an array (.npy) or a picture (.png: images in a
grid, 2-D points as a scatter plot).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.predict import BATCH, open_session

SAMPLERS = ("vae", "gan")  # the tasks whose model.onnx `udlc sample` reads


class SampleFile:
    """A generative model file: `sample(n, seed)` gives n samples in the data's units."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.session, meta = open_session(self.path, device)
        task = meta.get("task")
        if task not in SAMPLERS or "latent_shape" not in meta:
            raise UdlcError(f"{self.path} is no generative model (its task is {task or 'not recorded'}): "
                            f"`udlc sample` reads the model.onnx of a run of task {', '.join(SAMPLERS)}")
        if meta.get("network") == "encoder":
            raise UdlcError(f"{self.path} is a VAE's encoder; sample from the decoder beside it, model.onnx")
        self.task = task
        self.latent_shape = tuple(json.loads(meta["latent_shape"]))
        self.value_range = tuple(json.loads(meta["value_range"]))
        (self.input_name,) = json.loads(meta["input_names"])

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        latents = rng.standard_normal((n, *self.latent_shape), dtype=np.float32)
        parts = [self.session.run(None, {self.input_name: latents[i:i + BATCH]})[0] for i in range(0, n, BATCH)]
        return np.concatenate(parts)


def write_samples(samples: np.ndarray, output: Path, value_range: tuple[float, float] | None = None) -> Path:
    """.npy: the array as it is; .png: a picture (images in a grid, 2-D points as a scatter plot)."""
    suffix = output.suffix.lower()
    if suffix == ".npy":
        np.save(output, samples)
        return output
    if suffix != ".png":
        raise UdlcError(f"-o {output}: write samples to a .png (a picture) or a .npy (the array)")
    from udlc.data.images import save_picture

    try:
        return save_picture(samples, output, value_range)
    except ValueError as e:
        raise UdlcError(f"-o {output}: {e}") from None
