"""Write synthesized spoken vowels as WAV files, one folder per vowel (a, e, i, o, u), for
examples/audio/vowels-cnn.yaml: a folder of sound clips as a data source, made here, nothing downloaded.

    python examples/audio/make_vowels.py [FOLDER] [--per-vowel N] [--seed S]

FOLDER defaults to examples/audio/vowels/. The repository ships that folder made with `--per-vowel 12` (60 clips
of 0.5 s at 8 kHz, 480 kB, so the example checks and trains on a fresh clone); bench/audio_example.py writes a
larger set with the same function.

Each clip is formant synthesis, the source-filter model of speech: a train of glottal pulses at the speaker's pitch
(90 to 250 Hz, with a slow vibrato), softened by the glottis' roll-off, through one two-pole resonator per formant.
The vowel is its first three formants (Peterson & Barney's 1952 averages for men), scaled by the speaker's vocal
tract (0.85 to 1.2: shorter tracts, higher formants) and jittered a few per cent each; the sound lasts 0.2 to 0.45 s
somewhere in the clip, at a loudness of -24 to -3 dBFS over white noise 15 to 35 dB below it. So the class is the
ratio of the formants, not the pitch, the loudness or the place in the clip.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

RATE, SECONDS = 8000, 0.5
FORMANTS = {"a": (730, 1090, 2440), "e": (530, 1840, 2480), "i": (270, 2290, 3010), "o": (570, 840, 2410),
            "u": (300, 870, 2240)}
BANDWIDTHS = (80.0, 100.0, 140.0)  # Hz, widened per speaker


def vowel(formants: tuple[int, ...], rng: np.random.Generator, rate: int = RATE,
          seconds: float = SECONDS) -> np.ndarray:
    """One clip of `seconds` at `rate`: the vowel of these formants, by a speaker drawn from rng."""
    total, length = int(rate * seconds), int(rate * rng.uniform(0.2, 0.45))
    t = np.arange(length) / rate
    pitch = rng.uniform(90, 250) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(4, 6) * t + rng.uniform(0, 6.3)))
    phase = np.cumsum(pitch / rate)
    pulses = np.diff(np.floor(phase), prepend=0.0)  # 1 where a glottal period starts
    # The filter is applied on an FFT grid twice the sound's length, so the resonators' tails do not wrap around
    freqs = np.fft.rfftfreq(2 * length, 1 / rate)
    z = np.exp(-2j * np.pi * freqs / rate)
    # the glottal pulse's roll-off (-12 dB an octave above 200 Hz) and the lips' radiation (+6 dB an octave)
    response = (1 - 0.95 * z) / (1 + (freqs / 200.0) ** 2)
    tract = rng.uniform(0.85, 1.2)
    for f, b in zip(formants, BANDWIDTHS):
        f = min(f * tract * rng.uniform(0.95, 1.05), 0.45 * rate)
        r = np.exp(-np.pi * b * rng.uniform(0.8, 1.3) / rate)
        a = 2 * r * np.cos(2 * np.pi * f / rate)
        response = response * (1 - a + r * r) / (1 - a * z + r * r * z * z)  # a unit gain at 0 Hz, a peak at f
    sound = np.fft.irfft(np.fft.rfft(pulses, 2 * length) * response)[:length]
    edge = int(rate * rng.uniform(0.02, 0.05))  # a rise and a fall, not a click
    ramp = np.sin(np.linspace(0, np.pi / 2, edge)) ** 2
    sound[:edge] *= ramp
    sound[-edge:] *= ramp[::-1]
    sound *= 10 ** (rng.uniform(-24, -3) / 20) / np.abs(sound).max()
    clip = np.zeros(total)
    start = int(rng.integers(0, total - length + 1))
    clip[start:start + length] = sound
    noise = rng.standard_normal(total) * np.sqrt(np.mean(sound**2)) * 10 ** (-rng.uniform(15, 35) / 20)
    return np.clip(clip + noise, -1, 1).astype(np.float32)


def write(folder: Path, per_vowel: int, seed: int = 0, rate: int = RATE, seconds: float = SECONDS) -> Path:
    """`per_vowel` clips of each vowel as 16-bit WAV files, folder/<vowel>/<n>.wav."""
    rng = np.random.default_rng(seed)
    for i in range(per_vowel):
        for name, formants in FORMANTS.items():
            (folder / name).mkdir(parents=True, exist_ok=True)
            sf.write(folder / name / f"{i:04d}.wav", vowel(formants, rng, rate, seconds), rate, subtype="PCM_16")
    return folder


if __name__ == "__main__":
    args = sys.argv[1:]
    options = {"--per-vowel": 12, "--seed": 0}
    for key in options:
        if key in args:
            at = args.index(key)
            options[key] = int(args[at + 1])
            del args[at:at + 2]
    out = write(Path(args[0]) if args else Path(__file__).parent / "vowels", options["--per-vowel"],
                options["--seed"])
    print(f"{5 * options['--per-vowel']} clips in {out}")
