"""`udlc doctor` finds planted bugs (a softmax before cross_entropy, a branch no gradient reaches, test rows
leaked into training, gradients vanishing through a deep sigmoid stack) and passes a sound spec; `udlc lr-find`
suggests an lr inside a problem's known stable range; train.freeze keeps layers as they start."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DIGITS_MLP, line_of, refused_at, write_csv, write_spec

pytestmark = pytest.mark.slow


def compiled(path: Path):
    from udlc.tasks import compile_spec

    return compile_spec(path)


def loaded(path: Path):
    c = compiled(path)
    return c, c.task.load_data(c)


def digits(tmp_path: Path, layers: list, **sections) -> Path:
    """The tiny digits MLP with these layers, written with each layer on one line (for line_of)."""
    import yaml

    doc = {**DIGITS_MLP, "model": {"input": [64], "layers": layers}, **sections}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    return path


def test_a_sound_spec_passes_every_item(tmp_path: Path) -> None:
    from udlc.guide.doctor import doctor

    findings = {f.item: f for f in doctor(compiled(digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}])))}
    assert list(findings) == ["data", "initial loss", "overfit one batch", "gradient flow", "learning rate"]
    assert all(f.status == "ok" for f in findings.values()), findings
    assert "ln 10 for 10 classes" in findings["initial loss"].summary


def test_a_softmax_before_cross_entropy_is_named_at_its_line_and_the_batch_is_not_learned(tmp_path, invoke) -> None:
    from udlc.guide.doctor import check_output, overfit_one_batch

    spec = digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}, "softmax"])
    c, data = loaded(spec)
    output = check_output(c, data)
    assert output.status == "fail" and f"spec.yaml:{line_of(spec, '- softmax')}:" in output.summary
    overfit = overfit_one_batch(c, data)
    assert overfit.status == "fail" and any("'softmax'" in reason for reason in overfit.details), overfit
    result = invoke("doctor", spec, "--format", "json")
    assert result.returncode == 1, result.stderr  # a failed item fails the command (for CI)
    assert '"status": "fail"' in result.stdout


def test_a_branch_that_leads_nowhere_gets_no_gradient_and_is_named_at_its_line(tmp_path: Path) -> None:
    from udlc.guide.doctor import gradient_flow

    spec = digits(tmp_path, [{"linear": 32}, {"relu": {"id": "hidden"}}, {"linear": {"out_features": 16, "id": "side"}},
                             {"linear": {"out_features": 10, "from": "hidden"}}])
    c, data = loaded(spec)
    flow = gradient_flow(c, data)
    assert flow.status == "fail" and "no gradient reaches layer 'side'" in flow.summary, flow
    assert f"spec.yaml:{line_of(spec, 'id: side')}:" in flow.summary


def test_gradients_vanishing_through_deep_sigmoids_are_flagged_first_layer_first(tmp_path: Path) -> None:
    from udlc.guide.doctor import gradient_flow

    deep = [item for _ in range(10) for item in ({"linear": 32}, "sigmoid")] + [{"linear": 10}]
    flow = gradient_flow(*loaded(digits(tmp_path, deep)))
    assert flow.status == "warn" and "gradients vanish" in flow.summary, flow
    assert flow.details[0].startswith("layer 'linear' ")  # the input side, where the gradient is smallest
    healthy = gradient_flow(*loaded(digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}])))
    assert healthy.status == "ok", healthy


def leak_spec(tmp_path: Path, rows: np.ndarray) -> Path:
    write_csv(tmp_path / "data.csv", ["a", "b", "c", "label"], [[f"{v:.4f}" for v in r[:3]] + [str(int(r[3]))]
                                                             for r in rows])
    return write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "data": {"source": "data.csv", "target": "label"},
                                               "model": {"input": [3], "layers": [{"linear": 8}, "relu",
                                                                                  {"linear": 2}]}})


def test_test_rows_leaked_into_the_training_split_are_counted(tmp_path: Path) -> None:
    from udlc.guide.data_checks import check_data

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    rows = np.column_stack([x, x[:, 0] > 0])
    clean = check_data(loaded(leak_spec(tmp_path, rows))[1], "supervised")
    assert clean.status == "ok", clean
    _, data = loaded(leak_spec(tmp_path, np.concatenate([rows, rows[:100]])))  # 100 rows twice in the file
    leaky = check_data(data, "supervised")
    shared = {r.tobytes() for r in data.x_train} & {r.tobytes() for r in data.x_test}
    assert leaky.status == "fail" and shared, leaky
    assert leaky.summary.startswith(f"{len(shared)} of {len(data.x_test)} test rows also appear"), leaky


def test_a_rare_class_and_constant_columns_are_worth_a_look(tmp_path: Path) -> None:
    from udlc.guide.data_checks import check_data

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    x[:, 1] = 7.0  # a column that says nothing
    label = (np.arange(300) % 30 == 0).astype(int)  # one row in 30 of class 1
    found = check_data(loaded(leak_spec(tmp_path, np.column_stack([x, label])))[1], "supervised")
    text = " ".join([found.summary, *found.details])
    assert found.status == "warn", found
    assert "1 of 3 input values are constant" in text and "b" in text
    assert "imbalanced classes: '1' has" in text


def test_lr_find_suggests_an_lr_inside_the_known_stable_range(tmp_path: Path) -> None:
    """Least squares with plain SGD on standardized features of correlation ρ: the loss's Hessian has largest
    eigenvalue 2(1+ρ), so gradient descent is stable exactly below lr = 1/(1+ρ)."""
    from udlc.guide.lr_find import lr_find, plot_sweep

    rng = np.random.default_rng(0)
    rho = 0.8
    x = rng.multivariate_normal([0, 0], [[1, rho], [rho, 1]], size=2000)
    y = 3 * x[:, 0] - 2 * x[:, 1] + rng.normal(scale=0.5, size=2000)
    write_csv(tmp_path / "data.csv", ["a", "b", "y"], [[f"{v:.5f}" for v in row] for row in np.column_stack([x, y])])
    spec = write_spec(tmp_path / "spec.yaml", {**DIGITS_MLP, "data": {"source": "data.csv", "target": "y"},
                                               "model": {"input": [2], "layers": [{"linear": 1}]}, "loss": "mse",
                                               "metrics": [], "optimizer": {"type": "sgd", "lr": 0.01}},
                      train={"epochs": 1, "batch_size": 256})
    stable = 1 / (1 + rho)
    sweep = lr_find(compiled(spec))
    assert stable / 100 < sweep.suggestion < stable, sweep.summary()
    assert stable <= sweep.diverged_at < 10 * stable, sweep.summary()
    # The edge the sweep finds lags the true one by a few of its steps: the moving average trails the loss, and
    # just past the edge only the steepest direction grows, slowly at first.
    assert sweep.suggestion < sweep.highest_stable < sweep.diverged_at, sweep.summary()
    assert stable / 2 < sweep.highest_stable < 3 * stable, sweep.summary()
    assert plot_sweep(sweep, tmp_path / "lr.png").stat().st_size > 1000


def test_freeze_keeps_the_named_layers_as_they_start_and_check_refuses_a_name_that_matches_nothing(
        tmp_path: Path) -> None:
    import torch

    from tests.conftest import train_here
    from udlc.runs import RunFolder, checkpoint
    from udlc.trainer.run import build_models

    spec = digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}], train={"epochs": 1, "freeze": ["linear"]})
    fresh = build_models(compiled(spec), torch.device("cpu"))["model"].state_dict()
    run = RunFolder.open(train_here(spec, tmp_path / "runs"))
    trained = checkpoint.load(run.checkpoint("last"))["models"]["model"]
    assert torch.equal(trained["linear.weight"], fresh["linear.weight"])
    assert not torch.equal(trained["linear_1.weight"], fresh["linear_1.weight"])
    refused_at(digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}], train={"freeze": ["linear", "lnear_1"]}),
               "lnear_1", "did you mean 'linear_1'")
    refused_at(digits(tmp_path, [{"linear": 32}, "relu", {"linear": 10}], train={"freeze": ["linear*"]}),
               "freeze", "nothing would train")
