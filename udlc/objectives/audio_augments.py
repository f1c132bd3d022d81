"""The waveform augmentations' implementations (configs: udlc.spec.audio_augments), on batches (B, channels,
samples) on the training device. As every augmentation, each draws its random numbers from the run's generator
only (on the generator's device, then moved), so a resumed run draws what the uninterrupted one did.

time_stretch and pitch_shift are librosa's definitions (effects.time_stretch, effects.pitch_shift with
res_type='fft') in torch: the phase vocoder of librosa.phase_vocoder, vectorized over frames (its running phase is
a cumulative sum), torch.stft/istft with librosa's window, centring and padding, and scipy.signal.resample's FFT
resampling. tests/test_audio_data.py holds them to librosa. torch is imported only when one runs.
"""

from __future__ import annotations

import math
from typing import Any

from udlc.spec.audio_augments import Background, Gain, PitchShift, TimeShift, TimeStretch

N_FFT, HOP = 2048, 512  # librosa's defaults for time_stretch and pitch_shift


def _rand(generator: Any, n: int, like: Any) -> Any:
    import torch

    return torch.rand(n, generator=generator, device=generator.device).to(like.device, like.dtype)


def _uniform(generator: Any, bounds: list[float], like: Any) -> Any:
    """One value per sample, uniform in [low, high]."""
    low, high = bounds
    return low + _rand(generator, like.shape[0], like) * (high - low)


def _clips(x: Any) -> Any:
    """(B, ..., samples) as (B, channels, samples): the last axis is time."""
    return x.reshape(x.shape[0], -1, x.shape[-1])


def _power(x: Any) -> Any:
    """Each sample's mean square, (B,)."""
    return x.reshape(x.shape[0], -1).pow(2).mean(dim=1)


def snr_scale(signal_power: Any, noise_power: Any, snr_db: Any) -> Any:
    """The factor that puts noise of `noise_power` at `snr_db` below a signal of `signal_power` (all (B,))."""
    return (signal_power / (noise_power.clamp_min(1e-12) * 10 ** (snr_db / 10))).sqrt()


def noise_at_snr(x: Any, snr: list[float], generator: Any) -> Any:
    """Gaussian noise at an SNR drawn per sample: the `noise` entry's `snr` form."""
    import torch

    noise = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device, x.dtype)
    scale = snr_scale(_power(x), _power(noise), _uniform(generator, snr, x))
    return x + noise * scale.view((-1,) + (1,) * (x.dim() - 1))


def _gain(x: Any, aug: Gain, generator: Any) -> Any:
    factor = 10 ** (_uniform(generator, aug.db, x) / 20)
    return x * factor.view((-1,) + (1,) * (x.dim() - 1))


def _time_shift(x: Any, aug: TimeShift, generator: Any) -> Any:
    import torch

    clips = _clips(x)
    b, c, n = clips.shape
    shift = torch.round((_rand(generator, b, x) * 2 - 1) * aug.max * n).long()  # later by `shift` samples
    source = torch.arange(n, device=x.device)[None, :] - shift[:, None]  # (B, n): where each sample comes from
    inside = (source >= 0) & (source < n)
    source = source % n  # rolled; silence replaces what wrapped unless `roll`
    moved = clips.gather(2, source[:, None, :].expand(b, c, n))
    if not aug.roll:
        moved = moved * inside[:, None, :].to(x.dtype)
    return moved.reshape(x.shape)


def phase_vocoder(stft: Any, rate: float, hop: int) -> Any:
    """librosa.phase_vocoder for one (..., bins, frames) complex STFT: frames read at steps of `rate`, magnitudes
    interpolated between neighbours and the phase advanced by each bin's measured frequency. librosa adds the
    advances frame by frame; their sum is a cumulative sum, so no loop."""
    import torch
    import torch.nn.functional as F

    bins, frames = stft.shape[-2:]
    real = stft.real.dtype
    steps = torch.arange(0, frames, rate, dtype=torch.float64, device=stft.device)
    padded = F.pad(stft, (0, 2))
    at = steps.floor().long()
    alpha = (steps - at).to(real)
    left, right = padded[..., at], padded[..., at + 1]
    magnitude = (1 - alpha) * left.abs() + alpha * right.abs()
    advance = torch.linspace(0, math.pi * hop, bins, dtype=real, device=stft.device)[:, None]
    dphase = right.angle() - left.angle() - advance
    dphase = dphase - 2 * math.pi * torch.round(dphase / (2 * math.pi))
    step = advance + dphase
    phase = stft[..., :1].angle() + torch.cumsum(step, dim=-1) - step  # the advances before each frame
    return torch.polar(magnitude, phase)


def stretch(y: Any, rate: float) -> Any:
    """librosa.effects.time_stretch of (channels, samples): round(samples / rate) samples, the pitch kept."""
    import torch

    window = torch.hann_window(N_FFT, dtype=y.dtype, device=y.device)  # periodic: scipy's get_window('hann')
    stft = torch.stft(y, N_FFT, HOP, window=window, center=True, pad_mode="constant", return_complex=True)
    vocoded = phase_vocoder(stft, rate, HOP)
    return torch.istft(vocoded, N_FFT, HOP, window=window, center=True, length=int(round(y.shape[-1] / rate)))


def fft_resample(y: Any, num: int) -> Any:
    """scipy.signal.resample of real (..., n) to `num` samples: the spectrum cut or padded with zeros, the
    Nyquist bin of an even length halved or doubled as scipy does."""
    import torch

    n = y.shape[-1]
    spectrum = torch.fft.rfft(y)
    out = torch.zeros(y.shape[:-1] + (num // 2 + 1,), dtype=spectrum.dtype, device=y.device)
    m = min(num, n)
    keep = m // 2 + 1
    out[..., :keep] = spectrum[..., :keep]
    if m % 2 == 0 and num != n:
        out[..., m // 2] *= 2.0 if num < n else 0.5
    return torch.fft.irfft(out, num) * (num / n)


def fix_length(y: Any, n: int) -> Any:
    """Cut at, or pad with silence to, n samples at the end (librosa.util.fix_length)."""
    import torch.nn.functional as F

    return y[..., :n] if y.shape[-1] >= n else F.pad(y, (0, n - y.shape[-1]))


def shift_pitch(y: Any, semitones: float) -> Any:
    """librosa.effects.pitch_shift(y, sr, n_steps=semitones, res_type='fft') of (channels, samples)."""
    rate = 2.0 ** (-semitones / 12)
    stretched = stretch(y, rate)
    # librosa resamples from sr / rate to sr: ratio sr / (sr / rate); sr cancels but for rounding, so take 1
    ratio = 1.0 / (1.0 / rate)
    return fix_length(fft_resample(stretched, int(math.ceil(stretched.shape[-1] * ratio))), y.shape[-1])


def _each_clip(x: Any, values: Any, change: Any) -> Any:
    """`change(clip, value)` for each sample's (channels, samples) with its own drawn value."""
    import torch

    clips = _clips(x)
    return torch.stack([change(clip, float(v)) for clip, v in zip(clips, values.tolist())]).reshape(x.shape)


def _time_stretch(x: Any, aug: TimeStretch, generator: Any) -> Any:
    rates = _uniform(generator, aug.rate, x)
    return _each_clip(x, rates, lambda clip, rate: fix_length(stretch(clip, rate), clip.shape[-1]))


def _pitch_shift(x: Any, aug: PitchShift, generator: Any) -> Any:
    return _each_clip(x, _uniform(generator, aug.semitones, x), shift_pitch)


def _background(x: Any, aug: Background, generator: Any) -> Any:
    """A stretch of a random background clip at each sample's own SNR. The clips are decoded by the data layer
    when it loads the sound clips (udlc.data.audio.load_backgrounds): one long array and where each clip starts."""
    import torch

    bank = aug.bank()
    clips = _clips(x)
    b, _, n = clips.shape
    data = torch.as_tensor(bank.samples).to(x.device, x.dtype)
    starts = torch.as_tensor(bank.starts).to(x.device)
    room = torch.as_tensor(bank.lengths - n + 1).to(x.device)  # the offsets a window of n samples can start at
    g = generator.device
    pick = torch.randint(0, len(bank.starts), (b,), generator=generator, device=g).to(x.device)
    offset = (torch.rand(b, generator=generator, device=g).to(x.device, torch.float64) * room[pick]).long()
    noise = data[(starts[pick] + offset)[:, None] + torch.arange(n, device=x.device)[None, :]]  # (B, n)
    scale = snr_scale(_power(clips), _power(noise), _uniform(generator, aug.snr, x))
    return (clips + (noise * scale[:, None])[:, None, :]).reshape(x.shape)


APPLY_AUDIO = {
    "gain": _gain,
    "time_shift": _time_shift,
    "pitch_shift": _pitch_shift,
    "time_stretch": _time_stretch,
    "background": _background,
}
