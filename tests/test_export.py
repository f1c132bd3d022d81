"""ONNX export of a run: its file stands on its own (its graph standardizes raw inputs and gives probabilities or
values in the targets' units, its metadata says how to build the inputs); a failed export never touches the
previous model.onnx. (Every layer sample's export: tests/test_layer_export.py.)"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainedRun
from tests.fast_export import fast_exporter  # noqa: F401  (a fixture: pytest finds it by name)
from udlc.exporter.onnx import ExportError
from udlc.layers import REGISTRY

pytestmark = pytest.mark.usefixtures("fast_exporter")


def metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_run_export_carries_metadata(digits_run: TrainedRun) -> None:
    import onnx

    from udlc.runs import udlc_version

    path = digits_run.run / "model.onnx"
    meta = metadata(path)
    info = digits_run.read_json("run.json")
    spec_text = (digits_run.run / "spec.yaml").read_text()
    assert meta["udlc_version"] == udlc_version()
    assert meta["spec_sha256"] == hashlib.sha256((digits_run.run / "spec.yaml").read_bytes()).hexdigest()
    assert meta["spec"] == spec_text and meta["spec_name"] == "tiny-digits"
    assert json.loads(meta["classes"]) == info["classes"] == [str(i) for i in range(10)]
    assert json.loads(meta["normalization"]) == info["normalization"]
    assert json.loads(meta["target_normalization"]) is None
    assert json.loads(meta["input_shapes"]) == [[64]]
    assert json.loads(meta["feature_columns"]) is None  # a built-in set: columns by position
    assert json.loads(meta["categories"]) == {} and json.loads(meta["fill_values"]) == {}
    model = onnx.load(str(path))
    assert json.loads(meta["input_names"]) == [i.name for i in model.graph.input] == ["x"]
    assert json.loads(meta["outputs"]) == [o.name for o in model.graph.output] == ["logits", "probabilities"]
    assert meta["served"] == "classes" and meta["task"] == "supervised" and meta["target"] == "classification"
    assert meta["loss"] == "cross_entropy"
    assert meta["checkpoint"] in ("best", "last")
    norm = json.loads(meta["normalization"])
    assert norm["kind"] == "standard" and len(norm["shift"]) == len(norm["scale"]) == 64


def test_csv_run_metadata_says_how_to_build_inputs(csv_run: TrainedRun) -> None:
    meta, info = metadata(csv_run.run / "model.onnx"), csv_run.read_json("run.json")
    assert json.loads(meta["feature_columns"]) == info["feature_columns"] == \
        ["color=blue", "color=green", "color=red", "a", "b"]
    assert json.loads(meta["categories"]) == info["categories"] == {"color": ["blue", "green", "red"]}
    assert json.loads(meta["fill_values"]) == info["fill_values"] and set(info["fill_values"]) == {"a", "b"}


def run_network(run_dir: Path, raw: np.ndarray):
    """network(standardized raw inputs) in torch from the run's weights, and run.json: what the file's graph
    must give from the raw inputs, computed without it."""
    import torch

    from udlc.compiler.lower import lower
    from udlc.data import Normalization
    from udlc.runs import RunFolder, checkpoint

    run = RunFolder.open(run_dir)
    compiled = run.compiled()
    (name, graph), = compiled.graphs.items()
    network = lower(graph).eval()
    checkpoint.load_models({name: network}, run.final_checkpoint(compiled.spec))
    x = Normalization.from_json(run.info["normalization"]).apply_normalization(raw)
    with torch.no_grad():
        return network(torch.from_numpy(x)), run.info


def test_classifier_graph_standardizes_and_gives_probabilities(digits_run: TrainedRun) -> None:
    import onnxruntime as ort
    import torch
    from sklearn.datasets import load_digits

    raw = load_digits().data[:5].astype(np.float32)  # raw pixel values 0..16, as a user has them
    session = ort.InferenceSession(str(digits_run.run / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, probs = session.run(["logits", "probabilities"], {"x": raw})
    expected, _ = run_network(digits_run.run, raw)
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-5, rtol=1e-4)
    np.testing.assert_allclose(probs, torch.softmax(expected, dim=1).numpy(), atol=1e-6)
    assert (probs.argmax(axis=1) == np.arange(5)).sum() >= 3  # digits 0..4, mostly told apart


def test_regression_graph_unstandardizes(sine_run: TrainedRun) -> None:
    import onnxruntime as ort

    from udlc.data import Normalization

    meta = metadata(sine_run.run / "model.onnx")
    assert meta["served"] == "values" and meta["target"] == "regression" and json.loads(meta["classes"]) is None
    assert json.loads(meta["input_shapes"]) == [[1]] and json.loads(meta["outputs"]) == ["prediction"]
    raw = np.linspace(-3, 3, 7, dtype=np.float32).reshape(-1, 1)
    session = ort.InferenceSession(str(sine_run.run / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    (got,) = session.run(None, {"x": raw})
    out, info = run_network(sine_run.run, raw)
    assert json.loads(meta["target_normalization"]) == info["target_normalization"]
    expected = Normalization.from_json(info["target_normalization"]).invert(out.numpy())
    assert np.abs(expected - out.numpy()).max() > 1e-2  # the un-standardization shows in the values
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)


@pytest.fixture
def run_copy(tmp_path: Path, digits_run: TrainedRun) -> Path:
    run = tmp_path / "run"
    shutil.copytree(digits_run.run, run)
    return run


def test_failed_parity_leaves_model_onnx_untouched(run_copy: Path, monkeypatch) -> None:
    import udlc.exporter.onnx as export
    from udlc.exporter.onnx import ExportError

    before = (run_copy / "model.onnx").read_bytes()

    def fail(*args, **kwargs):
        raise ExportError("ONNX parity check failed: (simulated)")

    monkeypatch.setattr(export, "check_parity", fail)
    with pytest.raises(ExportError, match="simulated"):
        export.export_run(run_copy)
    assert (run_copy / "model.onnx").read_bytes() == before
    assert not list(run_copy.glob(".*tmp*"))  # the temporary file is removed


def test_failed_exporter_leaves_model_onnx_untouched(run_copy: Path, monkeypatch) -> None:
    import torch

    import udlc.exporter.onnx as export
    from udlc.exporter.onnx import ExportError

    before = (run_copy / "model.onnx").read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("exporter exploded\nsecond line")

    monkeypatch.setattr(torch.onnx, "export", boom)
    with pytest.raises(ExportError) as info:
        export.export_run(run_copy)
    assert "RuntimeError: exporter exploded" in str(info.value)
    assert (run_copy / "model.onnx").read_bytes() == before
    assert not list(run_copy.glob(".*tmp*"))


def test_real_parity_mismatch_is_caught(tmp_path: Path, monkeypatch) -> None:
    """check_parity itself: a model whose onnxruntime output differs from torch's fails the gate."""
    import torch

    import udlc.exporter.onnx as export
    from udlc.exporter.onnx import ExportError
    from udlc.spec.training import OnnxExport

    lt = REGISTRY["linear"]
    args, shapes = lt.samples[0]
    module = lt.build(lt.config.model_validate(args), *shapes)
    path = export.export_module(module, [("x", shapes[0])], tmp_path / "m.onnx", OnnxExport())
    before = path.read_bytes()
    with torch.no_grad():  # torch now computes something else than the exported file
        for p in module.parameters():
            p.add_(1.0)
    with pytest.raises(ExportError, match="parity"):
        export.check_parity(module, [("x", shapes[0])], path, 1e-5, 1e-4)
    assert path.read_bytes() == before


def test_exporter_failure_message_says_why(tmp_path: Path) -> None:
    import torch

    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # torch.export cannot branch on data

    with pytest.raises(ExportError) as info:
        export_module(DataDependent(), [("x", (3,))], tmp_path / "m.onnx", OnnxExport())
    message = str(info.value)
    assert not list(tmp_path.iterdir())
    assert "\x1b[" not in message, message
    assert "data-dependent" in message, message


def test_export_does_not_need_the_training_data(run_copy: Path) -> None:
    import yaml

    from udlc.exporter.onnx import export_run

    spec = yaml.safe_load((run_copy / "spec.yaml").read_text())
    spec["data"]["source"] = str(run_copy / "moved-away.csv")  # a file-based run whose data has gone
    (run_copy / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = export_run(run_copy, run_copy / "again.onnx")
    assert out.is_file()


# ---- the serving module on its own: each kind of answer, several outputs, the parity gate --------------


def norm(shift: list[float], scale: list[float]):
    from udlc.data import Normalization

    return Normalization("standard", np.array(shift, np.float32), np.array(scale, np.float32))


def export_serving(tmp_path: Path, network, answers: str, output: int | None = None, target=None):
    import onnxruntime as ort

    from udlc.exporter.onnx import export_module
    from udlc.exporter.serving import Serving
    from udlc.spec.training import OnnxExport

    module = Serving(network.eval(), (3,), output, answers, norm([10, -5, 0], [2, 4, 0.5]), target)
    path = export_module(module, [("x", (3,))], tmp_path / "m.onnx", OnnxExport(), output_names=module.output_names)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


RAW = np.array([[10, -5, 0], [12, -1, 1], [0, 0, 0], [30, 20, -2]], np.float32)
STANDARDIZED = (RAW - np.array([10, -5, 0], np.float32)) / np.array([2, 4, 0.5], np.float32)


def linear(out: int, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Linear(3, out)


def numpy_linear(layer, x: np.ndarray) -> np.ndarray:
    return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()


def test_sigmoid_answers_two_probability_columns(tmp_path: Path) -> None:
    """bce: one logit z; probabilities [1 - p, p] with p = sigmoid(z), so the class is the argmax."""
    layer = linear(1)
    session = export_serving(tmp_path, layer, "sigmoid")
    assert [o.name for o in session.get_outputs()] == ["logits", "probabilities"]
    logits, probs = session.run(None, {"x": RAW})
    z = numpy_linear(layer, STANDARDIZED)
    p = 1 / (1 + np.exp(-z[:, 0]))
    np.testing.assert_allclose(logits, z, atol=1e-5)
    np.testing.assert_allclose(probs, np.stack([1 - p, p], axis=1), atol=1e-6)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(axis=1), 1)


def test_served_output_of_several_is_picked(tmp_path: Path) -> None:
    """A network with several outputs (task: auxiliary) serves the one Served.output names."""
    import torch

    class TwoHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.main, self.aux = linear(4, seed=1), linear(4, seed=2)

        def forward(self, x):
            return self.aux(x), self.main(x)

    net = TwoHeads()
    session = export_serving(tmp_path, net, "softmax", output=1)
    logits, probs = session.run(None, {"x": RAW})
    z = numpy_linear(net.main, STANDARDIZED)
    np.testing.assert_allclose(logits, z, atol=1e-5)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, e / e.sum(axis=1, keepdims=True), atol=1e-6)


@pytest.mark.parametrize("with_target", [True, False], ids=["target-normalization", "old-run-without-it"])
def test_identity_answers_in_the_targets_units(tmp_path: Path, with_target: bool) -> None:
    layer = linear(2)
    target = norm([100, -1], [30, 0.01]) if with_target else None
    session = export_serving(tmp_path, layer, "identity", target=target)
    assert [o.name for o in session.get_outputs()] == ["prediction"]
    (got,) = session.run(None, {"x": RAW})
    out = numpy_linear(layer, STANDARDIZED)
    expected = out * np.array([30, 0.01], np.float32) + np.array([100, -1], np.float32) if with_target else out
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_run_parity_gate_checks_the_served_module(run_copy: Path, monkeypatch) -> None:
    """export_run's gate runs the whole served module (standardization and probabilities included) against
    onnxruntime on CHECK_BATCH raw samples, not the bare network."""
    import udlc.exporter.onnx as export
    from udlc.exporter.serving import Serving

    seen: dict = {"batches": []}
    check, sample = export.check_parity, export.sample_inputs

    def check_spy(model, inputs, path, atol, rtol, binding=None):
        seen["model"], seen["diff"] = model, check(model, inputs, path, atol, rtol, binding)
        return seen["diff"]

    def sample_spy(model, inputs, batch, seed, binding):
        seen["batches"].append(batch)
        return sample(model, inputs, batch, seed, binding)

    monkeypatch.setattr(export, "check_parity", check_spy)
    monkeypatch.setattr(export, "sample_inputs", sample_spy)
    export.export_run(run_copy, run_copy / "again.onnx")
    assert isinstance(seen["model"], Serving) and seen["model"].answers == "softmax"
    assert seen["batches"] == [export.EXPORT_BATCH, export.CHECK_BATCH] and export.CHECK_BATCH != export.EXPORT_BATCH
    assert seen["diff"] < 1e-5
