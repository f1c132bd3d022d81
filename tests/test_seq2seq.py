"""task: seq2seq — the generated sequence sets, what check refuses at its line, training with padding masks,
greedy exact match, and decoding (greedy and beam) from the exported file with onnxruntime alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import assert_clean_failure, edited, line_of, train_here, trained_network
from udlc.data.builtin_sets import generator
from udlc.errors import SpecErrors
from udlc.spec.sources import SOURCES, SequenceSet
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "reverse-seq2seq.yaml"


def small_spec(tmp_path: Path, **changes) -> Path:
    """The example, smaller: fewer samples and epochs."""
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["data"].update(samples=3000, split=[0.8, 0.1, 0.1])
    doc["train"]["epochs"] = 3
    doc = edited(doc, changes)
    path = tmp_path / "s2s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def error_at(spec: Path) -> tuple[int, str]:
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    return e.span.line, e.message + " " + (e.hint or "")


# ---- the generated sets ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, rule", [("copy", lambda s: s), ("reverse", lambda s: s[::-1]),
                                        ("sort", lambda s: "".join(sorted(s))),
                                        ("add", lambda s: str(sum(map(int, s.split("+")))))])
def test_each_sequence_set_pairs_a_source_with_its_rule(name: str, rule) -> None:
    entry = SOURCES.find(name)
    assert isinstance(entry, SequenceSet) and entry.vocabulary[:3] == ("<pad>", "<bos>", "<eos>")
    pairs = generator(entry.name)(200, np.random.default_rng(0))
    assert pairs == generator(entry.name)(200, np.random.default_rng(0))  # the seed decides the set
    assert all(t == rule(s) for s, t in pairs)
    assert all(set(s + t) <= set(entry.alphabet) for s, t in pairs)
    assert len({len(s) for s, _ in pairs}) > 3  # lengths vary: batches need padding


# ---- check ----------------------------------------------------------------------------------------


def test_the_example_checks() -> None:
    assert compile_spec(EXAMPLE).task.name == "seq2seq"


@pytest.mark.parametrize("change, marker, words", [
    ({"data.source": "moons", "data.samples": None}, "source: moons", "holds none"),
    ({"loss": "mse"}, "loss: mse", "cross_entropy"),
    ({"model.layers": yaml.safe_load(EXAMPLE.read_text())["model"]["layers"][:-1] + [{"linear": 12}]},
     "linear: 12", "13 tokens"),
    ({"model.inputs.target": {"shape": ["T"], "dtype": "int64"}}, "target:", "no field"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, change, marker, words) -> None:
    spec = small_spec(tmp_path, **change)
    if change.get("data.samples", 0) is None:
        spec.write_text(spec.read_text().replace("  samples: null\n", ""))
    line, text = error_at(spec)
    assert line == line_of(spec, marker) and words in text


# ---- training, export, decoding -------------------------------------------------------------------


@pytest.fixture(scope="module")
def reverse_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("s2s")
    return train_here(small_spec(root), root / "runs")


@pytest.mark.slow
def test_a_small_encoder_decoder_learns_to_reverse(reverse_run: Path) -> None:
    rows = [json.loads(line) for line in (reverse_run / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in rows if "val_loss" in r]
    assert epochs[-1]["val_loss"] < 0.3 * epochs[0]["train_loss"]
    assert epochs[-1]["val_token_accuracy"] > 0.8  # chance: 1 in 11
    assert 0.2 < epochs[-1]["val_exact_match"] <= epochs[-1]["val_token_accuracy"]
    results = json.loads((reverse_run / "results.json").read_text())
    assert results["test_exact_match"] > 0.2


@pytest.mark.slow
def test_padding_changes_nothing_for_the_real_positions(reverse_run: Path) -> None:
    import torch

    from udlc.data.collate import collate

    model = trained_network(reverse_run)
    short = {"source": np.array([4, 5, 6]), "decoder": np.array([1, 9, 8, 7])}
    long = {"source": np.arange(3, 13), "decoder": np.array([1, *range(12, 2, -1)])}
    batch = {k: torch.as_tensor(v) for k, v in collate([short, long]).items()}
    alone = {k: torch.as_tensor(v) for k, v in collate([short]).items()}
    alone["source_mask"] = torch.ones_like(alone["source"], dtype=torch.bool)
    with torch.no_grad():
        padded = model(batch["source"], batch["source_mask"], batch["decoder"])[0, :4]
        single = model(alone["source"], alone["source_mask"], alone["decoder"])[0]
    assert batch["source"].shape[1] == 10 and torch.allclose(padded, single, atol=1e-5)


@pytest.mark.slow
@pytest.mark.long  # greedy and beam decoding at length: the longer tier; the contract test decodes greedily
def test_decoding_runs_from_the_onnx_file_greedy_and_beam(reverse_run: Path, invoke) -> None:
    from udlc.runtime.generate import Seq2SeqFile

    result = invoke("generate", reverse_run, "--prompt", "1234")
    assert result.returncode == 0, result.stderr
    model = Seq2SeqFile(reverse_run / "model.onnx")
    sources = ["1234", "90817", "55501", "312"]
    greedy = [model.translate(s) for s in sources]
    assert result.stdout.strip() == greedy[0]
    assert greedy == [torch_greedy(reverse_run, s) for s in sources]
    assert sum(g == s[::-1] for g, s in zip(greedy, sources)) >= 2  # trained for seconds: mostly right
    beams = [model.translate(s, beam=4) for s in sources]
    # a wider beam keeps the greedy path among its hypotheses: it never ends on a less likely one
    for s, g, b in zip(sources, greedy, beams):
        assert score(model, s, b) >= score(model, s, g) - 1e-9
    out = assert_clean_failure(invoke("generate", reverse_run / "model.onnx", "--prompt", "12x"))
    assert "not in the vocabulary" in out


def score(model, source: str, target: str) -> float:
    """The model's total log-probability of `target` + <eos> after `source`."""
    src = np.array([model.index[c] for c in source])
    ids = [model.index["<bos>"]] + [model.index[c] for c in target] + [model.index["<eos>"]]
    return sum(model.logprobs(src, np.array([ids[:i]]))[0, ids[i]] for i in range(1, len(ids)))


def torch_greedy(run_dir: Path, source: str) -> str:
    """Greedy decoding written out in torch, from the run's checkpoint: what the ONNX file must reproduce."""
    import torch

    model = trained_network(run_dir)
    vocab = SOURCES.find("reverse").vocabulary
    src = torch.tensor([[vocab.index(c) for c in source]])
    out = [1]
    with torch.no_grad():
        while len(out) < 25 and (len(out) == 1 or out[-1] != 2):
            out.append(int(model(src, torch.ones_like(src, dtype=torch.bool), torch.tensor([out]))[0, -1].argmax()))
    return "".join(vocab[t] for t in out[1:] if t != 2)


def test_a_batch_padded_nowhere_has_every_position_real() -> None:
    """Collate builds `<field>_mask` only where it padded: a batch of equal lengths (or of one sample) has no
    `source_mask`, and the model still gets one, all true."""
    import torch

    from udlc.data.collate import collate

    from udlc.tasks.fields import inputs_of

    batch = {k: torch.as_tensor(v) for k, v in collate([{"source": np.array([4, 5]), "decoder": np.array([1, 5])}]).items()}
    source, mask, decoder = inputs_of(["source", "source_mask", "decoder"], batch)
    assert "source_mask" not in batch and mask.dtype == torch.bool and mask.all() and mask.shape == source.shape
