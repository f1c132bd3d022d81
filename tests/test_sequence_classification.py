"""task: sequence_classification — a CSV's text column, tokenized, padded with its mask; what check refuses at
its line; training; and `udlc predict` on a CSV of texts from the exported file alone."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import assert_clean_failure, edited, line_of, read_csv, train_here, trained_network
from udlc.errors import SpecErrors
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]

SPEC = {
    "udlc": 1, "name": "tiny-text", "seed": 0,
    "task": {"sequence_classification": {"max_tokens": 40}},
    "data": {"source": "texts.csv", "text": "review", "target": "label", "tokenizer": "char",
             "split": [0.8, 0.1, 0.1]},
    "model": {
        "inputs": {"tokens": {"shape": ["T"], "dtype": "int64"}, "tokens_mask": {"shape": ["T"], "dtype": "bool"}},
        "layers": [
            {"embedding": {"num_embeddings": 32, "embedding_dim": 16, "from": "tokens"}},
            {"linear": 16},
            {"relu": {"id": "h"}},
            {"masked_seq_pool": {"mode": "max", "from": ["h", "tokens_mask"]}},
            {"linear": 2},
        ],
    },
    "loss": "cross_entropy",
    "metrics": ["accuracy"],
    "optimizer": {"adam": {"lr": 0.02}},
    "train": {"epochs": 8, "batch_size": 32},
}


def texts(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Lists of words of varying length; `good` when the text holds a 'z' (in a word made to hold one)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        words = list(rng.choice(WORDS, size=rng.integers(1, 6)))
        if i % 2:
            words.insert(int(rng.integers(len(words) + 1)), "zeta")
        rows.append((" ".join(words), "good" if i % 2 else "bad"))
    return rows


def write(tmp_path: Path, rows=None, **changes) -> Path:
    with open(tmp_path / "texts.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "review", "label"])
        w.writerows([(i, t, y) for i, (t, y) in enumerate(rows or texts(400))])
    doc = edited(SPEC, changes)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def errors_at(spec: Path) -> list[tuple[int, str]]:
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    return [(e.span.line, e.message + " " + (e.hint or "")) for e in info.value.errors]


def test_the_example_checks() -> None:
    assert compile_spec(ROOT / "examples" / "text-lines.yaml").task.name == "sequence_classification"


@pytest.mark.parametrize("change, marker, words", [
    ({"data.text": "reveiw"}, "text: reveiw", "did you mean 'review'"),
    ({"model.layers": SPEC["model"]["layers"][:-1] + [{"linear": 3}]}, "linear: 3", "2 classes"),
    ({"model.layers": [{"embedding": {"num_embeddings": 8, "embedding_dim": 4, "from": "tokens", "id": "e"}},
                       {"masked_seq_pool": {"from": ["e", "tokens_mask"]}}, {"linear": 2}]},
     "- embedding:", "char tokenizer"),
    ({"task": "supervised"}, "text: review", "sequence_classification"),
    ({"model.inputs.words": {"shape": ["T"], "dtype": "int64"}}, "words:", "no field"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, change, marker, words) -> None:
    spec = write(tmp_path, **change)
    errors = errors_at(spec)
    assert any(line == line_of(spec, marker) and words in text for line, text in errors), errors
    assert len(errors) == 1 or change.get("task") == "supervised"  # two inputs are a second mistake there


def test_an_empty_text_cell_is_named_by_its_line(tmp_path: Path) -> None:
    spec = write(tmp_path, rows=texts(10) + [("", "bad")])
    ((_, text),) = errors_at(spec)
    assert "line 12" in text and "'review' is empty" in text


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("text")
    return train_here(write(root), root / "runs")


@pytest.mark.slow
def test_a_small_network_learns_which_texts_hold_the_word(text_run: Path) -> None:
    results = json.loads((text_run / "results.json").read_text())
    assert results["test_accuracy"] > 0.9  # chance: 0.5
    info = json.loads((text_run / "run.json").read_text())
    assert info["classes"] == ["bad", "good"] and info["tokenizer"]["type"] == "char"


@pytest.mark.slow
def test_padding_changes_nothing(text_run: Path) -> None:
    import torch

    network = trained_network(text_run)
    short, long = torch.tensor([[3, 4, 5]]), torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10]])
    batch = torch.zeros(2, 8, dtype=torch.long)
    batch[0, :3], batch[1] = short[0], long[0]
    mask = torch.arange(8)[None, :] < torch.tensor([[3], [8]])
    with torch.no_grad():
        padded = network(batch, mask)
        alone = network(short, torch.ones_like(short, dtype=torch.bool))
    assert torch.allclose(padded[0], alone[0], atol=1e-5)


@pytest.mark.slow
def test_predict_reads_the_text_column_of_a_csv(text_run: Path, tmp_path: Path, invoke) -> None:
    import torch

    from udlc.data.text import tokenizer_from_json
    from udlc.exporter.onnx import export_run

    model = export_run(text_run)
    rows = [("zeta alpha", "?"), ("beta gamma delta", "?"), ("omega zeta", "?"), ("zeta ünïcode!", "?")]
    with open(tmp_path / "new.csv", "w", newline="") as f:  # other columns, in another order: found by name
        csv.writer(f).writerows([("label", "review")] + [(y, t) for t, y in rows])
    result = invoke("predict", model, tmp_path / "new.csv", "-o", tmp_path / "out.csv")
    assert result.returncode == 0, result.stderr
    out = read_csv(tmp_path / "out.csv")
    assert [r["prediction"] for r in out][:3] == ["good", "bad", "good"]
    assert [r["line"] for r in out] == ["2", "3", "4", "5"]  # one answer per row, the last with unseen characters
    tokenizer = tokenizer_from_json(json.loads((text_run / "run.json").read_text())["tokenizer"])
    network = trained_network(text_run)
    for (text, _), row in zip(rows, out):
        ids = torch.as_tensor(tokenizer.encode(text))[None]
        with torch.no_grad():
            p = torch.softmax(network(ids, torch.ones_like(ids, dtype=torch.bool)), -1)[0]
        assert float(row["p_good"]) == pytest.approx(float(p[1]), abs=1e-5)
    (tmp_path / "bad.csv").write_text("label,text\nx,zeta\n")
    err = assert_clean_failure(invoke("predict", model, tmp_path / "bad.csv"))
    assert "no column 'review'" in err
