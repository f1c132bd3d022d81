"""task: autoencoder — the input given back through a narrow code: what check refuses at its line, losses in
the data's units, denoising noise in training only, and a reconstruction from the exported file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import refused_at, train_here
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "ae-digits.yaml"


def small(tmp_path: Path, **changes) -> Path:
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["train"]["epochs"] = 15
    doc.update(changes)
    path = tmp_path / "ae.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_the_example_checks() -> None:
    assert compile_spec(EXAMPLE).task.name == "autoencoder"


@pytest.mark.parametrize("change, marker, words", [
    ({"model": {"input": [64], "layers": [{"linear": 8}, {"linear": 32}]}}, "linear: 32", "gives back its input"),
    ({"loss": "cross_entropy"}, "loss: cross_entropy", "classification loss"),
    ({"loss": "bce", "metrics": []}, "data:", "minmax"),
    ({"model": {"input": [32], "layers": [{"linear": 32}]}}, "input:", "64"),
    ({"data": {"source": "digits", "augment": [{"random_crop": 1}]},
      "model": {"input": [1, 8, 8], "layers": ["flatten", {"linear": 64}, {"reshape": [1, 8, 8]}]}},
     "augment:", "not augmented"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, change, marker, words) -> None:
    refused_at(small(tmp_path, **change), marker, words)


def test_denoising_adds_noise_of_its_std_from_the_run_generator() -> None:
    from types import SimpleNamespace

    import torch

    from udlc.tasks.autoencoder import Autoencoder, AutoencoderOptions

    task = Autoencoder(AutoencoderOptions(denoising={"noise": 0.2}))
    x = torch.zeros(2000, 64)
    a, b = (task.corrupted(SimpleNamespace(augment=None, generator=torch.Generator().manual_seed(0)), x)
            for _ in range(2))
    assert torch.equal(a, b) and abs(a.std().item() - 0.2) < 0.005 and abs(a.mean().item()) < 0.005
    assert torch.equal(x, torch.zeros(2000, 64))  # the clean batch, the target, is untouched


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ae")
    return train_here(small(root), root / "runs")


@pytest.mark.slow
@pytest.mark.long  # a quality bar on a trained run: the longer tier; the contract test trains and serves it
def test_the_reconstruction_beats_the_mean_image_in_the_datas_units(ae_run: Path) -> None:
    import onnxruntime as ort
    from sklearn.datasets import load_digits

    from udlc.exporter.onnx import export_run

    x = load_digits().data.astype(np.float32)
    session = ort.InferenceSession(str(export_run(ae_run)))
    (out,) = session.run(None, {session.get_inputs()[0].name: x})
    mse = float(((out - x) ** 2).mean())
    baseline = float(((x.mean(0) - x) ** 2).mean())  # every digit drawn as the mean digit
    assert mse < 0.6 * baseline
    results = json.loads((ae_run / "results.json").read_text())
    # the logged loss is in pixel values squared too: of the same order as the whole set's error
    assert 0.5 * mse < results["test_loss"] < 2 * mse


PAIR = {
    "udlc": 1, "name": "ae-pair", "seed": 0, "task": "autoencoder",
    "data": {"source": "digits", "normalize": "minmax", "split": [0.8, 0.1, 0.1]},
    "models": {"encoder": {"input": [64], "layers": [{"linear": 64}, "relu", {"linear": 8}]},
               "decoder": {"input": [8], "layers": [{"linear": 64}, "relu", {"linear": 64}]}},
    "loss": "bce", "optimizer": {"adam": {"lr": 0.003}}, "train": {"epochs": 8, "batch_size": 64},
}


def pair_spec(tmp_path: Path, changes: dict | None = None) -> Path:
    from tests.conftest import edited

    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump(edited(PAIR, changes or {}), sort_keys=False, default_flow_style=None))
    return path


@pytest.mark.parametrize("changes, marker, words", [
    ({"models.decoder.input": [6]}, "input: [6]", "reads the encoder's code"),
    ({"models.decoder.layers": [{"linear": 32}]}, "linear: 32", "gives back its input"),
    ({"data.normalize": "standard"}, "normalize: standard", "minmax"),
    ({"metrics": ["r2"]}, "metrics:", "logits"),
    ({"models.critic": {"input": [2], "layers": [{"linear": 1}]}}, "critic:", "no network 'critic'"),
])
def test_the_two_network_form_is_checked_at_its_lines(tmp_path: Path, changes, marker, words) -> None:
    refused_at(pair_spec(tmp_path, changes), marker, words)


@pytest.mark.slow
def test_encoder_and_decoder_are_served_apart_and_decode_their_codes(tmp_path: Path) -> None:
    """bce on logits: the decoder's file gives sigmoid(logits) in pixels; encoding then decoding through the
    two files equals the networks' reconstruction, and it beats the mean digit."""
    import onnxruntime as ort
    import torch
    from sklearn.datasets import load_digits

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.runs import RunFolder, checkpoint

    run = train_here(pair_spec(tmp_path), tmp_path / "runs")
    export_run(run)
    encoder = ort.InferenceSession(str(run / "encoder.onnx"))
    decoder = ort.InferenceSession(str(run / "model.onnx"))
    x = load_digits().data.astype(np.float32)
    (code,) = encoder.run(None, {encoder.get_inputs()[0].name: x})
    (back,) = decoder.run(None, {decoder.get_inputs()[0].name: code})
    assert code.shape == (len(x), 8) and back.shape == x.shape and 0 <= back.min() and back.max() <= 16
    folder = RunFolder.open(run)
    compiled = folder.compiled()
    nets = {n: lower(g).eval() for n, g in compiled.graphs.items()}
    checkpoint.load_models(nets, folder.final_checkpoint(compiled.spec))
    norm = folder.info["normalization"]
    scale = np.array(norm["scale"], np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(nets["decoder"](nets["encoder"](torch.from_numpy((x - np.array(norm["shift"],
                                                                                np.float32)) / scale))))
    assert np.allclose(back, expected.numpy() * scale + np.array(norm["shift"], np.float32), atol=1e-3)
    assert float(((back - x) ** 2).mean()) < 0.6 * float(((x.mean(0) - x) ** 2).mean())
