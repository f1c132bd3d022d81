"""How to compute a spectrogram inside an exported model: onnxruntime's time per batch for the ways the DFT can be
written in torch and exported at opset 18, each checked against librosa first:

    conv    the DFT as a strided convolution against the windowed cos/sin basis (what udlc ships:
            udlc.layers.modules.audio.Spectrogram) -> Pad, Conv
    matmul  the same basis as a matrix: the frames cut by unfold, then one MatMul
    stft    torch.stft -> ONNX's STFT operator, then the magnitude

for a log-mel spectrogram (n_mels 64) of 1 s clips at 16 kHz, at a few n_fft and batch sizes; the time is the
median of --runs calls of session.run on one thread and on all of them.

    .venv/bin/python bench/spectrogram_speed.py [--runs 30]

A benchmark: it prints figures and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import librosa
import numpy as np
import onnxruntime as ort
import torch
from torch.nn import functional as F

from udlc.layers import REGISTRY
from udlc.layers.audio import mel_edges
from udlc.layers.modules.audio import Spectrogram, window

RATE, SECONDS, MELS = 16000, 1.0, 64


class Unfolded(Spectrogram):
    """The frames cut out by unfold, then one matmul against the basis as an (n_fft, 2 · bins) matrix."""

    def forward(self, x):
        batch, channels = x.shape[0], x.shape[1]
        x = F.pad(x.reshape(batch * channels, 1, x.shape[-1]), (self.pad, self.pad), mode=self.pad_mode)
        frames = x[:, 0].unfold(-1, self.n_fft, self.hop)  # (batch, frames, n_fft)
        spec = torch.matmul(frames, self.basis[:, 0].T).transpose(1, 2)
        return self.finish(spec, batch, channels)

    def finish(self, spec, batch, channels):
        power = spec[:, :self.bins] ** 2 + spec[:, self.bins:] ** 2
        db = self.decibels(torch.matmul(self.mel, power).reshape(batch, channels, self.mel.shape[0], -1))
        return db


class Stft(Unfolded):
    """torch.stft (exported as ONNX's STFT), with the window as the shipped module pads it."""

    def __init__(self, cfg, edges):
        super().__init__(cfg, edges)
        self.register_buffer("win", window(cfg.window, cfg.win, cfg.n_fft).float())

    def forward(self, x):
        batch, channels = x.shape[0], x.shape[1]
        x = F.pad(x.reshape(batch * channels, 1, x.shape[-1]), (self.pad, self.pad), mode=self.pad_mode)[:, 0]
        spec = torch.stft(x, self.n_fft, self.hop, window=self.win, center=False, return_complex=False)
        return self.finish(torch.cat([spec[..., 0], spec[..., 1]], dim=1), batch, channels)


def export(module: torch.nn.Module, path: Path, samples: int) -> ort.InferenceSession | str:
    x = torch.randn(2, 1, samples)
    batch = torch.export.Dim("batch", min=1, max=1024)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module.eval(), (x,), dynamo=True, opset_version=18, dynamic_shapes=({0: batch},),
                              verbose=False, report=False).save(str(path))
    except Exception as e:  # an exporter that cannot write this way: say so in the table
        return f"export failed: {type(e).__name__}"
    return path


def timed(path: Path, x: np.ndarray, threads: int, runs: int) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.getLogger("torch").setLevel(logging.ERROR)  # the exporter's notes on optional operator sets
    samples = int(RATE * SECONDS)
    rng = np.random.default_rng(0)
    lt = REGISTRY["log_mel_spectrogram"]
    print(f"log-mel spectrogram of {SECONDS:g} s at {RATE} Hz, {MELS} mels; onnxruntime {ort.__version__}, "
          f"ms per batch (median of {args.runs}); error: the largest difference from librosa, in dB")
    print(f"{'n_fft':>5} {'hop':>4} {'batch':>5}  {'way':<7} {'error':>8} {'1 thread':>9} {'all':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n_fft, hop in ((400, 160), (512, 128), (1024, 256)):
            cfg = lt.config.model_validate({"sample_rate": RATE, "n_fft": n_fft, "hop_length": hop, "n_mels": MELS,
                                            "top_db": None})
            clip = rng.standard_normal(samples).astype(np.float32)
            reference = librosa.power_to_db(librosa.feature.melspectrogram(
                y=clip, sr=RATE, n_fft=n_fft, hop_length=hop, n_mels=MELS, pad_mode="reflect"), top_db=None)
            for way, cls in (("conv", Spectrogram), ("matmul", Unfolded), ("stft", Stft)):
                module = cls(cfg, mel_edges(MELS, 0.0, RATE / 2, False))
                path = export(module, Path(tmp) / f"{way}-{n_fft}.onnx", samples)
                if isinstance(path, str):
                    print(f"{n_fft:>5} {hop:>4} {'':>5}  {way:<7} {path}")
                    continue
                session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                got = session.run(None, {session.get_inputs()[0].name: clip[None, None]})[0][0, 0]
                error = float(np.abs(got - reference).max())
                for batch in (1, 32):
                    x = rng.standard_normal((batch, 1, samples)).astype(np.float32)
                    one, every = timed(path, x, 1, args.runs), timed(path, x, 0, args.runs)
                    print(f"{n_fft:>5} {hop:>4} {batch:>5}  {way:<7} {error:>8.1e} {one:>9.2f} {every:>8.2f}")


if __name__ == "__main__":
    main()
