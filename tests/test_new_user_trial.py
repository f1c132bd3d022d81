"""What a new user's first trial ran into (issue 19 §7): predict's rows and columns, a char tokenizer's unseen
characters, edge lists read both ways, the diagnosis and doctor's advice, Ctrl-C in the first epoch, --seeds and
the split, `udlc runs` on a missing folder. Each small: a model trained in-process for a few steps at most."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.conftest import (
    DIGITS_MLP, assert_clean_failure, edited_spec, refused_at, train_here, write_csv, write_spec,
)
from tests.processes import describe
from udlc.errors import UdlcError

ROOT = Path(__file__).resolve().parent.parent


def parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


# ---- udlc predict: one answer per row, keyed; a regression's column named after its target ------------------

HOUSES = {
    "udlc": 1, "name": "houses", "seed": 0,
    "data": {"source": "houses.csv", "target": "price"},
    "model": {"input": [2], "layers": [{"linear": 1}]},
    "loss": "mse",
    "optimizer": {"type": "adam", "lr": 0.05},
    "train": {"epochs": 2, "batch_size": 16},
    "export": {"onnx": {"opset": 18}},
}


@pytest.fixture(scope="module")
def houses(tmp_path_factory) -> Path:
    """model.onnx of a linear regression of a CSV's `price` on `area` and `rooms`."""
    import torch

    from udlc.exporter.onnx import export_run

    root = tmp_path_factory.mktemp("houses")
    rng = np.random.default_rng(0)
    rows = [[f"{a:.3f}", f"{b:.3f}", f"{3 * a - b:.3f}"] for a, b in rng.normal(size=(60, 2))]
    write_csv(root / "houses.csv", ["area", "rooms", "price"], rows)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = train_here(write_spec(root / "houses.yaml", HOUSES), root / "runs")
        return export_run(run)
    finally:
        torch.set_num_threads(threads)


def test_predict_gives_one_answer_per_row_keyed_by_line_and_named_after_the_target(houses, tmp_path, invoke):
    (tmp_path / "new.csv").write_text("area,rooms\n1,2\n\n0.5,1\n")  # a blank line between samples
    err = assert_clean_failure(invoke("predict", houses, "new.csv"))
    assert "new.csv line 3 is an empty row" in err and "delete the line" in err, err
    (tmp_path / "new.csv").write_text("area,rooms\n1,2\n,\n0.5,1\n")  # a row of empty cells
    assert "new.csv line 3 is an empty row" in assert_clean_failure(invoke("predict", houses, "new.csv"))

    (tmp_path / "new.csv").write_text("area,rooms\n1,2\n0.5,1\n\n\n")  # blank lines after the rows hold nothing
    result = invoke("predict", houses, "new.csv")
    assert result.returncode == 0, describe(result)
    rows = parse(result.stdout)
    assert rows[0] == ["line", "price"] and [r[0] for r in rows[1:]] == ["2", "3"], rows
    assert float(rows[1][1]) != float(rows[2][1])


def test_predict_keys_answers_by_an_id_column(houses, tmp_path, invoke):
    (tmp_path / "new.csv").write_text("house,rooms,area\nh7,2,1\nh9,1,0.5\n")
    result = invoke("predict", houses, "new.csv", "--id", "house")
    assert result.returncode == 0, describe(result)
    by_id = parse(result.stdout)
    assert by_id[0] == ["house", "price"] and [r[0] for r in by_id[1:]] == ["h7", "h9"], by_id
    (tmp_path / "plain.csv").write_text("area,rooms\n1,2\n0.5,1\n")
    plain = parse(invoke("predict", houses, "plain.csv").stdout)
    assert [r[1] for r in by_id[1:]] == [r[1] for r in plain[1:]]  # the id is no feature
    assert "no column 'hose'" in assert_clean_failure(invoke("predict", houses, "new.csv", "--id", "hose"))
    np.save(tmp_path / "x.npy", np.zeros((2, 2), np.float32))
    assert "--id names a column of a CSV" in assert_clean_failure(invoke("predict", houses, "x.npy", "--id", "a"))


def test_a_target_given_by_position_or_not_at_all_keeps_y() -> None:
    from udlc.runtime.predict import Predictions, target_name

    assert target_name({"spec": "data: {source: h.csv, target: price}"}) == "price"
    assert target_name({"spec": "data: {source: h.csv, target: 2}"}) is None
    assert target_name({"spec": "data: {source: h.csv}"}) is None
    assert target_name({"target_column": "cost", "spec": "data: {target: price}"}) == "cost"
    plain = Predictions("regression", np.array([[1.5], [2.0]]), None, None)
    assert parse(plain.to_csv()) == [["y"], ["1.5"], ["2"]]


# ---- the char tokenizer's unknown id -------------------------------------------------------------------------


def test_a_char_tokenizer_maps_unseen_characters_to_its_unknown_id() -> None:
    from udlc.data.text import CharTokenizer, tokenizer_from_json

    tok = CharTokenizer.fit("banana")
    assert tok.chars == "abn" and tok.vocab_size == 4  # a, b, n and the unknown id
    assert tok.encode("bandana!").tolist() == [1, 0, 2, 3, 0, 2, 0, 3]
    assert tok.decode([1, 3, 0]) == "b\ufffda"
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    assert again.vocab_size == 4 and again.encode("d").tolist() == [3]
    # a file exported before the unknown id: its vocabulary as it was, an unseen character still refused
    old = tokenizer_from_json({"type": "char", "chars": "abn"})
    assert old.vocab_size == 3 and old.encode("nab").tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match="never seen"):
        old.encode("d")


def test_a_text_the_old_tokenizer_cannot_encode_is_named_by_its_line(tmp_path) -> None:
    from udlc.data.text import CharTokenizer
    from udlc.runtime.text import TextClassifier

    classifier = TextClassifier.__new__(TextClassifier)  # the reading and encoding alone: no model runs
    classifier.column, classifier.limit, classifier.tokenizer = "review", 40, CharTokenizer("abn")
    classifier.columns = [classifier.column]
    (tmp_path / "t.csv").write_text("id,review\n1,banana\n2,bandana\n")
    with pytest.raises(UdlcError, match=r"t.csv line 3: characters the tokenizer has never seen: 'd'"):
        classifier.predict_csv(tmp_path / "t.csv")
    (tmp_path / "t.csv").write_text("id,review\n1,banana\n,\n2,nab\n")
    with pytest.raises(UdlcError, match="t.csv line 3 is an empty row"):
        classifier.predict_csv(tmp_path / "t.csv")


# ---- a CSV edge list is undirected unless the spec says directed: true ----------------------------------------


def edge_list(tmp_path: Path, directed: bool | None = None):
    from udlc.spec.data import DataSpec

    (tmp_path / "nodes.csv").write_text("f,side\n" + "\n".join(f"{i},{'ab'[i % 2]}" for i in range(4)) + "\n")
    (tmp_path / "edges.csv").write_text("source,target\n0,1\n1,2\n2,3\n")
    options = {} if directed is None else {"directed": directed}
    return DataSpec(source="edges.csv", nodes="nodes.csv", target="side", **options)


def test_an_edge_list_is_read_both_ways_and_says_so(tmp_path) -> None:
    from udlc.data.nodes import load_graph

    both = load_graph(edge_list(tmp_path), 0, tmp_path)
    assert {tuple(e) for e in both.edge_index.T.tolist()} == {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2)}
    assert both.notes == ["edges.csv: 3 edges, read as undirected (directed: true keeps them one-way)"]
    one_way = load_graph(edge_list(tmp_path, directed=True), 0, tmp_path)
    assert {tuple(e) for e in one_way.edge_index.T.tolist()} == {(0, 1), (1, 2), (2, 3)}
    assert "read as directed" in one_way.notes[0]


def test_training_says_how_it_read_the_edge_list(tmp_path, capsys, one_torch_thread) -> None:
    from udlc.tasks import compile_spec
    from udlc.trainer.run import train_spec

    edge_list(tmp_path)
    spec = edited_spec(tmp_path / "g.yaml", ROOT / "examples" / "karate-gcn.yaml", {
        "data": {"source": "edges.csv", "nodes": "nodes.csv", "target": "side", "split": [0.5, 0.25, 0.25]},
        "model.inputs.x": ["N", 1], "train.epochs": 1, "export": {}})
    train_spec(compile_spec(spec), out=tmp_path / "runs")  # prints what `udlc train` does (no curves, no export)
    out = capsys.readouterr().out
    assert "edges.csv: 3 edges, read as undirected (directed: true keeps them one-way)" in out, out


def test_directed_is_for_an_edge_list_alone(tmp_path) -> None:
    spec = edited_spec(tmp_path / "k.yaml", ROOT / "examples" / "karate-gcn.yaml",
                       {"data": {"source": "karate", "directed": True}})
    refused_at(spec, "directed: true", "edge list in CSV")


# ---- the diagnosis ---------------------------------------------------------------------------------------------


def rows(train: list[float], val: list[float] | None = None, lr: float = 0.01) -> list[dict[str, str]]:
    return [{"epoch": str(i + 1), "train_loss": str(t), "lr": str(lr), **({"val_loss": str(val[i])} if val else {})}
            for i, t in enumerate(train)]


def test_a_learning_rate_of_zero_is_named_not_called_unstable() -> None:
    from udlc.runs.diagnosis import diagnose

    found = diagnose(rows([0.02, 0.015, 0.03, 0.016, 0.025], lr=0.0))
    assert found.verdict == "not learning" and "learning rate was 0" in found.evidence, found
    assert "optimizer.lr" in found.advice


def test_a_small_wobble_at_a_low_loss_is_not_unstable_and_overfitting_shows() -> None:
    from udlc.runs.diagnosis import diagnose

    # train_loss wobbles by 0.01 near zero (the last epoch above the one before); val_loss rose 0.244 → 0.350
    train = [0.9, 0.31, 0.08, 0.03, 0.012, 0.02, 0.008, 0.015]
    val = [0.6, 0.35, 0.244, 0.26, 0.29, 0.31, 0.33, 0.350]
    found = diagnose(rows(train, val))
    assert found.verdict == "overfitting" and "lowest at epoch 3 (0.244)" in found.evidence, found
    assert diagnose(rows(train)).verdict != "unstable"
    assert diagnose(rows([2.0, 1.0, 0.6, 2.5, 0.5, 0.4])).verdict == "unstable"  # a real spike still is


# ---- udlc doctor: advice that fits the spec; the initial loss of a language model ------------------------------


@pytest.mark.parametrize("kind, words", [("minmax", "use `normalize: standard`"),
                                         ("none", "drop `normalize: none`")])
def test_doctor_advice_fits_the_normalization_the_spec_has(kind, words) -> None:
    from udlc.guide.data_checks import check_data

    x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32) * np.array([1.0, 1000.0], np.float32)
    data = SimpleNamespace(x_train=x[:50], x_val=x[50:55], x_test=x[55:], normalization=SimpleNamespace(kind=kind),
                           feature_columns=["a", "b"], task="regression")
    found = check_data(data, "supervised")
    assert found.status == "warn" and words in found.summary and "false" not in found.summary, found


@pytest.mark.parametrize("factor, status", [(None, "ok"), (40.0, "fail")])
def test_doctor_checks_a_language_models_initial_loss_against_ln_vocab(tmp_path, one_torch_thread, factor,
                                                                       status) -> None:
    from udlc.tasks import compile_spec
    from udlc.guide.doctor import check_output

    (tmp_path / "corpus.txt").write_text("abc\n" * 300)  # 4 characters and the unknown id: 5 tokens
    layers = [{"embedding": {"num_embeddings": 5, "embedding_dim": 8}}, {"linear": 5}]
    spec = write_spec(tmp_path / "lm.yaml", {
        "udlc": 1, "name": "tiny-lm", "seed": 0, "task": {"language_model": {"context": 8}},
        "data": {"source": "corpus.txt", "tokenizer": "char"},
        "model": {"input": {"shape": ["T"], "dtype": "int64"},
                  "layers": layers + ([{"scale": factor}] if factor else [])},
        "loss": "cross_entropy", "optimizer": {"adam": {"lr": 0.01}}, "train": {"batch_size": 8}})
    compiled = compile_spec(spec)
    found = check_output(compiled, compiled.task.load_data(compiled))
    assert found.status == status and f"expected about {math.log(5):.4g} (ln 5 for a vocabulary of 5 tokens)" \
        in found.summary, found


# ---- Ctrl-C: resume only what can be resumed -----------------------------------------------------------------


def test_ctrl_c_in_the_first_epoch_says_nothing_can_be_resumed(tmp_path, monkeypatch, one_torch_thread) -> None:
    from udlc.tasks import compile_spec
    from udlc.trainer import loop
    from udlc.trainer.run import TrainingInterrupted, train_spec

    spec = write_spec(tmp_path / "d.yaml", {**DIGITS_MLP, "export": {}}, train={"epochs": 2, "batch_size": 64})

    def stop(row):
        raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as after_one:  # after epoch 1: its checkpoint is there
        train_spec(compile_spec(spec), out=tmp_path / "runs", quiet=True, on_epoch=stop)
    assert "continue with: udlc train --resume" in str(after_one.value)

    def interrupted(s):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "fit", interrupted)  # Ctrl-C before the first epoch ends
    with pytest.raises(TrainingInterrupted) as during_one:
        train_spec(compile_spec(spec), out=tmp_path / "runs", quiet=True)
    message = str(during_one.value)
    assert "--resume" not in message and "no checkpoint, so nothing can be resumed" in message, message
    assert f"udlc train {spec}" in message


# ---- --seeds: the same split, another initialization -----------------------------------------------------------


def test_seeds_keep_the_data_and_split_and_vary_the_initialization(tmp_path, one_torch_thread) -> None:
    from udlc.tasks import compile_spec
    from udlc.trainer.run import build_models
    from udlc.guide.seeds import seed_overrides

    spec = write_spec(tmp_path / "m.yaml", {**DIGITS_MLP, "seed": 5, "export": {}},  # the seed draws the moons
                      data={"source": "moons", "samples": 200},
                      model={"input": [2], "layers": [{"linear": 8}, "relu", {"linear": 2}]})
    runs = [compile_spec(spec, (override,)) for override in seed_overrides(5, 2)]
    assert [c.spec.seed for c in runs] == [5, 5] and [c.spec.train.seed for c in runs] == [5, 6]
    data = [c.task.load_data(c) for c in runs]
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(data[0], f"x_{split}"), getattr(data[1], f"x_{split}"))
    weights = [next(iter(build_models(c, "cpu")["model"].parameters())).detach() for c in runs]
    assert not np.allclose(weights[0].numpy(), weights[1].numpy())


# ---- udlc runs on a folder that is not there -------------------------------------------------------------------


def test_runs_on_a_missing_folder_is_an_error_naming_it(tmp_path, invoke) -> None:
    err = assert_clean_failure(invoke("runs", tmp_path / "nowhere"), code=1)
    assert "nowhere" in err and "--out" in err
    (tmp_path / "empty").mkdir()
    result = invoke("runs", tmp_path / "empty")
    assert result.returncode == 0 and "no runs under" in result.stdout
