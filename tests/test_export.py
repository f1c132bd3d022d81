"""ONNX export: every registered layer sample exports with parity and a dynamic batch; a run's file
carries its metadata; a failed export never touches the previous model.onnx."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TrainedRun
from udlc.exporter.onnx import ExportError
from udlc.layers import REGISTRY

CASES = [(name, i) for name, lt in REGISTRY.items() for i in range(len(lt.samples))]

def _param(name: str, index: int):
    return pytest.param(name, index, id=f"{name}-{index}")


@pytest.fixture(scope="module", autouse=True)
def _fast_exporter():
    """torch.onnx.export rebuilds its registry of ~500 torchlib functions on every call (about 1 s
    here); build it once per opset for this module. Test speed only: the registry is the same."""
    import torch

    try:
        from torch.onnx._internal.exporter import _registration
    except ImportError:  # another torch: export at its own speed
        yield
        return
    original = _registration.ONNXRegistry.__dict__.get("from_torchlib")
    if not isinstance(original, classmethod):
        yield
        return
    cache: dict = {}

    def from_torchlib(cls, *args, **kwargs):
        key = (cls, args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = original.__func__(cls, *args, **kwargs)
        return cache[key]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _registration.ONNXRegistry.from_torchlib = classmethod(from_torchlib)
    try:
        yield
    finally:
        _registration.ONNXRegistry.from_torchlib = original
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name,index", [_param(n, i) for n, i in CASES])
def test_every_layer_sample_exports_with_a_dynamic_batch(tmp_path: Path, name: str, index: int) -> None:
    import onnxruntime as ort
    import torch

    from udlc.exporter.onnx import export_module
    from udlc.spec.training import OnnxExport

    lt = REGISTRY[name]
    args, shapes = lt.samples[index]
    cfg = lt.config.model_validate(args)
    out_shape = lt.shape(cfg, *shapes)
    torch.manual_seed(0)
    module = lt.build(cfg, *shapes).eval()
    inputs = [(f"x{i}", tuple(s)) for i, s in enumerate(shapes)]
    path = export_module(module, inputs, tmp_path / "layer.onnx", OnnxExport(opset=18))  # raises on mismatch
    assert path == tmp_path / "layer.onnx" and path.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layer.onnx"]  # no temporary left behind

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [n for n, _ in inputs]
    rng = np.random.default_rng(index)
    for batch in (1, 5):
        xs = [rng.standard_normal((batch, *s)).astype(np.float32) for s in shapes]
        (out,) = session.run(None, {n: x for (n, _), x in zip(inputs, xs)})
        assert out.shape == (batch, *out_shape)
        with torch.no_grad():
            expected = module(*(torch.from_numpy(x) for x in xs)).numpy()
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-4)


def test_run_export_carries_metadata(digits_run: TrainedRun) -> None:
    import onnx

    path = digits_run.run / "model.onnx"
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    info = digits_run.read_json("run.json")
    from udlc import __version__

    assert meta["udlc_version"] == __version__
    assert meta["spec_sha256"] == hashlib.sha256((digits_run.run / "spec.yaml").read_bytes()).hexdigest()
    assert json.loads(meta["classes"]) == info["classes"] == [str(i) for i in range(10)]
    assert json.loads(meta["normalization"]) == info["normalization"]
    assert json.loads(meta["input_shapes"]) == [[64]]
    model = onnx.load(str(path))
    assert json.loads(meta["input_names"]) == [i.name for i in model.graph.input] == ["x"]
    assert json.loads(meta["output_names"]) == [o.name for o in model.graph.output] == ["linear_1"]
    assert meta["task"] == "classification" and meta["loss"] == "cross_entropy"
    assert meta["checkpoint"] in ("best", "last")
    norm = json.loads(meta["normalization"])
    assert norm["kind"] == "standard" and len(norm["shift"]) == len(norm["scale"]) == 64


def test_regression_export_has_no_classes(sine_run: TrainedRun) -> None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(sine_run.run / "model.onnx")).metadata_props}
    assert meta["task"] == "regression" and json.loads(meta["classes"]) is None
    assert json.loads(meta["input_shapes"]) == [[1]]


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
