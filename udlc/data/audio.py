"""Sound clips as a data source: a folder with one subfolder per class of WAV, FLAC or OGG files (`source: clips/`),
or a CSV naming each clip's file and label (`source: clips.csv, audio: path, target: label`). Each clip is decoded
with soundfile, mixed to mono (the channels' mean), resampled to `data.sample_rate` and cut or padded with silence
to `data.duration`: the model's input is the waveform (1, sample_rate × duration).

Resampling is scipy.signal.resample_poly's (a Kaiser-windowed sinc, β 5, 10 zero crossings at the lower rate),
written here in numpy so that `udlc predict`, which must not need scipy or torch, resamples exactly as training
did; tests/test_audio_data.py holds it to scipy.

Decoding is done once: the whole clips, resampled, are kept in one float32 memory-mapped file under
`<folder>/.udlc-cache/` (a CSV's: beside the CSV), named by the files' names, sizes and times and the sample
rate, so later runs only cut their windows from it. `crop: random` cuts each training clip at a window drawn once
from the seed (validation and test clips, and predict's, at the centre). A file that cannot be decoded stops the
run with its path and soundfile's reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from udlc.data.arrays import Arrays
from udlc.data.audio_headers import background_files, clip_files, csv_clips, sound_samples
from udlc.errors import SpecError

if TYPE_CHECKING:  # the runtime's readers (udlc.runtime.audio) import this module: no pydantic there
    from udlc.spec.data import DataSpec

CACHE = ".udlc-cache"
PARALLEL_FROM = 256  # clips; fewer decode faster in this process than worker start-up takes
KAISER_BETA = 5.0  # resample_poly's window
CHUNK = 1 << 14  # output samples resampled at once: bounds the (outputs, taps) arrays to a few MB


@functools.lru_cache(maxsize=16)
def _phases(up: int, down: int) -> np.ndarray:
    """resample_poly's filter, scipy.signal.firwin(2·half+1, 1/max(up, down), window=('kaiser', 5.0)) · up, cut
    into its `up` phases: row p holds taps p, p + up, p + 2·up, …, the ones that meet input samples when an
    output falls at phase p of the up-sampled grid (zeros past the filter's end)."""
    half = 10 * max(up, down)
    m = np.arange(2 * half + 1) - half
    cutoff = 1.0 / max(up, down)
    taps = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half + 1, KAISER_BETA)
    taps = taps / taps.sum() * up
    reach = (2 * half) // up + 1  # input samples under the filter at one output
    phases = np.zeros((up, reach))
    for p in range(up):
        phases[p, :len(taps[p::up])] = taps[p::up]
    return phases


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """A mono clip (n,) at `rate` as scipy.signal.resample_poly(x, target, rate) gives it: ceil(n·target/rate)
    samples. Output k sits at time k·down + half of the up-sampled grid; it sums input samples j0, j0 - 1, …
    (j0 = that time // up) weighted by the phase's taps, the signal taken as zero outside the clip."""
    from numpy.lib.stride_tricks import sliding_window_view

    g = math.gcd(rate, target)
    up, down = target // g, rate // g
    if up == down:
        return x.astype(np.float32)
    phases = _phases(up, down)
    reach = phases.shape[1]
    half = 10 * max(up, down)
    total = -(-len(x) * up // down)
    padded = np.concatenate([np.zeros(reach), x.astype(np.float64), np.zeros(reach + half // up + 2)])
    windows = sliding_window_view(padded, reach)  # windows[s] = padded[s:s + reach]: no copy
    reversed_phases = phases[:, ::-1]  # a window runs forward in time, the taps from j0 backwards
    out = np.empty(total, np.float32)
    for first in range(0, total, CHUNK):
        t = np.arange(first, min(first + CHUNK, total)) * down + half
        j0 = t // up
        out[first:first + len(t)] = np.einsum("ij,ij->i", windows[j0 + 1], reversed_phases[t % up])
    return out


def decode(path: Path, sample_rate: int) -> np.ndarray:
    """A whole clip as training reads it: float32 (samples,), mono, at `sample_rate`."""
    import soundfile

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as e:
        raise SpecError(f"cannot read the sound file {path}: {e}", path="data.source",
                        hint="remove or replace the file") from None
    if len(data) == 0:
        raise SpecError(f"cannot read the sound file {path}: it holds no samples", path="data.source",
                        hint="remove or replace the file")
    return resample(data.mean(axis=1), int(rate), sample_rate)


def window(clip: np.ndarray, n: int, crop: str | None, offset: float | None = None) -> np.ndarray:
    """The clip cut or padded with silence to n samples: `center` (default), `start`, or at `offset` (a share,
    0..1, of the room there is: where `crop: random` drew it)."""
    room = abs(len(clip) - n)
    at = (0 if crop == "start" else room // 2) if offset is None else min(int(offset * (room + 1)), room)
    if len(clip) >= n:
        return clip[at:at + n]
    out = np.zeros(n, np.float32)
    out[at:at + len(clip)] = clip
    return out


@dataclass
class ClipBank:
    """Decoded clips end to end: clip i is samples[starts[i]:starts[i] + lengths[i]]."""

    samples: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray

    def clip(self, i: int) -> np.ndarray:
        return np.asarray(self.samples[self.starts[i]:self.starts[i] + self.lengths[i]])


def _decode_all(args: tuple[list[Path], int]) -> list[np.ndarray]:
    files, rate = args
    return [decode(f, rate) for f in files]


def _decode_files(files: list[Path], sample_rate: int) -> list[np.ndarray]:
    workers = min(os.cpu_count() or 1, 8)
    if len(files) < PARALLEL_FROM or workers < 2:
        return _decode_all((files, sample_rate))
    chunks = [files[i:i + 32] for i in range(0, len(files), 32)]
    with ProcessPoolExecutor(workers) as pool:
        return [clip for part in pool.map(_decode_all, [(c, sample_rate) for c in chunks]) for clip in part]


def cache_key(files: list[Path], sample_rate: int) -> str:
    """Changes when a file is added, removed, replaced or touched, or the sample rate changes."""
    stats = [(f.name, f.parent.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return hashlib.sha256(json.dumps([stats, sample_rate, "sound-1"]).encode()).hexdigest()[:20]


def read_clips(files: list[Path], sample_rate: int, cache_dir: Path | None) -> ClipBank:
    """Every file decoded, from the cache when it holds them (memory-mapped), else decoded and cached."""
    key = cache_key(files, sample_rate)
    samples_file = cache_dir / CACHE / f"{key}.sound.npy" if cache_dir is not None else None
    index_file = cache_dir / CACHE / f"{key}.index.npy" if cache_dir is not None else None
    if index_file is not None and index_file.is_file() and samples_file.is_file():
        index = np.load(index_file)
        return ClipBank(np.load(samples_file, mmap_mode="r"), index[0], index[1])
    clips = _decode_files(files, sample_rate)
    lengths = np.array([len(c) for c in clips], np.int64)
    bank = ClipBank(np.concatenate(clips), np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths)
    if samples_file is not None:
        try:
            samples_file.parent.mkdir(exist_ok=True)
            for target, array in ((samples_file, bank.samples), (index_file, np.stack([bank.starts, lengths]))):
                partial = target.with_suffix(f".{os.getpid()}.partial")
                with open(partial, "wb") as f:
                    np.save(f, array)
                os.replace(partial, target)  # the index last: whole or absent, a killed run leaves no half cache
        except OSError:
            pass  # a read-only folder: decode again next time
    return bank


def windows(bank: ClipBank, spec: DataSpec, seed: int) -> np.ndarray:
    """Every clip as the model reads it, (N, 1, samples); `crop: random` draws the training split's windows from
    the seed (the split dataset.prepare makes), every other clip is cut at the centre."""
    n, count = sound_samples(spec), len(bank.starts)
    offsets: list[float | None] = [None] * count
    if spec.crop == "random":
        # The training rows as dataset._split draws them (tests/test_audio_data.py holds the two together): the
        # loader runs before the split, and the data layer's order keeps dataset above this module.
        from udlc.spec.data import split_sizes

        train = np.random.default_rng([seed, 1]).permutation(count)[:split_sizes(count, spec.split)[0]]
        for i, share in zip(train, np.random.default_rng([seed, 2]).random(len(train))):
            offsets[i] = float(share)
    crop = "start" if spec.crop == "start" else "center"
    x = np.stack([window(bank.clip(i), n, crop, offsets[i]) for i in range(count)])
    return x[:, None, :]


def load_sound(path: Path, spec: DataSpec, base_dir: Path, seed: int) -> Arrays:
    """Sound clips (a folder of them, or a CSV naming them) as (N, 1, samples) waveforms and their classes; the
    background augmentations' clips are decoded too and handed to their entries."""
    csv = path.is_file()
    classes, files, labels = csv_clips(path, spec) if csv else clip_files(path)
    bank = read_clips(files, spec.sample_rate, path.parent if csv else path)
    load_backgrounds(spec, base_dir)
    return Arrays(windows(bank, spec, seed), np.asarray(labels, np.int64), classes, "classification", path.name)


def load_backgrounds(spec: DataSpec, base_dir: Path) -> None:
    """Decode each `background` augmentation's folder at the data's sample rate and hand its clips to the entry,
    each repeated to at least one clip's length so that any window fits in it."""
    n = sound_samples(spec)
    for i, files in background_files(spec, base_dir).items():
        bank = read_clips(files, spec.sample_rate, Path(base_dir) / spec.augment[i].source)
        clips = [np.resize(bank.clip(k), max(n, int(bank.lengths[k]))) for k in range(len(files))]  # tiles
        lengths = np.array([len(c) for c in clips], np.int64)
        spec.augment[i].attach(ClipBank(np.concatenate(clips).astype(np.float32),
                                        np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64), lengths))


def settings(spec: DataSpec) -> dict | None:
    """How a sound file becomes the model's input, as the exported file's `audio` metadata says it (udlc predict,
    and any other reader): decode, mono, resample to sample_rate, cut or pad at the centre to samples."""
    if not spec.sound:
        return None
    return {"sample_rate": spec.sample_rate, "duration": spec.duration, "samples": sound_samples(spec),
            "crop": "start" if spec.crop == "start" else "center", "channels": 1, "mono": "mean",
            "resample": "polyphase kaiser 5.0 (scipy.signal.resample_poly)"}
