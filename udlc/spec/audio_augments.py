"""Waveform augmentations: for sound clips (`data.sample_rate`), whose samples are (channels, samples). Their configs;
udlc.spec.augments registers them with `audio_only`, so `udlc check` refuses them on other data at their line; their
implementations are in udlc.objectives.audio_augments. (`noise: {snr: [lo, hi]}` adds noise at a signal-to-noise
ratio and takes any data: it is the `noise` entry's.)

Every range is [smallest, largest], drawn uniformly per clip from the run's generator."""

from typing import Any, Literal

from pydantic import Field, PositiveFloat, PrivateAttr, field_validator

from udlc.errors import UdlcError
from udlc.spec.base import StrictModel


def _ordered(v: list[float]) -> list[float]:
    if v[0] > v[1]:
        raise ValueError(f"must be [smallest, largest] (got {list(v)})")
    return v


class Gain(StrictModel):
    """Scale each clip by a gain drawn from `db` (decibels: +6 dB doubles the amplitude)."""

    type: Literal["gain"] = "gain"
    db: list[float] = Field(min_length=2, max_length=2, description="[smallest, largest] gain in dB, e.g. [-6, 6]")

    @field_validator("db")
    @classmethod
    def _db_ordered(cls, v: list[float]) -> list[float]:
        return _ordered(v)


class TimeShift(StrictModel):
    """Move each clip later or earlier by up to `max` of its length (a share, 0..1), the emptied end filled
    with silence (or, `roll: true`, with what moved out)."""

    type: Literal["time_shift"] = "time_shift"
    max: float = Field(gt=0, le=1, description="the largest shift, as a share of the clip's length")
    roll: bool = Field(False, description="wrap what moves out of one end into the other instead of silence")


class PitchShift(StrictModel):
    """Shift each clip's pitch by a number of semitones drawn from `semitones`, its length kept: librosa's
    effects.pitch_shift (a phase-vocoder time stretch by 2^(-n/12), resampled back by FFT)."""

    type: Literal["pitch_shift"] = "pitch_shift"
    semitones: list[float] = Field(min_length=2, max_length=2, description="[lowest, highest], e.g. [-2, 2]")

    @field_validator("semitones")
    @classmethod
    def _semitones_ordered(cls, v: list[float]) -> list[float]:
        return _ordered(v)


class TimeStretch(StrictModel):
    """Play each clip faster (rate > 1) or slower, its pitch kept: librosa's effects.time_stretch (a phase
    vocoder, n_fft 2048, hop 512); the stretched clip is cut or padded with silence at its end to its length."""

    type: Literal["time_stretch"] = "time_stretch"
    rate: list[PositiveFloat] = Field(min_length=2, max_length=2, description="[slowest, fastest], e.g. [0.8, 1.25]")

    @field_validator("rate")
    @classmethod
    def _rate_ordered(cls, v: list[float]) -> list[float]:
        return _ordered(v)


class Background(StrictModel):
    """Mix into each clip a random stretch of a random clip from a folder of sounds (rain, street, chatter), at a
    signal-to-noise ratio drawn from `snr` (dB). The folder's clips (WAV, FLAC or OGG, in any subfolders) are
    decoded at the data's sample rate once, as the training clips are."""

    type: Literal["background"] = "background"
    source: str = Field(description="a folder of sound files, relative to the spec")
    snr: list[float] = Field([0.0, 20.0], min_length=2, max_length=2, description="[lowest, highest] SNR in dB")
    # The folder's clips, decoded when the data are loaded (udlc.data.audio.load_backgrounds): the spec alone
    # does not know where the spec's folder is, nor the sample rate and length to decode at.
    _bank: Any = PrivateAttr(None)

    def attach(self, bank: Any) -> None:
        self._bank = bank

    def bank(self) -> Any:
        if self._bank is None:
            raise UdlcError(f"background {self.source}: its clips were not loaded with the data (a bug in udlc)")
        return self._bank

    @field_validator("snr")
    @classmethod
    def _snr_ordered(cls, v: list[float]) -> list[float]:
        return _ordered(v)
