"""`udlc export RUN --quantize int8`: onnxruntime's quantizer writes model.int8.onnx beside model.onnx (dynamic for
an MLP, static with calibration for a convnet), which predicts as the float file does and keeps its metadata;
an int8 model that loses more than --max-drop on the test split is refused and not written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import DIGITS_MLP, TrainedRun, train_here

pytestmark = pytest.mark.slow

CONVNET = {**DIGITS_MLP, "name": "digits-convnet",
           "model": {"input": [1, 8, 8], "layers": [
               {"conv2d": {"out_channels": 8, "kernel_size": 3, "padding": 1}}, "relu", {"maxpool2d": 2},
               {"conv2d": {"out_channels": 16, "kernel_size": 3, "padding": 1}}, "relu", "global_avgpool",
               {"linear": 10}]},
           "train": {"epochs": 4, "batch_size": 64}}


def ops(path: Path) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(path)).graph.node}


def metadata(path: Path) -> dict[str, str]:
    import onnx

    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def agreement(float_file: Path, int8_file: Path, x: np.ndarray) -> float:
    from udlc.runtime.predict import Model

    return float(np.mean(Model(float_file).predict(x).values == Model(int8_file).predict(x).values))


@pytest.fixture
def run_copy(digits_run: TrainedRun, tmp_path: Path) -> Path:
    """The trained digits MLP's folder, copied: the files written here stay here."""
    return Path(shutil.copytree(digits_run.run, tmp_path / "run"))


def test_an_mlp_is_quantized_dynamically_and_predicts_as_the_float_file(run_copy: Path, invoke) -> None:
    from sklearn.datasets import load_digits

    result = invoke("export", run_copy, "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[1].startswith("model.onnx ") and lines[2].startswith("model.int8.onnx ")
    assert all("accuracy" in ln and "batch-1 latency" in ln for ln in lines[1:3])
    assert "dynamic int8" in lines[3]
    int8 = run_copy / "model.int8.onnx"
    assert "MatMulInteger" in ops(int8) and "MatMulInteger" not in ops(run_copy / "model.onnx")
    meta = metadata(int8)
    assert meta["quantized"] == "int8 dynamic"
    assert meta["classes"] == metadata(run_copy / "model.onnx")["classes"]  # what predict needs, carried over
    accuracies = [float(ln.split("accuracy ")[1].split()[0]) for ln in lines[1:3]]
    assert accuracies[0] - accuracies[1] <= 0.01
    assert agreement(run_copy / "model.onnx", int8, load_digits().data) >= 0.97


def test_a_convnet_is_quantized_statically(tmp_path: Path, invoke, one_torch_thread) -> None:
    from sklearn.datasets import load_digits

    spec = tmp_path / "convnet.yaml"
    spec.write_text(yaml.safe_dump(CONVNET))
    run = train_here(spec, tmp_path / "runs")
    result = invoke("export", run, "--quantize", "int8")
    assert result.returncode == 0, result.stderr
    int8 = run / "model.int8.onnx"
    assert metadata(int8)["quantized"] == "int8 static"
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops(int8)
    assert agreement(run / "model.onnx", int8, load_digits().data.reshape(-1, 1, 8, 8)) >= 0.95


def test_an_int8_model_that_loses_too_much_is_not_written(run_copy: Path, invoke, monkeypatch) -> None:
    """A quantizer that spoils the weights (every initializer zeroed) stands in for a model int8 does not suit."""
    import onnx
    from onnx import numpy_helper

    import udlc.exporter.quantize as quantize

    real = quantize.quantize_file

    def spoiled(source: Path, target: Path, calibration: np.ndarray) -> str:
        mode = real(source, target, calibration)
        proto = onnx.load(str(target))
        for init in proto.graph.initializer:
            if init.data_type == onnx.TensorProto.INT8:
                init.CopyFrom(numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(init)), init.name))
        onnx.save(proto, str(target))
        return mode

    monkeypatch.setattr(quantize, "quantize_file", spoiled)
    result = invoke("export", run_copy, "--quantize", "int8", "--max-drop", "0.05")
    assert result.returncode == 1
    assert "more than --max-drop 0.05: not written" in result.stderr, result.stderr
    assert not (run_copy / "model.int8.onnx").exists()
    assert not list(run_copy.glob(".*.tmp"))
    assert json.loads((run_copy / "run.json").read_text())["status"] == "done"  # the run itself is untouched
