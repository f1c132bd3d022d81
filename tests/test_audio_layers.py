"""The sound layers (udlc.layers.audio) against librosa's definitions, their shapes, their refusals, and SpecAugment's
masks. The registry-wide tests (test_layers.py, test_layer_export.py) also build, run and export their samples.

Tolerances (float32 against librosa's float64 filters on float32 STFTs): magnitudes and mel energies within 1e-5
of the largest value, decibels within 2e-3 dB, MFCCs within 2e-3."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from udlc.compiler.infer import infer
from udlc.layers import REGISTRY, ShapeError

librosa = pytest.importorskip("librosa")

RATE = 8000


def layer(name: str, args: dict, samples: int):
    lt = REGISTRY[name]
    cfg = lt.config.model_validate(args)
    return cfg, lt.build(cfg, (1, samples)).eval()


def run(module, clip: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return module(torch.from_numpy(clip)[None, None])[0, 0].numpy()


def clips(samples: int) -> dict[str, np.ndarray]:
    """White noise, and a chord of three tones under a little noise: a spectrum of peaks 60 dB over its floor."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / RATE
    chord = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in ((0.5, 220, 0), (0.3, 587.3, 1), (0.1, 1500, 2)))
    return {"noise": rng.standard_normal(samples).astype(np.float32),
            "tones": (chord + 1e-3 * rng.standard_normal(samples)).astype(np.float32)}


def stft_args(args: dict) -> dict:
    """The udlc arguments in librosa's words (its keyword names, and the hop udlc defaults to)."""
    win = args.get("win_length") or args["n_fft"]
    return {"n_fft": args["n_fft"], "hop_length": args.get("hop_length") or win // 4, "win_length": win,
            "window": {"rectangular": "boxcar"}.get(args.get("window", "hann"), args.get("window", "hann")),
            "center": args.get("center", True), "pad_mode": args.get("pad_mode", "reflect")}


def mel_args(args: dict) -> dict:
    return {**stft_args(args), "sr": args["sample_rate"], "n_mels": args.get("n_mels", 128),
            "fmin": args.get("f_min", 0.0), "fmax": args.get("f_max"), "htk": args.get("htk", False),
            "norm": args.get("norm", "slaney")}


def reference(name: str, args: dict, clip: np.ndarray) -> np.ndarray:
    if name == "spectrogram":
        return np.abs(librosa.stft(clip, **stft_args(args))) ** args.get("power", 2.0)
    power, top_db = args.get("power", 2.0), args.get("top_db", 80.0)
    mel = librosa.feature.melspectrogram(y=clip, power=power, **mel_args(args))
    if name == "mfcc":  # librosa.feature.mfcc's own steps, with the top_db it leaves at 80 made an argument
        return librosa.feature.mfcc(S=librosa.power_to_db(mel, top_db=top_db), n_mfcc=args.get("n_mfcc", 20))
    if name == "mel_spectrogram":
        return mel
    if power == 1.0:
        return librosa.amplitude_to_db(mel, top_db=top_db)
    return librosa.power_to_db(mel, top_db=top_db)


CASES = [
    ("spectrogram", {"n_fft": 256, "hop_length": 64}),
    ("spectrogram", {"n_fft": 200, "hop_length": 50, "window": "hamming", "power": 1.0, "center": False}),
    ("spectrogram", {"n_fft": 128, "win_length": 100, "window": "blackman", "pad_mode": "constant"}),
    ("spectrogram", {"n_fft": 63, "hop_length": 21, "window": "rectangular", "power": 0.5}),  # odd n_fft
    ("mel_spectrogram", {"sample_rate": RATE, "n_fft": 256, "hop_length": 80, "n_mels": 40}),
    ("mel_spectrogram", {"sample_rate": RATE, "n_fft": 512, "hop_length": 128, "n_mels": 32, "f_min": 80,
                         "f_max": 3800, "htk": True, "norm": None, "power": 1.0, "center": False}),
    ("log_mel_spectrogram", {"sample_rate": RATE, "n_fft": 256, "hop_length": 64, "n_mels": 40}),
    ("log_mel_spectrogram", {"sample_rate": RATE, "n_fft": 400, "win_length": 300, "window": "hamming",
                             "n_mels": 48, "power": 1.0, "top_db": 60, "pad_mode": "constant"}),
    ("log_mel_spectrogram", {"sample_rate": RATE, "n_fft": 256, "hop_length": 100, "n_mels": 24, "top_db": None}),
    ("mfcc", {"sample_rate": RATE, "n_fft": 256, "hop_length": 80, "n_mels": 40, "n_mfcc": 13}),
    ("mfcc", {"sample_rate": RATE, "n_fft": 512, "hop_length": 160, "n_mels": 64, "top_db": None,
              "center": False, "f_min": 50}),
]


# One case of each type in the default tier (librosa's first calls import scipy.signal and numba: seconds); every
# case in the long tier.
FIRST = {name: i for i, (name, _) in reversed(list(enumerate(CASES)))}


@pytest.mark.parametrize("name,args", [pytest.param(n, a, marks=() if FIRST[n] == i else pytest.mark.long)
                                       for i, (n, a) in enumerate(CASES)],
                         ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_each_transform_equals_librosa_on_noise_and_tones(name: str, args: dict) -> None:
    _, module = layer(name, args, 2000)
    for kind, clip in clips(2000).items():
        got, expected = run(module, clip), reference(name, args, clip)
        assert got.shape == expected.shape, kind
        if name in ("spectrogram", "mel_spectrogram"):
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * expected.max(), err_msg=kind)
        else:  # decibels and the DCT of decibels
            np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3, err_msg=kind)


def test_a_tone_peaks_in_its_own_bin() -> None:
    """A check that does not lean on librosa: a 1 kHz tone's energy sits in bin 1000 / (RATE / n_fft)."""
    _, module = layer("spectrogram", {"n_fft": 256, "hop_length": 64}, 2000)
    out = run(module, np.sin(2 * np.pi * 1000 * np.arange(2000) / RATE).astype(np.float32))
    assert (out[:, 1:-1].argmax(axis=0) == 1000 * 256 // RATE).all()  # the edge frames hold reflected halves


@pytest.mark.parametrize("samples", [4000, 4321])
@pytest.mark.parametrize("center", [True, False])
def test_the_shape_rule_gives_the_frames_the_module_makes(samples: int, center: bool) -> None:
    import torch

    args = {"sample_rate": RATE, "n_fft": 256, "hop_length": 100, "n_mels": 20, "center": center}
    lt = REGISTRY["log_mel_spectrogram"]
    cfg = lt.config.model_validate(args)
    shape = lt.shape(cfg, (2, samples))
    out = lt.build(cfg, (2, samples))(torch.randn(3, 2, samples))
    assert tuple(out.shape) == (3, *shape)
    assert shape[2] == (1 + samples // 100 if center else 1 + (samples - 256) // 100)


def test_a_symbolic_length_is_named_where_the_hop_divides_it_and_refused_where_not() -> None:
    lt = REGISTRY["spectrogram"]
    named = infer(lt, lt.config.model_validate({"n_fft": 16, "hop_length": 4}), [(1, "T")], ["float32"])[0]
    assert named == [(1, 9, "T/4+1")]
    with pytest.raises(ShapeError, match="no name"):  # frames 1 + T // 3: give the clip a fixed length
        infer(lt, lt.config.model_validate({"n_fft": 16, "hop_length": 3}), [(1, "T")], ["float32"])


@pytest.mark.parametrize("name,args,shape,text", [
    ("spectrogram", {"n_fft": 512}, (1, 300), "n_fft 512 is longer than the input (1, 300)"),
    ("mfcc", {"sample_rate": RATE, "n_fft": 64, "n_mels": 20}, (300,), "expects input a waveform (channels, samples)"),
    ("time_mask", {"max_width": 30}, (1, 40, 20), "max_width 30 is wider than the input's 20 frames"),
    ("freq_mask", {"max_width": 50}, (1, 40, 20), "max_width 50 is wider than the input's 40 bins"),
    ("freq_mask", {}, (4000,), "expects input a spectrogram"),
])
def test_inputs_that_do_not_fit_are_refused(name: str, args: dict, shape: tuple, text: str) -> None:
    lt = REGISTRY[name]
    with pytest.raises(ShapeError) as info:
        lt.shape(lt.config.model_validate(args), shape)
    assert text in info.value.message and info.value.hint


@pytest.mark.parametrize("name,args,text", [
    ("mel_spectrogram", {"sample_rate": 16000, "n_fft": 256, "n_mels": 128},
     "n_mels 128 is too many for n_fft 256: 12 mel filters (the first: 3) hold no frequency bin"),
    ("log_mel_spectrogram", {"sample_rate": 16000, "f_max": 9000}, "f_max 9000 is above the Nyquist frequency 8000"),
    ("mfcc", {"sample_rate": 16000, "f_min": 4000, "f_max": 3000}, "f_min 4000 must be below f_max 3000"),
    ("spectrogram", {"hop_length": 0}, "greater than 0"),
    ("spectrogram", {"n_fft": 256, "win_length": 400}, "win_length 400 is longer than n_fft 256"),
    ("mfcc", {"sample_rate": RATE, "n_mels": 16, "n_mfcc": 20}, "n_mfcc 20 is more than n_mels 16"),
    ("mel_spectrogram", {"n_fft": 256}, "sample_rate\n  Field required"),
    ("spectrogram", {"window": "hanning"}, "'hann', 'hamming', 'blackman' or 'rectangular'"),
])
def test_bad_arguments_are_refused(name: str, args: dict, text: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        REGISTRY[name].config.model_validate(args)
    assert text in str(info.value)


def test_the_largest_n_mels_offered_is_the_one_librosa_fills() -> None:
    import warnings

    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        REGISTRY["mel_spectrogram"].config.model_validate({"sample_rate": 16000, "n_fft": 256, "n_mels": 128})
    most = int(re.search(r"use n_mels <= (\d+)", str(info.value)).group(1))  # type: ignore[union-attr]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # librosa warns of empty filters
        librosa.filters.mel(sr=16000, n_fft=256, n_mels=most)
        with pytest.raises(UserWarning, match="Empty filters"):
            librosa.filters.mel(sr=16000, n_fft=256, n_mels=most + 1)


def test_a_layer_argument_error_is_reported_at_its_line(tmp_path) -> None:
    from udlc.errors import SpecErrors
    from udlc.tasks import compile_spec

    spec = tmp_path / "sound.yaml"
    spec.write_text("udlc: 1\nname: sound\ndata: {source: digits}\nmodel:\n  input: [1, 64]\n  layers:\n"
                    "    - log_mel_spectrogram: {sample_rate: 8000, n_fft: 32, n_mels: 40}\n"
                    "    - flatten\n    - linear: 10\nloss: cross_entropy\n")
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (error,) = [e for e in info.value.errors if "n_mels 40 is too many" in e.message]
    assert error.span.line == 7 and "use n_mels <=" in error.message


# ---- SpecAugment -------------------------------------------------------------------------------------------------


def masked_runs(changed) -> list[tuple[int, int]]:
    """(start, width) of each run of True in a 1-d boolean array."""
    runs, start = [], None
    for i, c in enumerate([*changed.tolist(), False]):
        if c and start is None:
            start = i
        elif not c and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


@pytest.mark.parametrize("name,axis", [("time_mask", -1), ("freq_mask", -2)])
def test_masks_stay_within_their_bounds_and_fill_with_the_mean(name: str, axis: int) -> None:
    import torch

    lt = REGISTRY[name]
    module = lt.build(lt.config.model_validate({"max_width": 5, "count": 2}), (2, 24, 30))
    torch.manual_seed(0)
    x = torch.randn(64, 2, 24, 30) + 3  # no value equals a sample's mean by chance
    out = module.train()(x)
    mean = x.mean(dim=(1, 2, 3))
    widths = []
    for b in range(64):
        changed = (out[b] != x[b]).movedim(axis, 0).flatten(1)  # (positions along the axis, the rest)
        lines = changed.any(dim=1)
        assert bool((changed.all(dim=1) == lines).all())  # a band covers every channel and the other axis
        assert torch.equal(out[b].movedim(axis, 0)[lines], mean[b].expand_as(out[b].movedim(axis, 0)[lines]))
        runs = masked_runs(lines)
        assert len(runs) <= 2 and all(w <= 10 for _, w in runs)  # two bands of 5 may touch: one run of 10
        widths.append(int(lines.sum()))
    assert max(widths) > 5 and min(widths) <= 3  # the widths vary, up to two bands' worth
    assert torch.equal(module.eval()(x), x)


def test_masks_draw_the_same_after_reseeding_and_resuming() -> None:
    import torch

    lt = REGISTRY["time_mask"]
    module = lt.build(lt.config.model_validate({"max_width": 4, "count": 3, "fill": "zero"}), (1, 8, 40)).train()
    x = torch.randn(16, 1, 8, 40)
    torch.manual_seed(7)
    first = module(x)
    state = torch.get_rng_state()  # what a checkpoint keeps (udlc.trainer.resume)
    second = module(x)
    torch.manual_seed(7)
    assert torch.equal(module(x), first)
    torch.set_rng_state(state)
    assert torch.equal(module(x), second)
    assert not torch.equal(first, second)
    assert bool(((first == 0) | (first == x)).all())  # a zero fill


@pytest.mark.long  # an export takes seconds; the registry-wide export test exports each mask already
def test_masks_are_left_out_of_the_export(tmp_path) -> None:
    """An exported model that masks in training: the ONNX graph holds the spectrogram and no random draw."""
    import onnx
    import torch

    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    _, spectrogram = layer("log_mel_spectrogram", {"sample_rate": RATE, "n_fft": 128, "n_mels": 16}, 800)
    lt = REGISTRY["time_mask"]
    model = torch.nn.Sequential(spectrogram, lt.build(lt.config.model_validate({"max_width": 3}), (1, 16, 26)))
    path = export_module(model, [("waveform", (1, 800))], tmp_path / "m.onnx", OnnxExport(opset=18))
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Conv" in ops and not ops & {"RandomUniform", "RandomUniformLike", "RandomNormal", "Where"}


# ---- the spoken-vowel example ------------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "audio" / "vowels-cnn.yaml"


def test_the_vowel_example_checks_with_its_shipped_clips() -> None:
    from udlc.tasks import compile_spec

    graph = compile_spec(EXAMPLE).graph
    spectrogram = next(n for n in graph.nodes.values() if n.op == "log_mel_spectrogram")
    assert tuple(spectrogram.shapes[0]) == (1, 40, 63)  # 0.5 s at 8 kHz, hop 64: 1 + 4000 // 64 frames


def test_check_refuses_a_mel_layer_whose_sample_rate_is_not_the_datas(tmp_path: Path) -> None:
    from tests.conftest import refused_at

    spec = tmp_path / "vowels.yaml"
    spec.write_text(EXAMPLE.read_text().replace("source: vowels/", f"source: {EXAMPLE.parent / 'vowels'}/")
                    .replace("log_mel_spectrogram: {sample_rate: 8000", "log_mel_spectrogram: {sample_rate: 16000"))
    refused_at(spec, "log_mel_spectrogram", "data.sample_rate reads the clips at 8000 Hz")


@pytest.fixture(scope="module")
def vowel_run(tmp_path_factory) -> Path:
    """The example trained for one step (16 of its clips, one batch), on a copy of its clips: training caches the
    decoded clips beside them."""
    import shutil

    from tests.conftest import edited_spec, train_here

    folder = tmp_path_factory.mktemp("vowels")
    shutil.copytree(EXAMPLE.parent / "vowels", folder / "vowels")
    spec = edited_spec(folder / "vowels.yaml", EXAMPLE, {"train.epochs": 1, "train.batch_size": 16, "data.limit": 16})
    return train_here(spec, folder / "runs")


def test_the_vowel_example_trains_a_step(vowel_run: Path) -> None:
    import json

    rows = (vowel_run / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 2 and "nan" not in rows[1]
    assert 0 <= json.loads((vowel_run / "results.json").read_text())["test_accuracy"] <= 1


@pytest.mark.long  # an export and its parity check: seconds
def test_the_vowel_example_exports_its_spectrogram_and_serves_raw_clips(vowel_run: Path) -> None:
    """The export holds the spectrogram (the exporter checks parity with torch); model.onnx takes a clip as its
    file holds it."""
    import onnx
    import onnxruntime as ort
    import soundfile as sf

    import udlc

    path = udlc.export(vowel_run)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Conv" in ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    clip, rate = sf.read(EXAMPLE.parent / "vowels" / "a" / "0000.wav", dtype="float32")
    assert rate == 8000 and clip.shape == (4000,)
    outputs = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {session.get_inputs()[0].name: clip[None, None]})))
    assert outputs["probabilities"].shape == (1, 5)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
