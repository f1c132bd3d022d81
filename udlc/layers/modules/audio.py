"""The modules of the sound layers (udlc.layers.audio): the spectrograms and SpecAugment's masks.

The DFT is a strided convolution whose kernels are the window times cos and sin at each bin's frequency: the
matmul of every frame against a fixed basis, done by ONNX's Conv. It exports to opset 18 as plain Gather (or Pad),
Conv, MatMul and elementwise nodes that any runtime runs, and measured faster in onnxruntime than torch.stft exported as
ONNX's STFT (bench/spectrogram_speed.py prints both).
"""

import math

import torch
from torch import nn
from torch.nn import functional as F



def window(name: str, win_length: int, n_fft: int) -> torch.Tensor:
    """A periodic window (scipy's get_window with fftbins, as librosa takes it), zero-padded to n_fft on both
    sides as librosa's pad_center: the frame's centre stays the window's centre."""
    if name == "rectangular":
        w = torch.ones(win_length, dtype=torch.float64)
    else:
        w = getattr(torch, f"{name}_window")(win_length, periodic=True, dtype=torch.float64)
    left = (n_fft - win_length) // 2
    return F.pad(w, (left, n_fft - win_length - left))


def dft_basis(name: str, win_length: int, n_fft: int) -> torch.Tensor:
    """(2 · bins, 1, n_fft) kernels: the windowed cosines (the real part) then the windowed negative sines (the
    imaginary part) of bins 0 .. n_fft // 2, so a frame's convolution with them is its DFT as numpy.fft.rfft's."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    # (k · n) mod n_fft first: the angle stays below 2π, exact in float64 however large n_fft is
    angle = 2 * math.pi * torch.remainder(k[:, None] * n[None, :], n_fft) / n_fft
    w = window(name, win_length, n_fft)
    return torch.cat([torch.cos(angle) * w, -torch.sin(angle) * w]).unsqueeze(1)


def mel_bank(sample_rate: int, n_fft: int, edges: list[float], norm: str | None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters, as librosa.filters.mel, from the n_mels + 2 edges in Hz
    (udlc.layers.audio.mel_edges): filter i rises from edge i to edge i + 1 and falls to edge i + 2; the Slaney norm
    divides each by its width in Hz (2 / (edge i+2 - edge i))."""
    edges = torch.tensor(edges, dtype=torch.float64)
    freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64) * sample_rate / n_fft
    widths = edges[1:] - edges[:-1]
    rising = (freqs[None, :] - edges[:-2, None]) / widths[:-1, None]
    falling = (edges[2:, None] - freqs[None, :]) / widths[1:, None]
    bank = torch.clamp(torch.minimum(rising, falling), min=0)
    return bank * (2.0 / (edges[2:] - edges[:-2]))[:, None] if norm == "slaney" else bank


def dct_basis(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """(n_mfcc, n_mels): the first rows of the orthonormal DCT-II (scipy.fft.dct's type 2, norm 'ortho')."""
    k = torch.arange(n_mfcc, dtype=torch.float64)[:, None]
    n = torch.arange(n_mels, dtype=torch.float64)[None, :]
    basis = torch.cos(math.pi * k * (2 * n + 1) / (2 * n_mels)) * math.sqrt(2.0 / n_mels)
    basis[0] /= math.sqrt(2.0)
    return basis


def reflected(length, pad: int, device) -> torch.Tensor:
    """The indices of a clip of `length` samples padded by `pad` on both sides, mirrored at its ends without
    repeating them (numpy's and F.pad's reflect). Written as arithmetic rather than F.pad: torch.export then
    asks nothing of a symbolic length, where F.pad's reflect demands length > pad, which the smallest size an
    export gives the symbol need not meet."""
    at = torch.arange(-pad, length + pad, device=device).abs()
    return (length - 1) - ((length - 1) - at).abs()


AMIN = 1e-10  # librosa.power_to_db's floor, in power units


class Spectrogram(nn.Module):
    """(batch, channels, samples) -> (batch, channels, rows, frames): |STFT| ** power, then (by the config's type)
    the mel bank (from the filters' `edges` in Hz), decibels with a top_db floor, and the DCT. Every basis is a
    buffer: nothing here is trained."""

    def __init__(self, cfg, edges: list[float] | None = None):
        super().__init__()
        self.kind, self.n_fft, self.hop = cfg.type, cfg.n_fft, cfg.hop
        self.pad = cfg.n_fft // 2 if cfg.center else 0
        self.pad_mode = cfg.pad_mode
        self.power = getattr(cfg, "power", 2.0)
        self.top_db = getattr(cfg, "top_db", None)
        self.bins = cfg.n_fft // 2 + 1
        self.register_buffer("basis", dft_basis(cfg.window, cfg.win, cfg.n_fft).float())
        if self.kind != "spectrogram":
            bank = mel_bank(cfg.sample_rate, cfg.n_fft, edges, cfg.norm)
            self.register_buffer("mel", bank.float())
        if self.kind == "mfcc":
            self.register_buffer("dct", dct_basis(cfg.n_mfcc, cfg.n_mels).float())

    def forward(self, x):
        batch, channels = x.shape[0], x.shape[1]
        x = x.reshape(batch * channels, 1, x.shape[-1])
        if self.pad and self.pad_mode == "reflect":
            x = x[..., reflected(x.shape[-1], self.pad, x.device)]
        elif self.pad:
            x = F.pad(x, (self.pad, self.pad))
        spec = F.conv1d(x, self.basis, stride=self.hop)  # (batch · channels, 2 · bins, frames)
        real, imag = spec[:, :self.bins], spec[:, self.bins:]
        out = real * real + imag * imag
        if self.power != 2.0:
            out = out ** (self.power / 2)
        if self.kind != "spectrogram":
            out = torch.matmul(self.mel, out)
        if self.kind in ("log_mel_spectrogram", "mfcc"):
            out = self.decibels(out.reshape(batch, channels, out.shape[1], out.shape[2]))
            out = out.reshape(batch * channels, out.shape[2], out.shape[3])
        if self.kind == "mfcc":
            out = torch.matmul(self.dct, out)
        return out.reshape(batch, channels, out.shape[1], out.shape[2])

    def decibels(self, s):
        """(20 / power) · log10 of s, floored at AMIN in power units and at top_db below each sample's loudest."""
        power = self.power if self.kind == "log_mel_spectrogram" else 2.0
        floor = AMIN ** (power / 2)
        db = (20.0 / power) * torch.log10(torch.clamp(s, min=floor))
        if self.top_db is not None:
            db = torch.maximum(db, db.amax(dim=(1, 2, 3), keepdim=True) - self.top_db)
        return db

    def extra_repr(self) -> str:
        return f"{self.kind}, n_fft={self.n_fft}, hop={self.hop}, power={self.power}"


class SpecMask(nn.Module):
    """SpecAugment's time or frequency masking (udlc.layers.audio.TimeMask, FreqMask): in training, `count` bands
    along `axis` (-1 frames, -2 bins) per sample, each of a width uniform in 0 .. max_width and a start uniform over
    the places it fits, filled with the sample's mean or 0; the identity in evaluation."""

    def __init__(self, axis: int, max_width: int, count: int, fill: str):
        super().__init__()
        self.axis, self.max_width, self.count, self.fill = axis, max_width, count, fill

    def forward(self, x):
        if not self.training or self.max_width == 0:
            return x
        batch, size = x.shape[0], x.shape[self.axis]
        # torch's default generator on x's device: the run seeds it and its checkpoints keep its state
        width = torch.randint(0, self.max_width + 1, (batch, self.count, 1), device=x.device)
        start = (torch.rand(batch, self.count, 1, device=x.device) * (size - width + 1)).floor()
        at = torch.arange(size, device=x.device)
        masked = ((at >= start) & (at < start + width)).any(dim=1)  # (batch, size)
        shape = [batch] + [1] * (x.dim() - 1)
        shape[self.axis] = size
        masked = masked.reshape(shape)
        fill = x.mean(dim=tuple(range(1, x.dim())), keepdim=True) if self.fill == "mean" else torch.zeros_like(x)
        return torch.where(masked, fill, x)

    def extra_repr(self) -> str:
        return f"axis={self.axis}, max_width={self.max_width}, count={self.count}, fill={self.fill}"
