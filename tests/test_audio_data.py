"""Sound clips as a data source (udlc.data.audio) and the waveform augmentations (udlc.objectives.audio_augments):
check lists a folder of WAV, FLAC and OGG clips from their headers; training decodes them once (mono, resampled
as scipy.signal.resample_poly does, cut or padded to the duration) into a cache; an unreadable file is named;
a CSV may name the clips; and `udlc predict` reads sound files with neither torch nor scipy. The waveform
augmentations are tested in tests/test_audio_augments.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from tests.conftest import refused_at, train_here
from udlc.data.audio import CACHE, decode, read_clips, resample, window
from udlc.data.audio_headers import clip_files, clip_seconds
from udlc.spec.data import DataSpec

TONES = {"high": 1200.0, "low": 300.0}
FORMATS = (("wav", 8000), ("flac", 11025), ("ogg", 16000))  # each class has every format, at its own rate


def write_tones(folder: Path, per_class: int = 6, seed: int = 0) -> Path:
    """A folder per class of sine tones at the class's pitch (±3%) and 0.3–0.7 s long, in WAV, FLAC and OGG at
    three sample rates; every other file in stereo (the right channel at half the left's amplitude)."""
    rng = np.random.default_rng(seed)
    for name, pitch in TONES.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            suffix, rate = FORMATS[i % len(FORMATS)]
            t = np.arange(int(rate * rng.uniform(0.3, 0.7))) / rate
            y = 0.5 * np.sin(2 * np.pi * pitch * rng.uniform(0.97, 1.03) * t) + 0.02 * rng.standard_normal(len(t))
            sf.write(folder / name / f"{i:02d}.{suffix}", np.stack([y, y / 2], 1) if i % 2 else y, rate)
    return folder


def spec(tmp_path: Path, augment: list | None = None, **data) -> Path:
    doc = {"udlc": 1, "name": "tones", "seed": 0,
           "data": {"source": "clips/", "sample_rate": 8000, "duration": 0.5, "split": [0.5, 0.25, 0.25], **data,
                    "augment": augment or []},
           "model": {"input": [1, 4000], "layers": [{"conv1d": {"out_channels": 4, "kernel_size": 16, "stride": 4}},
                                                    "relu", "global_maxpool", {"linear": 2}]},
           "loss": "cross_entropy", "metrics": ["accuracy"], "optimizer": {"type": "adam", "lr": 0.01},
           "train": {"epochs": 1, "batch_size": 8}, "export": {"onnx": {"opset": 18}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    return path


def sounds(folder: Path) -> list[Path]:
    """The clips of a class folder (its cache left out)."""
    return sorted(f for f in folder.glob("*/*") if f.suffix in (".wav", ".flac", ".ogg"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    return write_tones(tmp_path_factory.mktemp("sound") / "clips")


# ---- check: the listing from headers ------------------------------------------------------------------------


def test_header_lengths_equal_soundfile_for_every_format(clips: Path, tmp_path: Path) -> None:
    tagged = tmp_path / "tagged.flac"  # a FLAC stream behind an ID3v2 tag of 10 bytes
    tagged.write_bytes(b"ID3\x03\0\0\0\0\0\x0a" + bytes(10) + (clips / "high" / "01.flac").read_bytes())
    for file in [*sounds(clips), tagged]:
        assert clip_seconds(file) == pytest.approx(sf.info(str(file)).duration, abs=1e-6), file.name


def test_check_lists_classes_counts_and_lengths_without_numpy_or_decoding(clips: Path) -> None:
    path = spec(clips.parent)
    probe = (f"import sys; from udlc.tasks import compile_spec; from udlc.data.file_kinds import peek; "
             f"c = compile_spec({str(path)!r}); print(peek(c.spec.data, c.base_dir).listing); "
             f"print(sorted(m for m in ('numpy', 'soundfile', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    listing, imported = out.strip().splitlines()
    seconds = [sf.info(str(f)).duration for f in sounds(clips)]
    assert listing.startswith("clips/: 12 clips in 2 classes (high 6, low 6); ")
    assert f"{min(seconds):.2f}–{max(seconds):.2f} s" in listing and "read at 8000 Hz, mono" in listing
    cut = sum(s > 0.5 for s in seconds)
    assert f"{cut} cut and {12 - cut} padded to 0.5 s" in listing
    assert imported == "[]" and not (clips / CACHE).exists()


# ---- decoding: resampling, mono, cut and pad, the cache ---------------------------------------------------


@pytest.mark.parametrize("rate, target", [(44100, 16000), (8000, 16000), (11025, 8000), (48000, 22050)])
def test_resampling_is_scipys_resample_poly(rate: int, target: int) -> None:
    from scipy.signal import resample_poly

    x = np.random.default_rng(0).standard_normal(rate // 4)
    got = resample(x, rate, target)
    assert got.shape == (-(-len(x) * target // rate),)
    np.testing.assert_allclose(got, resample_poly(x, target, rate), atol=1e-6)


def test_a_stereo_file_is_the_mean_of_its_channels(tmp_path: Path) -> None:
    left, right = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 800))
    sf.write(tmp_path / "two.wav", np.stack([left, right], 1), 8000, subtype="FLOAT")
    np.testing.assert_allclose(decode(tmp_path / "two.wav", 8000), (left + right) / 2, atol=1e-6)
    sf.write(tmp_path / "left.wav", left, 8000, subtype="FLOAT")
    from scipy.signal import resample_poly

    np.testing.assert_allclose(decode(tmp_path / "left.wav", 16000), resample_poly(left, 2, 1), atol=1e-6)


def test_windows_cut_and_pad_where_crop_says() -> None:
    clip = np.arange(1, 11, dtype=np.float32)
    assert window(clip, 4, "center").tolist() == [4, 5, 6, 7] and window(clip, 4, "start").tolist() == [1, 2, 3, 4]
    assert window(clip, 14, "center").tolist() == [0, 0, *range(1, 11), 0, 0]
    assert window(clip, 12, "start").tolist() == [*range(1, 11), 0, 0]
    assert window(clip, 4, None, offset=0.0).tolist() == [1, 2, 3, 4]
    assert window(clip, 4, None, offset=0.999).tolist() == [7, 8, 9, 10]


def test_random_crop_draws_training_windows_from_the_seed_and_centres_the_rest(clips: Path) -> None:
    from udlc.data.audio import windows
    from udlc.data.dataset import _split

    _, files, _ = clip_files(clips)
    bank = read_clips(files, 8000, clips)
    data = DataSpec.model_validate({"source": "clips/", "sample_rate": 8000, "duration": 0.25,
                                    "split": [0.5, 0.25, 0.25]})
    centred = windows(bank, data, seed=0)
    randomly = [windows(bank, data.model_copy(update={"crop": "random"}), seed=s) for s in (0, 0, 1)]
    train = _split(len(files), data.split, 0)[0]
    held_out = np.setdiff1d(np.arange(len(files)), train)
    assert np.array_equal(randomly[0], randomly[1]) and not np.array_equal(randomly[0][train], randomly[2][train])
    assert np.array_equal(randomly[0][held_out], centred[held_out])
    assert not np.array_equal(randomly[0][train], centred[train])


def test_the_cache_is_used_and_renewed_when_a_clip_changes(tmp_path: Path) -> None:
    folder = write_tones(tmp_path / "clips", per_class=3)
    _, files, _ = clip_files(folder)
    first = read_clips(files, 8000, folder)
    again = read_clips(files, 8000, folder)
    assert isinstance(again.samples, np.memmap) and np.array_equal(again.samples, first.samples)
    np.testing.assert_array_equal(again.clip(4), decode(files[4], 8000))
    (folder / "low" / "00.wav").write_bytes((folder / "high" / "00.wav").read_bytes())
    changed = read_clips(files, 8000, folder)
    np.testing.assert_array_equal(changed.clip(3), first.clip(0))
    assert len(list((folder / CACHE).glob("*.sound.npy"))) == 2


def test_an_unreadable_clip_is_named_by_check_and_by_training(tmp_path: Path) -> None:
    from udlc.errors import SpecError

    folder = write_tones(tmp_path / "clips", per_class=2)
    (folder / "low" / "broken.wav").write_bytes(b"not a sound at all")
    refused_at(spec(tmp_path), "source: clips/", "low/broken.wav: its header is not WAV, FLAC or Ogg")
    (folder / "low" / "broken.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x02\x00\x00\x00\xff")  # a WAV's start
    _, files, _ = clip_files(folder)
    with pytest.raises(SpecError, match=r"cannot read the sound file .*low/broken.wav: \S"):
        read_clips(files, 8000, None)


def test_a_csv_names_the_clips_and_their_labels(clips: Path, tmp_path: Path) -> None:
    from udlc.data.file_kinds import load_arrays, peek

    rows = [f"{f.relative_to(clips.parent)},{f.parent.name}" for f in sounds(clips)]
    (clips.parent / "clips.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    data = DataSpec.model_validate({"source": "clips.csv", "sample_rate": 8000, "duration": 0.5, "audio": "path",
                                    "target": "label"})
    assert peek(data, clips.parent).classes == ["high", "low"]
    arrays = load_arrays(data, clips.parent, seed=0)
    folder = load_arrays(data.model_copy(update={"source": "clips/", "audio": None, "target": None}),
                         clips.parent, seed=0)
    assert arrays.x.shape == (12, 1, 4000) and arrays.classes == folder.classes
    np.testing.assert_array_equal(arrays.x, folder.x)
    np.testing.assert_array_equal(arrays.y, folder.y)


# ---- training, export and predict ---------------------------------------------------------------------------


def test_a_conv1d_network_takes_a_training_step_on_standardized_waveforms(clips: Path) -> None:
    from udlc.compiler.lower import lower
    from udlc.data import augment_batch, prepare
    from udlc.tasks import compile_spec

    compiled = compile_spec(spec(clips.parent, [{"gain": [-3, 3]}, {"time_stretch": [0.9, 1.1]}]))
    data = prepare(compiled.spec.data, (1, 4000), compiled.base_dir, seed=0)
    assert data.x_train.shape == (6, 1, 4000) and data.classes == ["high", "low"]
    assert data.normalization.shift.shape == (1, 1)  # one mean and scale for the waveform, not one per sample
    assert abs(float(data.x_train.mean())) < 1e-5 and float(data.x_train.std()) == pytest.approx(1, abs=1e-4)
    network = lower(compiled.graphs["model"], seed=0)
    x = augment_batch(torch.as_tensor(data.x_train), list(compiled.spec.data.augment), torch.Generator())
    y = torch.as_tensor(data.y_train)
    losses = []
    for _ in range(2):  # plain gradient steps: the first torch.optim optimizer of a process takes seconds to build
        network.zero_grad()
        loss = torch.nn.functional.cross_entropy(network(x), y)
        loss.backward()
        with torch.no_grad():
            for p in network.parameters():
                p -= 0.05 * p.grad
        losses.append(loss.item())
    assert losses[1] < losses[0]


@pytest.mark.long  # a run, its export and two fresh interpreters: about 20 s
def test_a_conv1d_network_trains_and_predict_reads_sound_files_without_torch(clips: Path, tmp_path: Path,
                                                                          invoke) -> None:
    import shutil

    shutil.copytree(clips, tmp_path / "clips")
    run = train_here(spec(tmp_path, [{"gain": [-3, 3]}, {"time_shift": 0.05}]), tmp_path / "runs")
    assert len(list((tmp_path / "clips" / CACHE).glob("*.sound.npy"))) == 1
    assert invoke("export", run).returncode == 0
    no_torch = "import sys; sys.modules['torch'] = sys.modules['scipy'] = None; from udlc.cli import main; main()"
    answers = {}
    for target in ("clips", "clips/low/01.flac"):
        result = subprocess.run([sys.executable, "-c", no_torch, "predict", str(run / "model.onnx"), target],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        answers[target] = [line.split(",") for line in result.stdout.strip().splitlines()]
    folder = answers["clips"]
    assert folder[0] == ["file", "prediction", "p_high", "p_low"] and len(folder) == 13
    assert folder[1][0] == "high/00.wav" and answers["clips/low/01.flac"][1][0] == "01.flac"
    assert answers["clips/low/01.flac"][1][1:] == next(row[1:] for row in folder if row[0] == "low/01.flac")

    import onnxruntime as ort
    from udlc.runtime.audio import read_clips as predict_clips

    session = ort.InferenceSession(str(run / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    names, x = predict_clips(meta, tmp_path / "clips")
    assert x.shape == (12, 1, 4000) and meta["pictures"] == "null"
    training = np.load(next((tmp_path / "clips" / CACHE).glob("*.sound.npy")))
    np.testing.assert_array_equal(x[0, 0], window(training[:len(decode(tmp_path / "clips" / names[0], 8000))],
                                                  4000, "center"))


# ---- spec errors, at their lines ----------------------------------------------------------------------------


@pytest.mark.parametrize("data, augment, marker, words", [
    ({"source": "digits", "sample_rate": None, "duration": None}, [{"gain": [-6, 6]}], "gain",
     "'gain' changes sound waveforms, but digits is not sound clips"),
    ({"source": "digits", "duration": None}, [], "sample_rate", "applies only to sound clips"),
    ({"duration": None}, [], "source: clips/", "sound clips need data.duration too"),
    ({"sample_rate": None, "duration": None}, [], "source: clips/", "a folder needs data.image_size (pictures"),
    ({"source": "clips.csv"}, [], "source: clips.csv", "a CSV of sound clips names the column of their files"),
    ({}, [{"background": "nowhere/"}], "background", "no folder at"),
    ({}, [{"time_shift": 0.1}, "hflip"], "hflip", "'hflip' augments images, but the model's input is [1, 4000]"),
    ({}, [{"time_stretch": [1.2, 0.8]}], "time_stretch", "must be [smallest, largest]"),
    ({}, [{"noise": {"snr": [10, 30], "std": 0.1}}], "snr: [10, 30]", "give the noise's level one way"),
    ({"source": "clips.csv", "audio": "file"}, [], "audio: file", "has no column 'file'"),
])
def test_sound_mistakes_are_refused_at_their_line(clips: Path, data: dict, augment: list, marker: str,
                                                  words: str) -> None:
    (clips.parent / "clips.csv").write_text("path,label\nclips/low/00.wav,low\n")
    path = spec(clips.parent, augment, **data)
    doc = yaml.safe_load(path.read_text())
    doc["data"] = {k: v for k, v in doc["data"].items() if v is not None}  # None: leave the key out
    if data.get("source") == "digits":
        doc["model"]["input"] = [1, 64]  # the digits' 64 values, so that only the data's mistake is left
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    refused_at(path, marker, words)
