"""The waveform augmentations (udlc.objectives.audio_augments), each held to its reference: librosa for time_stretch
and pitch_shift, the SNR and gain measured by hand; all draw from the run's generator alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from udlc.spec.augments import AUDIO_AUGMENTS, AUGMENTS
from udlc.spec.data import DataSpec


def _aug(form):
    return DataSpec.model_validate({"source": "clips/", "sample_rate": 8000, "duration": 0.5, "augment": [form]}
                                   ).augment[0]


def _apply(form, x: torch.Tensor, seed: int = 7) -> torch.Tensor:
    from udlc.data import augment_batch

    return augment_batch(x, [form if not isinstance(form, (str, dict)) else _aug(form)],
                         torch.Generator().manual_seed(seed))


def _tone(pitch: float, rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * pitch * np.arange(int(rate * seconds)) / rate)


def _peak(y: np.ndarray, rate: int = 16000) -> float:
    return float(np.fft.rfftfreq(len(y), 1 / rate)[np.abs(np.fft.rfft(y * np.hanning(len(y)))).argmax()])


def test_time_stretch_keeps_a_tones_pitch_and_pitch_shift_its_length() -> None:
    from udlc.objectives.audio_augments import shift_pitch, stretch

    y = torch.tensor(_tone(440))[None]
    for rate in (0.8, 1.25):
        stretched = stretch(y, rate)[0].numpy()
        assert len(stretched) == round(16000 / rate) and _peak(stretched) == pytest.approx(440, abs=2)
    for semitones in (-3.0, 2.5):
        shifted = shift_pitch(y, semitones)[0].numpy()
        assert len(shifted) == 16000 and _peak(shifted) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


@pytest.mark.long  # importing librosa's effects takes seconds
@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_is_librosas(rate: float) -> None:
    import librosa

    from udlc.objectives.audio_augments import stretch

    y = _tone(440) + 0.1 * np.random.default_rng(0).standard_normal(16000)
    got = stretch(torch.tensor(y)[None], rate)[0].numpy()
    np.testing.assert_allclose(got, librosa.effects.time_stretch(y, rate=rate), atol=1e-9)  # float64: exact
    y32 = y.astype(np.float32)  # float32: the running phase is summed in another order
    np.testing.assert_allclose(stretch(torch.tensor(y32)[None], rate)[0].numpy(),
                               librosa.effects.time_stretch(y32, rate=rate), atol=2e-3)


@pytest.mark.long
@pytest.mark.parametrize("semitones", [-3.0, 2.5])
def test_pitch_shift_is_librosas(semitones: float) -> None:
    import librosa

    from udlc.objectives.audio_augments import shift_pitch

    y = _tone(440) + 0.1 * np.random.default_rng(1).standard_normal(16000)
    got = shift_pitch(torch.tensor(y)[None], semitones)[0].numpy()
    np.testing.assert_allclose(got, librosa.effects.pitch_shift(y, sr=16000, n_steps=semitones, res_type="fft"),
                               atol=1e-9)


def test_each_audio_augmentation_keeps_shapes_and_follows_the_generator(tmp_path: Path) -> None:
    """What tests/test_augments.py checks of every entry, for these with sound data (which they require)."""
    from udlc.data.audio import load_backgrounds

    (tmp_path / "noise").mkdir()
    sf.write(tmp_path / "noise" / "hum.wav", _tone(50, 8000, 0.2), 8000)
    x = torch.randn(4, 1, 4000)
    for entry in [e for e in AUGMENTS if e.audio_only]:
        for form in AUGMENTS.examples(entry):
            data = DataSpec.model_validate({"source": "clips/", "sample_rate": 8000, "duration": 0.5,
                                            "augment": [form]})
            load_backgrounds(data, tmp_path)
            g = torch.Generator().manual_seed(3)
            before, global_rng = g.get_state(), torch.random.get_rng_state()
            out = _apply(data.augment[0], x, 3)
            assert out.shape == x.shape and torch.isfinite(out).all() and not torch.equal(out, x), form
            assert torch.equal(_apply(data.augment[0], x, 3), out)
            assert not torch.equal(_apply(data.augment[0], x, 4), out)
            assert torch.equal(torch.random.get_rng_state(), global_rng) and torch.equal(g.get_state(), before)
    assert AUDIO_AUGMENTS == {"gain", "time_shift", "pitch_shift", "time_stretch", "background"}


def test_noise_lands_at_its_snr_and_gain_at_its_decibels() -> None:
    x = torch.tensor(np.stack([_tone(440), 0.1 * _tone(300)]), dtype=torch.float64)[:, None]
    noisy = _apply({"noise": {"snr": [10, 10]}}, x) - x
    snr = 10 * torch.log10(x.pow(2).mean(dim=(1, 2)) / noisy.pow(2).mean(dim=(1, 2)))
    np.testing.assert_allclose(snr.numpy(), 10.0, atol=1e-9)
    louder = _apply({"gain": [6, 6]}, x)
    np.testing.assert_allclose(louder.numpy(), (x * 10 ** (6 / 20)).numpy(), atol=1e-12)
    spread = _apply({"gain": [-6, 6]}, x.repeat(32, 1, 1)).abs().amax(dim=(1, 2)) / x.abs().amax()
    db = 20 * torch.log10(spread[::2])
    assert db.min() >= -6 - 1e-9 and db.max() <= 6 + 1e-9 and db.std() > 1


def test_time_shift_moves_each_clip_within_its_bound_and_fills_silence() -> None:
    x = torch.arange(1, 101, dtype=torch.float32).repeat(16, 1)[:, None]
    for row in _apply({"time_shift": 0.1}, x)[:, 0]:
        shift = int(row.nonzero()[0]) if row[0] == 0 else -int(100 - row.nonzero()[-1] - 1)  # later: +
        kept = torch.arange(1, 101.0)[max(0, -shift):100 - max(0, shift)]
        assert abs(shift) <= 10 and torch.equal(row[row != 0], kept)
    rolled = _apply({"time_shift": {"max": 0.1, "roll": True}}, x)[:, 0]
    assert torch.equal(rolled.sort(dim=1).values, x[:, 0])


def test_background_mixes_a_stretch_of_the_folders_clips_at_its_snr(tmp_path: Path) -> None:
    from udlc.data.audio import load_backgrounds

    (tmp_path / "noise" / "rain").mkdir(parents=True)
    hum = _tone(100, 8000, 1.5)
    sf.write(tmp_path / "noise" / "rain" / "hum.flac", hum, 8000, subtype="PCM_24")
    data = DataSpec.model_validate({"source": "clips/", "sample_rate": 8000, "duration": 0.5,
                                    "augment": [{"background": {"source": "noise/", "snr": [5, 5]}}]})
    load_backgrounds(data, tmp_path)
    x = torch.tensor(_tone(1000, 8000, 0.5), dtype=torch.float32).repeat(8, 1)[:, None]
    added = (_apply(data.augment[0], x) - x)[:, 0].double()
    snr = 10 * torch.log10(x[:, 0].double().pow(2).mean(1) / added.pow(2).mean(1))
    np.testing.assert_allclose(snr.numpy(), 5.0, atol=1e-3)
    assert all(_peak(a.numpy(), 8000) == pytest.approx(100, abs=3) for a in added)  # the hum, not other noise


def test_a_resumed_generator_draws_the_same_augmentations() -> None:
    """A resume restores the generator's state (udlc.trainer.resume), so its next batches augment as the
    uninterrupted run's did."""
    from udlc.data import augment_batch

    x, g, resumed = torch.randn(6, 1, 4000), torch.Generator().manual_seed(0), torch.Generator()
    forms = [_aug({"time_stretch": [0.8, 1.2]}), _aug({"pitch_shift": [-2, 2]}), _aug({"time_shift": 0.1})]
    augment_batch(x, forms, g)
    resumed.set_state(g.get_state())
    assert torch.equal(augment_batch(x, forms, resumed), augment_batch(x, forms, g))
