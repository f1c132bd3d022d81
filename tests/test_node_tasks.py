"""tasks node_classification and graph_classification — the built-in graphs, what check refuses at its line, runs
that learn (karate's split; trees from cycles), and the exported file classifying nodes or graphs whatever
their number and order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import assert_clean_failure, edited_spec, line_of, train_here
from udlc.errors import SpecErrors, UdlcError
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
KARATE = ROOT / "examples" / "karate-gcn.yaml"
SBM = ROOT / "examples" / "sbm-gat.yaml"


def written(tmp_path: Path, changes: dict, example: Path = KARATE) -> Path:
    return edited_spec(tmp_path / "g.yaml", example, changes)


@pytest.mark.parametrize("example", [KARATE, SBM], ids=lambda p: p.name)
def test_the_examples_check(example: Path) -> None:
    assert compile_spec(example).task.name == "node_classification"


@pytest.mark.parametrize("changes, marker, words", [
    ({"data.source": "digits"}, "source: digits", "reads a graph"),
    ({"model.inputs.x": ["N", 10]}, "x: [N, 10]", "34 features"),
    ({"model.layers": [{"gcn_conv": {"out_features": 3, "from": ["x", "edge_index"]}}]}, "- gcn_conv:",
     "it gives (N, 3)"),
    ({"loss": "mse"}, "loss: mse", "cross_entropy"),
    ({"metrics": ["r2"]}, "r2", "measures values"),
    ({"model.inputs.edges": {"shape": [2, "E"], "dtype": "int64"}}, "edges:", "none of x, edge_index"),
])
def test_check_refuses_what_training_would_at_its_line(tmp_path: Path, changes, marker, words) -> None:
    spec = written(tmp_path, changes)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    first = info.value.errors[0]
    assert first.span.line == line_of(spec, marker), (first.message, first.span.line)
    assert words in first.message + " " + (first.hint or "")


def test_the_built_in_graphs() -> None:
    from udlc.data.nodes import load_graph

    karate = load_graph(compile_spec(KARATE).spec.data, 0)
    assert karate.x.shape == (34, 34) and karate.edge_index.shape == (2, 156)  # 78 friendships, both ways
    assert (karate.edge_index[0] != karate.edge_index[1]).all() and set(karate.y.tolist()) == {0, 1}
    assert sum(int(m.sum()) for m in karate.masks.values()) == 34
    assert not (karate.masks["train"] & karate.masks["test"]).any()
    spec = compile_spec(SBM).spec.data
    a, b = load_graph(spec, 0), load_graph(spec, 0)
    assert np.array_equal(a.edge_index, b.edge_index) and np.array_equal(a.x, b.x)
    same = a.y[a.edge_index[0]] == a.y[a.edge_index[1]]
    assert same.mean() > 0.7  # communities: most edges stay inside one (p_in 0.05 vs p_out 0.005)


def test_a_bad_edge_is_named_by_its_column(tmp_path: Path) -> None:
    from udlc.data.node_files import clean_edges, read_graph

    with pytest.raises(UdlcError, match="edge 2 \\(column 2 of edge_index\\) joins nodes 1 and 9"):
        clean_edges(np.array([[0, 1, 1], [1, 2, 9]]), 5, "g.npz")
    assert clean_edges(np.array([[0, 1, 1, 3], [1, 1, 2, 0]]), 5, "g").tolist() == [[0, 1, 3], [1, 2, 0]]
    np.savez(tmp_path / "g.npz", x=np.ones((3, 2)))
    with pytest.raises(UdlcError, match="no array edge_index"):
        read_graph(tmp_path / "g.npz")


@pytest.fixture(scope="module")
def karate_run(tmp_path_factory) -> Path:
    from udlc.exporter.onnx import export_run

    root = tmp_path_factory.mktemp("karate")
    run = train_here(KARATE, root / "runs")
    export_run(run)
    return run


@pytest.mark.slow
def test_karate_learns_the_split_and_the_file_agrees_with_torch(karate_run: Path) -> None:
    import json

    import onnxruntime as ort
    import torch

    from tests.conftest import trained_network
    from udlc.data.nodes import load_graph

    assert json.loads((karate_run / "results.json").read_text())["test_accuracy"] >= 0.8
    graph = load_graph(compile_spec(KARATE).spec.data, 0)
    session = ort.InferenceSession(str(karate_run / "model.onnx"))
    logits, probabilities = session.run(None, {"x": graph.x[None], "edge_index": graph.edge_index[None]})
    with torch.no_grad():
        expected = trained_network(karate_run)(torch.from_numpy(graph.x[None]), torch.from_numpy(graph.edge_index[None]))
    assert np.allclose(logits, expected.numpy(), atol=1e-4) and np.allclose(probabilities.sum(-1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_predict_classifies_each_node_whatever_their_order(karate_run: Path, invoke, tmp_path: Path) -> None:
    from udlc.runtime.nodes import GraphClassifier
    from udlc.data.builtin_node_sets import KARATE_EDGES

    edges = np.array(KARATE_EDGES).T
    edges = np.concatenate([edges, edges[::-1]], axis=1)
    np.savez(tmp_path / "karate.npz", x=np.eye(34, dtype=np.float32), edge_index=edges)
    order = np.random.default_rng(0).permutation(34)  # new node i is old node order[i]
    new_id = np.empty(34, dtype=np.int64)
    new_id[order] = np.arange(34)
    np.savez(tmp_path / "shuffled.npz", x=np.eye(34, dtype=np.float32)[order], edge_index=new_id[edges])
    classifier = GraphClassifier(karate_run / "model.onnx")
    before, after = classifier.predict_file(tmp_path / "karate.npz"), classifier.predict_file(tmp_path / "shuffled.npz")
    assert np.allclose(after.probabilities, before.probabilities[order], atol=1e-5)
    result = invoke("predict", karate_run / "model.onnx", tmp_path / "karate.npz")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows[0] == "prediction,p_mr_hi,p_officer" and len(rows) == 35
    np.savez(tmp_path / "bad.npz", x=np.eye(34, dtype=np.float32), edge_index=np.array([[0, 3], [50, 1]]))
    assert "column 0 of edge_index" in assert_clean_failure(invoke("predict", karate_run / "model.onnx",
                                                                    tmp_path / "bad.npz"))


# ---- graph_classification ---------------------------------------------------------------------------------

GIN = ROOT / "examples" / "graphs-gin.yaml"


@pytest.mark.parametrize("changes, marker, words", [
    ({"model.layers": [{"gin_conv": {"out_features": 2, "from": ["x", "edge_index"]}}]}, "layers:", "no readout"),
    ({"model.inputs.batch": {"shape": ["N", 1], "dtype": "int64"}}, "- global_add_pool", "batch vector (N,)"),
    ({"data": {"source": "karate", "split": [0.7, 0.15, 0.15], "normalize": "none"}}, "source: karate", "trees_cycles"),
])
def test_graph_classification_is_checked_at_its_lines(tmp_path: Path, changes, marker, words) -> None:
    spec = written(tmp_path, changes, GIN)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    first = info.value.errors[0]
    assert first.span.line == line_of(spec, marker), (first.message, first.span.line)
    assert words in " ".join(e.message + " " + (e.hint or "") for e in info.value.errors)


def test_trees_have_one_edge_fewer_than_nodes_and_the_others_one_cycle() -> None:
    from udlc.data.builtin_node_sets import trees_and_cycles

    graphs, y = trees_and_cycles(200, None, np.random.default_rng(0))
    assert set(y.tolist()) == {0, 1}
    for (x, edges), label in zip(graphs, y):
        n = len(x)
        assert 6 <= n <= 20 and edges.shape[1] == n - 1 + label and (edges[0] < edges[1]).all()
        assert np.array_equal(x.sum(axis=0) @ np.arange(5) <= edges.size, True)  # degrees (capped) within 2E


def test_a_batch_of_graphs_is_one_disjoint_graph() -> None:
    from udlc.data.nodes import disjoint_union

    a = (np.ones((3, 2), np.float32), np.array([[0, 1], [1, 2]]))
    b = (np.zeros((2, 2), np.float32), np.array([[0], [1]]))
    u = disjoint_union([a, b])
    assert u["x"].shape == (1, 5, 2) and u["edge_index"][0].tolist() == [[0, 1, 3], [1, 2, 4]]
    assert u["batch"][0].tolist() == [0, 0, 0, 1, 1] and u["first"][0].tolist() == [0, 3]


@pytest.mark.slow
def test_graph_classification_learns_and_predicts_per_graph_whatever_the_order(tmp_path: Path) -> None:
    import json

    from udlc.data.nodes import disjoint_union, load_graph_set
    from udlc.exporter.onnx import export_run
    from udlc.runtime.nodes import GraphClassifier

    spec = written(tmp_path, {"train.epochs": 12, "data.samples": 400}, GIN)
    run = train_here(spec, tmp_path / "runs")
    export_run(run)
    assert json.loads((run / "results.json").read_text())["test_accuracy"] >= 0.85
    data = load_graph_set(compile_spec(spec).spec.data, 0)
    test = [data.graphs[i] for i in data.splits["test"]]
    u = disjoint_union(test)
    np.savez(tmp_path / "test.npz", x=u["x"][0], edge_index=u["edge_index"][0], batch=u["batch"][0])
    classifier = GraphClassifier(run / "model.onnx")
    before = classifier.predict_file(tmp_path / "test.npz")
    assert before.probabilities.shape == (len(test), 2)
    assert (before.values == data.y[data.splits["test"]]).mean() >= 0.85
    # the same graphs in reverse order, each one's nodes renumbered: the same answers, reversed
    shuffled = []
    for x, edges in reversed(test):
        order = np.random.default_rng(len(x)).permutation(len(x))
        new_id = np.empty(len(x), dtype=np.int64)
        new_id[order] = np.arange(len(x))
        shuffled.append((x[order], new_id[edges]))
    v = disjoint_union(shuffled)
    np.savez(tmp_path / "shuffled.npz", x=v["x"][0], edge_index=v["edge_index"][0], batch=v["batch"][0])
    after = classifier.predict_file(tmp_path / "shuffled.npz")
    assert np.allclose(after.probabilities, before.probabilities[::-1], atol=1e-5)


# ---- link_prediction -----------------------------------------------------------------------------------------

LINKS = ROOT / "examples" / "sbm-links.yaml"


def test_edges_are_split_and_held_out_edges_never_pass_messages() -> None:
    from udlc.data.nodes import load_graph, split_edges

    spec = compile_spec(LINKS).spec
    whole = load_graph(spec.data, 0)
    every = {tuple(p) for p in np.sort(whole.edge_index, axis=0).T.tolist()}
    data = split_edges(load_graph(spec.data, 0), spec.data.split, 0)
    parts = [set(map(tuple, data.pairs[s].T.tolist())) for s in ("train", "val", "test")]
    assert set().union(*parts) == every and sum(map(len, parts)) == len(every)
    assert {tuple(p) for p in np.sort(data.edge_index, axis=0).T.tolist()} == parts[0]
    for split in ("val", "test"):
        negatives = data.negatives[split]
        assert negatives.shape == data.pairs[split].shape and (negatives[0] != negatives[1]).all()
        assert not {tuple(p) for p in negatives.T.tolist()} & every


@pytest.mark.parametrize("changes, marker, words", [
    ({"metrics": ["accuracy"]}, "metrics:", "its own loss and auc"),
    ({"loss": "cross_entropy"}, "loss: cross_entropy", "defines its own losses"),
])
def test_link_prediction_is_checked_at_its_lines(tmp_path: Path, changes, marker, words) -> None:
    spec = written(tmp_path, changes, LINKS)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, marker) and words in e.message


@pytest.mark.slow
def test_link_prediction_ranks_held_out_edges_and_scores_pairs_from_the_file(tmp_path: Path, invoke) -> None:
    import json

    import torch

    from tests.conftest import trained_network
    from udlc.data.nodes import load_graph, split_edges
    from udlc.exporter.onnx import export_run

    spec = written(tmp_path, {"train.epochs": 40}, LINKS)
    run = train_here(spec, tmp_path / "runs")
    export_run(run)
    assert json.loads((run / "results.json").read_text())["test_auc"] > 0.65  # 0.5 is chance
    data = split_edges(load_graph(compile_spec(spec).spec.data, 0), [0.8, 0.1, 0.1], 0)
    pairs = np.concatenate([data.pairs["test"][:, :5], data.negatives["test"][:, :5]], axis=1)
    raw = data.normalization.invert(data.x)
    np.savez(tmp_path / "links.npz", x=raw, edge_index=data.edge_index, pairs=pairs)
    result = invoke("predict", run / "model.onnx", tmp_path / "links.npz")
    assert result.returncode == 0, result.stderr
    rows = [line.split(",") for line in result.stdout.strip().splitlines()]
    assert rows[0] == ["source", "target", "probability"] and len(rows) == 11
    with torch.no_grad():
        z = trained_network(run)(torch.from_numpy(data.x[None]), torch.from_numpy(data.edge_index[None]))[0]
    expected = torch.sigmoid((z[pairs[0]] * z[pairs[1]]).sum(-1)).numpy()
    got = [float(r[2]) for r in rows[1:]]
    assert np.allclose(got, expected, atol=1e-4), str(got) + " " + str(expected.tolist())
