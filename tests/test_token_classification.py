"""task: token_classification — a label for every position, padding masked out of loss and metrics, and
labelling from the exported file with onnxruntime alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import edited, line_of, train_here, trained_network
from udlc.data.builtin_sets import generator
from udlc.errors import SpecErrors
from udlc.spec.sources import SOURCES
from udlc.tasks import compile_spec

SPEC = {
    "udlc": 1, "name": "copy-tokens", "seed": 0, "task": "token_classification",
    "data": {"source": "copy", "samples": 1500},
    "model": {
        "inputs": {"tokens": {"shape": ["T"], "dtype": "int64"}, "tokens_mask": {"shape": ["T"], "dtype": "bool"}},
        "layers": [{"embedding": {"num_embeddings": 13, "embedding_dim": 16, "from": "tokens"}},
                   {"linear": 32}, "relu", {"linear": 13}],
    },
    "loss": "cross_entropy",
    "optimizer": {"adam": {"lr": 0.02}},
    "train": {"epochs": 3, "batch_size": 32},
}


def write(tmp_path: Path, **changes) -> Path:
    doc = edited(SPEC, changes)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.mark.parametrize("change, marker, words", [
    ({"data.source": "add"}, "source: add", "copy, reverse, sort"),
    ({"model.layers": SPEC["model"]["layers"][:-1] + [{"linear": 10}]}, "linear: 10", "13 labels"),
    ({"metrics": ["accuracy"]}, "metrics:", "own metrics"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, change, marker, words) -> None:
    spec = write(tmp_path, **change)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, marker) and words in e.message + " " + (e.hint or "")


def test_aligned_sets_have_targets_as_long_as_their_sources() -> None:
    import numpy as np

    for entry in SOURCES.sequence_sets():
        pairs = generator(entry.name)(50, np.random.default_rng(1))
        assert entry.aligned == all(len(s) == len(t) for s, t in pairs)


@pytest.fixture(scope="module")
def copy_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tok")
    return train_here(write(root), root / "runs")


@pytest.mark.slow
def test_a_position_wise_network_learns_to_copy(copy_run: Path) -> None:
    results = json.loads((copy_run / "results.json").read_text())
    assert results["test_token_accuracy"] > 0.95  # chance: 1 in 10
    assert results["test_exact_match"] <= results["test_token_accuracy"]
    assert results["test_exact_match"] > 0.6


@pytest.mark.slow
def test_labels_from_the_onnx_file_are_the_torch_model_argmax(copy_run: Path, invoke) -> None:
    import torch

    result = invoke("generate", copy_run, "--prompt", "8675309")
    assert result.returncode == 0, result.stderr
    vocab = SOURCES.find("copy").vocabulary
    ids = torch.tensor([[vocab.index(c) for c in "8675309"]])
    with torch.no_grad():
        logits = trained_network(copy_run)(ids, torch.ones_like(ids, dtype=torch.bool))
    assert result.stdout.strip() == "".join(vocab[int(i)] if i >= 3 else "?" for i in logits[0].argmax(-1))
    assert result.stdout.strip() == "8675309"
