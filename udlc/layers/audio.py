"""Sound: spectrogram, mel_spectrogram, log_mel_spectrogram and mfcc (a waveform (channels, samples) in, a picture
(channels, bins, frames) out, so that a conv2d stack follows), and SpecAugment's time_mask and freq_mask.

The transforms follow librosa's definitions (librosa.stft, librosa.filters.mel with the Slaney scale and norm,
librosa.power_to_db, librosa.feature.mfcc's orthonormal DCT-II), which tests/test_audio_layers.py holds them to.
The mel scale needs the clip's sample rate: it is the layer's own `sample_rate` argument, written to match the
data's (`data.sample_rate`), because a layer's arguments are all a shape rule sees.

The mel scale's numbers are plain Python here, so that `udlc check` refuses a filter bank with empty filters
without numpy; the builder hands the filters' edges to the module (udlc.layers.modules.audio), so both use the same.
"""

import math
from typing import Literal

from pydantic import Field, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, model_validator

from udlc.layers.registry import ALL, EACH, LayerConfig, Shape, ShapeError, expect_rank, fmt, register


# ---- the mel scale, as librosa's hz_to_mel and mel_to_hz (Slaney's or HTK's)
# Slaney's is linear below 1 kHz and logarithmic above
_F_SP = 200.0 / 3  # Hz per mel on the linear part
_MIN_LOG_MEL = 1000.0 / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def hz_to_mel(f: float, htk: bool = False) -> float:
    if htk:
        return 2595.0 * math.log10(1.0 + f / 700.0)
    return _MIN_LOG_MEL + math.log(f / 1000.0) / _LOGSTEP if f >= 1000.0 else f / _F_SP


def mel_to_hz(m: float, htk: bool = False) -> float:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return 1000.0 * math.exp(_LOGSTEP * (m - _MIN_LOG_MEL)) if m >= _MIN_LOG_MEL else _F_SP * m


def mel_edges(n_mels: int, f_min: float, f_max: float, htk: bool) -> list[float]:
    """The n_mels + 2 frequencies (Hz) where the triangular filters start, peak and end, evenly spaced in mels."""
    low, high = hz_to_mel(f_min, htk), hz_to_mel(f_max, htk)
    step = (high - low) / (n_mels + 1)
    return [mel_to_hz(low + i * step, htk) for i in range(n_mels + 2)]


def empty_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float, htk: bool) -> list[int]:
    """The mel filters no frequency bin falls strictly inside (they would be all zeros): librosa warns of them,
    udlc refuses them. As librosa, a filter starting at 0 Hz is not counted."""
    edges, bins, empty = mel_edges(n_mels, f_min, f_max, htk), n_fft // 2 + 1, []
    for i in range(n_mels):
        first = math.floor(edges[i] * n_fft / sample_rate) + 1  # the first bin above the filter's start
        if edges[i] != 0 and not (first < bins and first * sample_rate / n_fft < edges[i + 2]):
            empty.append(i)
    return empty


class _Stft(LayerConfig):
    """The short-time Fourier transform's arguments (librosa's): frames of n_fft samples every hop_length samples,
    each weighted by a window of win_length samples centred in the frame. With `center`, the clip is padded by
    n_fft // 2 on both sides (`pad_mode`: reflect as torchaudio and librosa before 0.10, or constant zeros as
    librosa 0.10's default), so frame t is centred on sample t · hop_length."""

    n_fft: PositiveInt = Field(400, description="samples per frame (the DFT's length): n_fft // 2 + 1 frequency bins")
    hop_length: PositiveInt | None = Field(None, description="samples from one frame to the next (default "
                                           "win_length // 4, as librosa)")
    win_length: PositiveInt | None = Field(None, description="the window's length, at most n_fft (default n_fft)")
    window: Literal["hann", "hamming", "blackman", "rectangular"] = Field(
        "hann", description="the window, periodic as librosa's")
    center: bool = Field(True, description="pad n_fft // 2 samples on both sides, so frame t is centred on sample "
                         "t · hop_length: 1 + samples // hop_length frames (n_fft even)")
    pad_mode: Literal["reflect", "constant"] = Field("reflect", description="with center: the clip mirrored "
                                                     "(torchaudio's) or zeros (librosa 0.10's default)")

    @property
    def win(self) -> int:
        return self.win_length or self.n_fft

    @property
    def hop(self) -> int:
        return self.hop_length or max(self.win // 4, 1)

    @model_validator(mode="after")
    def _check_stft(self):
        if self.win > self.n_fft:
            raise ValueError(f"win_length {self.win} is longer than n_fft {self.n_fft}: the window must fit in a "
                             f"frame; use win_length <= {self.n_fft} or a larger n_fft")
        return self


class _Power(_Stft):
    power: PositiveFloat = Field(2.0, description="|X| ** power: 1 the magnitude, 2 the power")


class Spectrogram(_Power):
    """|STFT| ** power: (channels, samples) -> (channels, n_fft // 2 + 1, frames)."""

    type: Literal["spectrogram"] = "spectrogram"


class _Mel(_Stft):
    """A bank of n_mels triangular filters from f_min to f_max (default sample_rate / 2) over the STFT's bins:
    librosa.filters.mel (the Slaney mel scale and area norm by default; `htk: true`, `norm: null` for HTK's)."""

    sample_rate: PositiveInt = Field(description="the clips' sample rate (write data.sample_rate): the filters' "
                                     "frequencies depend on it")
    n_mels: PositiveInt = Field(128, description="mel bands: the output's rows")
    f_min: NonNegativeFloat = Field(0.0, description="the lowest filter's lower edge, in Hz")
    f_max: PositiveFloat | None = Field(None, description="the highest filter's upper edge, in Hz, at most "
                                        "sample_rate / 2 (the default)")
    htk: bool = Field(False, description="HTK's mel scale instead of Slaney's")
    norm: Literal["slaney"] | None = Field("slaney", description="slaney: each filter divided by its width in Hz "
                                           "(equal area); null: peaks of 1")

    @model_validator(mode="after")
    def _check_mel(self):
        nyquist, f_max = self.sample_rate / 2, self.f_max or self.sample_rate / 2
        if f_max > nyquist:
            raise ValueError(f"f_max {f_max:g} is above the Nyquist frequency {nyquist:g} (sample_rate "
                             f"{self.sample_rate} / 2), where a clip holds no sound; use f_max <= {nyquist:g}")
        if self.f_min >= f_max:
            raise ValueError(f"f_min {self.f_min:g} must be below f_max {f_max:g}")
        empty = empty_filters(self.sample_rate, self.n_fft, self.n_mels, self.f_min, f_max, self.htk)
        if empty:
            most = next(n for n in range(self.n_mels - 1, 0, -1)
                        if not empty_filters(self.sample_rate, self.n_fft, n, self.f_min, f_max, self.htk))
            raise ValueError(f"n_mels {self.n_mels} is too many for n_fft {self.n_fft}: {len(empty)} mel filters "
                             f"(the first: {empty[0]}) hold no frequency bin and would be all zeros; use n_mels <= "
                             f"{most}, or a larger n_fft")
        return self

    @property
    def top(self) -> float:
        return self.f_max or self.sample_rate / 2


class MelSpectrogram(_Mel):
    """The mel filter bank applied to |STFT| ** power: (channels, samples) -> (channels, n_mels, frames)."""

    type: Literal["mel_spectrogram"] = "mel_spectrogram"
    power: PositiveFloat = Field(2.0, description="|X| ** power before the filters: 1 the magnitude, 2 the power")


class LogMelSpectrogram(_Mel):
    """A mel spectrogram in decibels: (20 / power) · log10(max(S, amin)) with amin 1e-10 in power units, so power
    2 is librosa.power_to_db and power 1 librosa.amplitude_to_db (ref 1); with `top_db`, values more than top_db
    below the loudest of each sample are raised to that floor (per clip, as librosa's per call)."""

    type: Literal["log_mel_spectrogram"] = "log_mel_spectrogram"
    power: PositiveFloat = Field(2.0, description="|X| ** power before the filters: 1 the magnitude, 2 the power")
    top_db: PositiveFloat | None = Field(80.0, description="the floor, in dB below each clip's loudest value "
                                         "(null: none)")


class Mfcc(_Mel):
    """Mel-frequency cepstral coefficients as librosa.feature.mfcc: the orthonormal DCT-II of the log-mel power
    spectrogram (power 2, in dB with top_db), its first n_mfcc rows: (channels, samples) -> (channels, n_mfcc,
    frames)."""

    type: Literal["mfcc"] = "mfcc"
    n_mfcc: PositiveInt = Field(20, description="coefficients kept, at most n_mels: the output's rows")
    top_db: PositiveFloat | None = Field(80.0, description="the log-mel floor, in dB below each clip's loudest "
                                         "value (null: none)")

    @model_validator(mode="after")
    def _check_mfcc(self):
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc {self.n_mfcc} is more than n_mels {self.n_mels}: the DCT of n_mels values has "
                             f"n_mels coefficients; use n_mfcc <= {self.n_mels}")
        return self


Transform = Spectrogram | MelSpectrogram | LogMelSpectrogram | Mfcc


def bins(cfg: Transform) -> int:
    """The output's rows: frequency bins, mel bands or coefficients."""
    if isinstance(cfg, Spectrogram):
        return cfg.n_fft // 2 + 1
    return cfg.n_mfcc if isinstance(cfg, Mfcc) else cfg.n_mels


def transform_tensors(cfg: Transform, x: Shape) -> dict[str, tuple[int, ...]]:
    """The fixed bases the module saves as buffers: the DFT's cosines and sines, the mel bank, the DCT."""
    freqs = cfg.n_fft // 2 + 1
    tensors = {"basis": (2 * freqs, 1, cfg.n_fft)}
    if not isinstance(cfg, Spectrogram):
        tensors["mel"] = (cfg.n_mels, freqs)
    if isinstance(cfg, Mfcc):
        tensors["dct"] = (cfg.n_mfcc, cfg.n_mels)
    return tensors


def frames(cfg: Transform, x: Shape) -> int:
    expect_rank("", x, (2,), "a waveform (channels, samples)",
                "add `reshape: [1, -1]` before it" if len(x) == 1 else None)
    samples = x[1]
    if cfg.n_fft > samples:
        raise ShapeError(f"n_fft {cfg.n_fft} is longer than the input {fmt(x)}: a frame needs n_fft samples",
                         "use a smaller n_fft, or longer clips (data.duration); a length written as a symbol (T) is "
                         "checked at 32 samples: give the waveform a fixed length")
    padded = samples + 2 * (cfg.n_fft // 2) if cfg.center else samples
    return 1 + (padded - cfg.n_fft) // cfg.hop


def transform_shape(cfg: Transform, x: Shape) -> Shape:
    count = frames(cfg, x)
    return (x[0], bins(cfg), count)


def transform_flops(cfg: Transform, x: Shape) -> int:
    """The DFT against its cos/sin basis, the mel bank and the DCT: the matmuls (a multiply-add counts 2); the
    elementwise squares, logs and the top_db floor are a few operations per value, not counted, as torch does not."""
    n = x[0] * frames(cfg, x)
    count = 2 * n * cfg.n_fft * 2 * (cfg.n_fft // 2 + 1)
    if cfg.type != "spectrogram":
        count += 2 * n * cfg.n_mels * (cfg.n_fft // 2 + 1)
    if cfg.type == "mfcc":
        count += 2 * n * cfg.n_mfcc * cfg.n_mels
    return count


def build_transform(cfg: Transform, x: Shape):
    from udlc.layers.modules.audio import Spectrogram as Module

    edges = None if isinstance(cfg, Spectrogram) else mel_edges(cfg.n_mels, cfg.f_min, cfg.top, cfg.htk)
    return Module(cfg, edges)


# The registry's tests run a symbolic length (T) at sizes of their choice, down to 9 samples: those samples take
# hop 1, so that their frames (T - n_fft + 1, or T + 1 centred) have a name at every size.
_TONE = ((1, 1600),)
register(Spectrogram, shape=transform_shape, build=build_transform, flops=transform_flops, tensors=transform_tensors,
         main_arg="n_fft",
         samples=[({"n_fft": 64, "hop_length": 16}, _TONE),
                  ({"n_fft": 32, "hop_length": 8, "win_length": 24, "window": "hamming", "power": 1.0,
                    "pad_mode": "constant"}, ((2, 300),)),
                  ({"n_fft": 4, "hop_length": 1, "center": False, "window": "rectangular"}, ((1, "T"),)),
                  ({"n_fft": 8, "hop_length": 1}, ((1, "T"),))])
register(MelSpectrogram, shape=transform_shape, build=build_transform, flops=transform_flops, tensors=transform_tensors,
         main_arg="n_mels",
         samples=[({"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 20}, _TONE),
                  ({"sample_rate": 16000, "n_fft": 128, "n_mels": 8, "f_min": 100, "f_max": 6000, "htk": True,
                    "norm": None, "center": False, "window": "blackman", "power": 1.0}, ((2, 700),))])
register(LogMelSpectrogram, shape=transform_shape, build=build_transform, flops=transform_flops,
         tensors=transform_tensors, main_arg="n_mels",
         samples=[({"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 20}, _TONE),
                  ({"sample_rate": 16000, "n_fft": 200, "hop_length": 80, "n_mels": 16, "top_db": None,
                    "pad_mode": "constant"}, ((1, 900),))])
register(Mfcc, shape=transform_shape, build=build_transform, flops=transform_flops, tensors=transform_tensors,
         main_arg="n_mfcc",
         samples=[({"sample_rate": 8000, "n_fft": 256, "hop_length": 64, "n_mels": 20, "n_mfcc": 13}, _TONE),
                  ({"sample_rate": 16000, "n_fft": 200, "hop_length": 100, "n_mels": 24, "top_db": 60}, ((1, 1000),))])


# ---- SpecAugment (Park et al. 2019) ----------------------------------------------------------------------------


class _Mask(LayerConfig):
    """While training, `count` bands of 0 to max_width frames (time_mask) or bins (freq_mask), each of a width and
    start drawn uniformly for each sample, are set to the sample's mean (`fill: mean`, the paper's: zero in its
    normalized features) or to 0; the identity in evaluation, so an export leaves it out. Drawn from torch's
    generator, which a run seeds and its checkpoints keep, so a resumed run masks as the uninterrupted one."""

    max_width: NonNegativeInt = Field(10, description="the widest band, in frames or bins; each band's width is "
                                      "drawn from 0 to it")
    count: PositiveInt = Field(1, description="bands per sample (they may overlap)")
    fill: Literal["mean", "zero"] = Field("mean", description="what a band holds: the sample's mean, or 0")


class TimeMask(_Mask):
    type: Literal["time_mask"] = "time_mask"


class FreqMask(_Mask):
    type: Literal["freq_mask"] = "freq_mask"


def mask_shape(cfg: TimeMask | FreqMask, x: Shape) -> Shape:
    expect_rank("", x, (2, 3), "a spectrogram (channels, bins, frames) or (bins, frames)",
                "put it after a spectrogram layer")
    axis, what = (-1, "frames") if cfg.type == "time_mask" else (-2, "bins")
    if cfg.max_width > x[axis]:
        raise ShapeError(f"max_width {cfg.max_width} is wider than the input's {x[axis]} {what} {fmt(x)}",
                         f"use max_width <= {x[axis]}; SpecAugment masks a small part (a tenth or so)")
    return x


def build_mask(cfg: TimeMask | FreqMask, x: Shape):
    from udlc.layers.modules.audio import SpecMask

    return SpecMask(-1 if cfg.type == "time_mask" else -2, cfg.max_width, cfg.count, cfg.fill)


# No FLOPs: the identity at inference. A zero fill keeps each value or zeroes it (position by position, as dropout);
# the mean reads the whole sample.
for _config in (TimeMask, FreqMask):
    register(_config, shape=mask_shape, build=build_mask, main_arg="max_width",
             reads=lambda cfg: EACH if cfg.fill == "zero" else ALL,
             samples=[({"max_width": 3}, ((1, 8, 12),)), ({"max_width": 2, "count": 2, "fill": "zero"}, ((6, 9),))])
