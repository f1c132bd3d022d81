"""`udlc sample`: new samples from an exported generative model, with onnxruntime and numpy only.

A VAE's decoder or a GAN's generator (model.onnx) takes a latent and gives a sample in the data's own units
(its graph undoes the normalization); `sample` draws the latents from N(0, I) with numpy's generator seeded
by --seed and runs the file once per batch. A diffusion model's file is its denoiser: `sample` runs the
sampler its metadata names (ddpm or ddim) around it in numpy, and un-normalizes the result. Samples are
written as an array (.npy) or a picture (.png: images in a grid, 2-D points as a scatter plot).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, damaged, opened
from udlc.runtime.predict import BATCH
from udlc.tasks.served import DENOISER, SAMPLES


class SampleFile:
    """A generative model file: `sample(n, seed)` gives n samples in the data's units. A VAE's decoder or a
    GAN's generator is one call on latents from N(0, I); a diffusion model's denoiser is called once per step
    of the sampler (udlc.tasks.diffusion_sampling, the same code training uses in torch)."""

    serves = (SAMPLES, DENOISER)
    reads = "a generative model (a VAE's decoder, a GAN's generator, a diffusion model's denoiser)"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        self.path, self.session, meta, self.kind = file.path, file.session, file.meta, file.kind
        try:
            self.latent_shape = tuple(json.loads(meta["latent_shape"]))
            self.value_range = tuple(json.loads(meta["value_range"]))
            self.input_names = json.loads(meta["input_names"])
            # A denoiser is run by the sampler its metadata names; a decoder once on latents.
            self.diffusion = json.loads(meta["diffusion"]) if self.kind.name == DENOISER else None
            if self.diffusion is not None:
                norm = json.loads(meta["normalization"])
                self.shift, self.scale = (np.asarray(norm[k], np.float32).reshape(norm["shape"])
                                          for k in ("shift", "scale"))
        except (KeyError, ValueError, TypeError) as e:
            raise damaged(self.path, e) from None

    @property
    def classes(self) -> int | None:
        """How many classes a class-conditional diffusion model takes (`label` 0..classes-1)."""
        return self.diffusion["null_label"] if self.diffusion else None

    def sample(self, n: int, seed: int = 0, label: int | None = None, steps: int | None = None,
               sampler: str | None = None) -> np.ndarray:
        """n samples. A class-conditional diffusion model gives class `label`, or every class in turn."""
        rng = np.random.default_rng(seed)
        if self.diffusion is None:
            if label is not None or steps is not None or sampler is not None:
                raise UdlcError(f"--class, --steps and --sampler are a diffusion model's; this file serves "
                                f"{self.kind.description}")
            latents = rng.standard_normal((n, *self.latent_shape), dtype=np.float32)
            parts = [self.session.run(None, {self.input_names[0]: latents[i:i + BATCH]})[0] for i in range(0, n, BATCH)]
            return np.concatenate(parts)
        return np.concatenate([self.diffuse(rng, min(BATCH, n - i), label, steps, sampler, first=i)
                               for i in range(0, n, BATCH)])

    def labels(self, n: int, label: int | None, first: int = 0) -> np.ndarray | None:
        classes = self.classes
        if classes is None:
            if label is not None:
                raise UdlcError("--class: this diffusion model is not class-conditional (it reads no label)")
            return None
        if label is not None and not 0 <= label < classes:
            raise UdlcError(f"--class {label}: the model knows classes 0 to {classes - 1}")
        ids = np.full(n, label) if label is not None else (np.arange(first, first + n) % classes)
        return ids.astype(np.int64).reshape(n, 1)

    def diffuse(self, rng: np.random.Generator, n: int, label: int | None, steps: int | None, sampler: str | None,
                first: int = 0) -> np.ndarray:
        from udlc.tasks.diffusion_sampling import alphas_cumprod, guided, sample, timesteps

        d = self.diffusion
        total, sampler = d["steps"], sampler or d["sampler"]
        visits = steps or d["sample_steps"]
        if not 1 <= visits <= total:
            raise UdlcError(f"--steps {visits}: the model has {total} noising steps; give 1 to {total}")
        labels = self.labels(n, label, first)
        null = None if labels is None else np.full_like(labels, self.classes)

        def run(x: np.ndarray, t: int, ids: np.ndarray | None) -> np.ndarray:
            named = {"x": x, "t": np.full((len(x), 1), float(t), np.float32), "label": ids}
            return self.session.run(None, {name: named[name] for name in self.input_names})[0]

        def denoise(x: np.ndarray, t: int) -> np.ndarray:
            eps = run(x, t, labels)
            if labels is None or d["guidance"] == 1.0:
                return eps
            return guided(eps, run(x, t, null), d["guidance"]).astype(np.float32)

        low, high = ((v - self.shift) / self.scale for v in self.value_range)
        x = rng.standard_normal((n, *self.latent_shape), dtype=np.float32)
        x = sample(x, denoise, alphas_cumprod(d["schedule"], total), sampler, timesteps(total, visits),
                   lambda x: rng.standard_normal(x.shape, dtype=np.float32),
                   lambda x0: np.clip(x0, low, high).astype(np.float32))
        return (x * self.scale + self.shift).astype(np.float32)


def check_output(output: Path) -> None:
    if output.suffix.lower() not in (".npy", ".png"):
        raise UdlcError(f"-o {output}: write samples to a .png (a picture) or a .npy (the array)")


def write_samples(samples: np.ndarray, output: Path, value_range: tuple[float, float] | None = None,
                  columns: int | None = None) -> Path:
    """.npy: the array as it is; .png: a picture (images in a grid, 2-D points as a scatter plot)."""
    check_output(output)
    if output.suffix.lower() == ".npy":
        np.save(output, samples)
        return output
    from udlc.data.images import save_picture

    try:
        return save_picture(samples, output, value_range, columns=columns)
    except ValueError as e:
        raise UdlcError(f"-o {output}: {e}") from None
