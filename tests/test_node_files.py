"""Graph files: a `.npz` of one graph (masks, edge weights) or of many, and a graph in CSV (an edge list and a
node file) — they train, and check names what is wrong in them at the spec's data.source line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import edited_spec, line_of, train_here
from udlc.errors import SpecErrors, UdlcError
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent
KARATE = ROOT / "examples" / "karate-gcn.yaml"


def written(tmp_path: Path, changes: dict) -> Path:
    return edited_spec(tmp_path / "g.yaml", KARATE, changes)


def karate_file(path: Path, **changes) -> Path:
    from udlc.data.builtin_node_sets import KARATE_EDGES, KARATE_SIDES

    edges = np.array(KARATE_EDGES).T
    train = np.zeros(34, bool)
    train[[0, 1, 2, 31, 32, 33]] = True
    arrays = {"x": np.eye(34, dtype=np.float32), "edge_index": np.concatenate([edges, edges[::-1]], axis=1),
              "y": np.array(KARATE_SIDES), "train_mask": train, "test_mask": ~train, **changes}
    np.savez(path, **arrays)
    return path


def file_spec(tmp_path: Path, source: str) -> Path:
    return written(tmp_path, {"data": {"source": source, "normalize": "none"}, "train.epochs": 60})


@pytest.mark.parametrize("changes, words", [
    ({"test_mask": np.ones(34, bool)}, "node 0 is in both train_mask and test_mask"),
    ({"edge_index": np.array([[0, 5], [1, 34]])}, "edge 1 (column 1 of edge_index) joins nodes 5 and 34"),
    ({"y": np.zeros(33, np.int64)}, "y must give each of the 34 nodes a class id"),
])
def test_check_reads_a_graph_file_whole_and_names_what_is_wrong(tmp_path: Path, changes, words) -> None:
    karate_file(tmp_path / "club.npz", **changes)
    spec = file_spec(tmp_path, "club.npz")
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, "source: club.npz") and words in e.message


@pytest.mark.slow
def test_a_graph_file_with_its_own_masks_trains(tmp_path: Path) -> None:
    import json

    karate_file(tmp_path / "club.npz")
    run = train_here(file_spec(tmp_path, "club.npz"), tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["classes"] == ["0", "1"]
    assert json.loads((run / "results.json").read_text())["test_accuracy"] >= 0.8  # 6 labelled members of 34


def test_a_file_of_many_graphs_is_split_into_its_graphs(tmp_path: Path) -> None:
    from udlc.data.node_files import graphs_of_file

    x = np.arange(10, dtype=np.float32).reshape(5, 2)
    batch = np.array([0, 1, 0, 1, 1])
    np.savez(tmp_path / "g.npz", x=x, edge_index=np.array([[0, 1, 3], [2, 4, 1]]), batch=batch, y=np.array([1, 0]))
    graphs, y = graphs_of_file(tmp_path / "g.npz")
    assert y.tolist() == [1, 0] and [g[0].tolist() for g in graphs] == [x[[0, 2]].tolist(), x[[1, 3, 4]].tolist()]
    assert graphs[0][1].tolist() == [[0], [1]] and graphs[1][1].tolist() == [[0, 1], [2, 0]]  # 1→4, 3→1
    # graph_ptr, PyG's other form: the same graphs when their nodes come in order
    np.savez(tmp_path / "ptr.npz", x=x[[0, 2, 1, 3, 4]], edge_index=np.array([[0], [1]]), graph_ptr=np.array([0, 2, 5]),
             y=np.array([1, 0]))
    graphs, _ = graphs_of_file(tmp_path / "ptr.npz")
    assert [len(g[0]) for g in graphs] == [2, 3] and graphs[0][1].tolist() == [[0], [1]]
    np.savez(tmp_path / "bad.npz", x=x, edge_index=np.array([[0], [1]]), batch=batch, y=np.array([1, 0]))
    with pytest.raises(UdlcError, match="edge 0 joins node 0 of graph 0 and node 1 of graph 1"):
        graphs_of_file(tmp_path / "bad.npz")



WEIGHTED_MODEL = {
    "inputs": {"x": ["N", 34], "edge_index": {"shape": [2, "E"], "dtype": "int64"},
               "edge_weight": {"shape": ["E"], "dtype": "float32"}},
    "layers": [{"gcn_conv": {"out_features": 16, "from": ["x", "edge_index", "edge_weight"]}},
               {"relu": {"id": "h"}},
               {"gcn_conv": {"out_features": 2, "from": ["h", "edge_index", "edge_weight"]}}],
}


def test_edge_weights_need_a_graph_that_has_them(tmp_path: Path) -> None:
    spec = written(tmp_path, {"model": WEIGHTED_MODEL})
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, "edge_weight:") and "has no edge weights" in e.message


@pytest.mark.slow
def test_a_weighted_graph_trains_and_its_file_weighs_edges_as_torch(tmp_path: Path) -> None:
    import torch

    from tests.conftest import trained_network
    from udlc.data.node_files import read_graph
    from udlc.exporter.onnx import export_run
    from udlc.runtime.nodes import GraphClassifier

    from udlc.data.builtin_node_sets import KARATE_EDGES

    edges = np.array(KARATE_EDGES).T
    edges = np.concatenate([edges, edges[::-1]], axis=1)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, edges.shape[1]).astype(np.float32)
    karate_file(tmp_path / "club.npz", edge_index=edges, edge_weight=weight)
    spec = written(tmp_path, {"data": {"source": "club.npz", "normalize": "none"}, "model": WEIGHTED_MODEL,
                              "train.epochs": 30})
    run = train_here(spec, tmp_path / "runs")
    export_run(run)
    x, clean, _, w = read_graph(tmp_path / "club.npz")
    with torch.no_grad():
        expected = torch.softmax(trained_network(run)(torch.from_numpy(x[None]), torch.from_numpy(clean[None]),
                                                      torch.from_numpy(w[None]))[0], dim=-1).numpy()
    got = GraphClassifier(run / "model.onnx").predict_file(tmp_path / "club.npz").probabilities
    assert np.allclose(got, expected, atol=1e-5)
    np.savez(tmp_path / "plain.npz", x=x, edge_index=clean)
    with pytest.raises(UdlcError, match="weighs edges"):
        GraphClassifier(run / "model.onnx").predict_file(tmp_path / "plain.npz")



# ---- graphs from CSV: an edge list and a node file -------------------------------------------------------------


def csv_graph(tmp_path: Path, edge_lines: list[str] | None = None, node_cell: str = "1") -> Path:
    from udlc.data.builtin_node_sets import KARATE_EDGES, KARATE_SIDES

    rows = [",".join(node_cell if j == i == 5 else ("1" if j == i else "0") for j in range(34))
            + ("," + ("hi" if KARATE_SIDES[i] == 0 else "officer")) for i in range(34)]
    (tmp_path / "nodes.csv").write_text(",".join(f"f{i}" for i in range(34)) + ",side\n" + "\n".join(rows) + "\n")
    lines = edge_lines or [f"{u},{v}\n{v},{u}" for u, v in KARATE_EDGES]
    (tmp_path / "edges.csv").write_text("source,target\n" + "\n".join(lines) + "\n")
    return written(tmp_path, {"data": {"source": "edges.csv", "nodes": "nodes.csv", "target": "side",
                                       "normalize": "none"}, "train.epochs": 60})


@pytest.mark.slow
def test_a_graph_from_an_edge_list_and_a_node_file_trains(tmp_path: Path) -> None:
    import json

    run = train_here(csv_graph(tmp_path), tmp_path / "runs")
    assert json.loads((run / "run.json").read_text())["classes"] == ["hi", "officer"]
    assert json.loads((run / "results.json").read_text())["test_accuracy"] >= 0.8


@pytest.mark.parametrize("edge_lines, node_cell, words", [
    (["0,1", "2,x"], "1", "edges.csv:3: '2,x' is not source,target"),
    (["0,1", "3,40"], "1", "edges.csv:3: the edge 3,40 names a node that nodes.csv does not have"),
    (None, "yes", "nodes.csv:7: column 'f5' holds 'yes', not a number"),
])
def test_check_names_the_bad_row_of_a_csv_graph(tmp_path: Path, edge_lines, node_cell, words) -> None:
    spec = csv_graph(tmp_path, edge_lines, node_cell)
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    (e,) = info.value.errors
    assert e.span.line == line_of(spec, "source: edges.csv") and words in e.message, e.message


def test_nodes_belong_to_graph_tasks_and_an_edge_list_needs_them(tmp_path: Path) -> None:
    spec = csv_graph(tmp_path)
    doc = yaml.safe_load(spec.read_text())
    del doc["data"]["nodes"]
    spec.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecErrors) as info:
        compile_spec(spec)
    assert "node file" in info.value.errors[0].message
    (tmp_path / "t.csv").write_text("a,b\n1,0\n2,1\n")
    tabular = tmp_path / "t.yaml"
    tabular.write_text(yaml.safe_dump({"udlc": 1, "name": "t", "data": {"source": "t.csv", "nodes": "nodes.csv"},
                                       "model": {"input": [1], "layers": [{"linear": 2}]}, "loss": "cross_entropy"}))
    with pytest.raises(SpecErrors) as info:
        compile_spec(tabular)
    assert "reads no graph" in info.value.errors[0].message
