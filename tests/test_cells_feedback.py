"""lstm_cell and gru_cell against torch's own cells stepped by hand; task forecasting's feedback (the network's
one-step predictions fed back for the horizon) trained, exported and served."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fast_export import fast_exporter  # noqa: F401 (a fixture)
from udlc.layers.registry import REGISTRY

pytestmark = pytest.mark.usefixtures("fast_exporter")


def cell_module(name: str, features: int, hidden: int, bias: bool = True):
    lt = REGISTRY[name]
    return lt.build(lt.config(type=name, hidden_size=hidden, bias=bias), ("T", features))


@pytest.mark.parametrize("name,reference", [("lstm_cell", torch.nn.LSTMCell), ("gru_cell", torch.nn.GRUCell)])
@pytest.mark.parametrize("bias", [True, False])
def test_a_cell_layer_is_torchs_cell_applied_step_by_step(name, reference, bias) -> None:
    torch.manual_seed(0)
    ours, theirs = cell_module(name, 3, 5, bias), reference(3, 5, bias=bias)
    ours.load_state_dict(theirs.state_dict())  # the cell's own parameter names: a torch cell's weights load as they are
    x = torch.randn(4, 7, 3)
    h = torch.zeros(4, 5)
    state, steps = ((h, h) if name == "lstm_cell" else h), []
    for t in range(7):
        state = theirs(x[:, t], state)
        steps.append(state[0] if name == "lstm_cell" else state)
    out, *finals = ours(x)
    torch.testing.assert_close(out, torch.stack(steps, 1))
    expected = state if name == "lstm_cell" else (state,)
    assert len(finals) == len(expected)
    for got, want in zip(finals, expected):
        torch.testing.assert_close(got, want)


def test_cells_export_as_onnxs_recurrent_operators_for_any_length(tmp_path: Path) -> None:
    import onnx
    import onnxruntime as ort

    torch.manual_seed(1)

    class Both(torch.nn.Module):  # both cells in one file: one export's fixed cost
        def __init__(self):
            super().__init__()
            self.lstm, self.gru = cell_module("lstm_cell", 2, 4), cell_module("gru_cell", 2, 3)

        def forward(self, x):
            return (*self.lstm(x), *self.gru(x))

    module = Both().eval()
    path = tmp_path / "cells.onnx"
    torch.onnx.export(module, (torch.randn(2, 5, 2),), str(path), dynamo=True, opset_version=18, input_names=["x"],
                      dynamic_shapes=({0: torch.export.Dim("B"), 1: torch.export.Dim("T")},))
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"LSTM", "GRU"} <= ops and "Loop" not in ops
    longer = torch.randn(3, 11, 2)  # another batch and another length than traced
    got = ort.InferenceSession(str(path)).run(None, {"x": longer.numpy()})
    with torch.no_grad():
        want = module(longer)
    assert [g.shape for g in got] == [(3, 11, 4), (3, 4), (3, 4), (3, 11, 3), (3, 3)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-4, atol=1e-5)


def test_cell_parameters_and_flops_are_counted_as_torch_holds_them() -> None:
    for name in ("lstm_cell", "gru_cell"):
        lt = REGISTRY[name]
        cfg = lt.config(type=name, hidden_size=6)
        module = lt.build(cfg, (9, 3))
        assert lt.params(cfg, (9, 3)) == sum(p.numel() for p in module.parameters())
        gates = {"lstm_cell": 4, "gru_cell": 3}[name]
        assert lt.flops(cfg, (9, 3)) == 9 * 2 * gates * 6 * (3 + 6)  # both gate matmuls, every step


# ---- forecasting with feedback --------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "sine-feedback.yaml"


class Classic(torch.nn.Module):
    """PyTorch's examples/time_sequence_prediction model as it is written there: two LSTMCells and a linear,
    stepped by hand over the input, then `future` more steps each fed its own previous output."""

    def __init__(self, hidden: int = 51):
        super().__init__()
        self.hidden = hidden
        self.lstm1 = torch.nn.LSTMCell(1, hidden)
        self.lstm2 = torch.nn.LSTMCell(hidden, hidden)
        self.linear = torch.nn.Linear(hidden, 1)

    def forward(self, input, future=0):
        outputs = []
        zeros = torch.zeros(input.size(0), self.hidden)
        h_t, c_t, h_t2, c_t2 = zeros, zeros, zeros, zeros
        for input_t in input.split(1, dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def test_the_example_is_pytorchs_time_sequence_prediction_with_its_future_steps() -> None:
    from udlc.compiler.lower import lower
    from udlc.tasks import compile_spec
    from udlc.tasks.feedback import feed_back

    torch.manual_seed(0)
    network = lower(compile_spec(EXAMPLE).graph).eval()
    classic = Classic()
    classic.load_state_dict(network.state_dict())  # the same parameter names, one for one
    x = torch.randn(3, 20)
    with torch.no_grad():
        # the output after the input's last step is the first value of the horizon, then 7 fed-back steps
        expected = classic(x, future=7)[:, -8:]
        got = feed_back(network, x[:, :, None], 8)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_feedback_appends_each_prediction_as_the_next_input() -> None:
    from udlc.tasks.feedback import feed_back

    class NextIsHalfPlusOne(torch.nn.Module):  # at every step: 0.5 * value + 1
        def forward(self, x):
            return 0.5 * x + 1

    got = feed_back(NextIsHalfPlusOne(), torch.tensor([[[4.0], [2.0]]]), 3)
    torch.testing.assert_close(got, torch.tensor([[2.0, 2.0, 2.0]]))  # 0.5 * 2 + 1 = 2, a fixed point
    got = feed_back(NextIsHalfPlusOne(), torch.tensor([[0.0, 6.0]]), 3)  # a (T,) series: the same, unsqueezed
    torch.testing.assert_close(got, torch.tensor([[4.0, 3.0, 2.5]]))


def test_check_refuses_a_fed_back_network_that_does_not_predict_every_step(tmp_path: Path) -> None:
    from tests.conftest import refused_at

    spec = tmp_path / "pooled.yaml"
    spec.write_text(EXAMPLE.read_text().replace(
        "- linear: {out_features: 1, from: lstm2.out}",
        "- seq_pool: {mode: last, from: lstm2.out}\n    - linear: 8"))
    refused_at(spec, "linear: 8", "at every step")


@pytest.fixture(scope="module")
def feedback_run(tmp_path_factory) -> Path:
    from tests.conftest import train_here

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        root = tmp_path_factory.mktemp("feedback")
        spec = root / "tiny.yaml"
        spec.write_text(EXAMPLE.read_text().replace("hidden_size: 51", "hidden_size: 8")
                        .replace("samples: 3000", "samples: 200").replace("epochs: 20", "epochs: 2"))
        return train_here(spec, root / "runs")
    finally:
        torch.set_num_threads(threads)


def test_a_fed_back_forecaster_trains_through_the_loop_and_records_its_horizon(feedback_run: Path) -> None:
    from udlc.runs import RunFolder

    assert RunFolder.open(feedback_run).info["feedback"] == 8
    results = json.loads((feedback_run / "results.json").read_text())
    # the loss is the fed-back horizon's, in the series' units, beside the last-value baseline over the same 8 steps
    assert results["test_relative_loss"] == pytest.approx(results["test_loss"] / results["test_baseline_loss"])


@pytest.mark.long  # the unrolled export (8 copies of the network) and its parity checks take ~15 s
def test_a_fed_back_forecaster_exports_and_predicts_the_horizon(feedback_run: Path) -> None:
    import onnx

    from udlc.compiler.lower import lower
    from udlc.exporter.onnx import export_run
    from udlc.runs import RunFolder, checkpoint
    from udlc.runtime.predict import Model
    from udlc.tasks.feedback import feed_back

    run = RunFolder.open(feedback_run)
    assert run.info["feedback"] == 8
    path = export_run(feedback_run)  # parity-checked against torch on its way out
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "LSTM" in ops and "Loop" not in ops  # unrolled: bench/feedback_speed.py measured it faster
    compiled = run.compiled()
    network = lower(compiled.graph).eval()
    checkpoint.load_models({"model": network}, run.final_checkpoint(compiled.spec))
    shift, scale = run.info["normalization"]["shift"][0], run.info["normalization"]["scale"][0]
    model = Model(path)
    for batch, length in ((4, 32), (2, 13)):  # other batch sizes and lengths than the training windows'
        x = np.random.default_rng(length).normal(size=(batch, length, 1)).astype(np.float32)
        with torch.no_grad():
            expected = feed_back(network, torch.from_numpy((x - shift) / scale), 8).numpy() * scale + shift
        got = model.predict(x).values
        assert got.shape == (batch, 8)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
