"""`udlc baseline`: the majority class / mean target and gradient boosting on the spec's own split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from udlc.errors import UdlcError
from udlc.tasks import compile_spec

ROOT = Path(__file__).resolve().parent.parent


def test_classification_baselines_on_the_specs_split() -> None:
    from udlc.guide.baseline import baselines

    compiled = compile_spec(ROOT / "examples" / "digits-mlp.yaml")
    found = baselines(compiled)
    data = compiled.task.load_data(compiled)
    train_counts = np.bincount(np.asarray(data.y_train).reshape(-1))
    majority = float((np.asarray(data.y_test).reshape(-1) == train_counts.argmax()).mean())
    assert found["majority class"]["test_accuracy"] == pytest.approx(majority)
    assert found["hist gradient boosting"]["test_accuracy"] > 0.9


def test_regression_baselines_are_in_the_targets_units() -> None:
    from udlc.guide.baseline import baselines

    compiled = compile_spec(ROOT / "examples" / "sine-regression.yaml")
    found = baselines(compiled)
    data = compiled.task.load_data(compiled)
    y_test = data.target_normalization.invert(np.asarray(data.y_test).reshape(-1, 1)).reshape(-1)
    y_train = data.target_normalization.invert(np.asarray(data.y_train).reshape(-1, 1)).reshape(-1)
    assert found["mean target"]["test_mse"] == pytest.approx(float(((y_test - y_train.mean()) ** 2).mean()), rel=1e-4)
    assert found["hist gradient boosting"]["test_r2"] > 0.9


def test_a_task_without_samples_and_targets_is_refused() -> None:
    from udlc.guide.baseline import baselines

    with pytest.raises(UdlcError, match="task is vae"):
        baselines(compile_spec(ROOT / "examples" / "vae-digits.yaml"))


@pytest.mark.slow
def test_the_command_shows_a_run_beside_the_baselines(invoke, digits_run) -> None:
    result = invoke("baseline", digits_run.spec, "--run", digits_run.run)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "test_accuracy" in lines[0] and lines[1].startswith("majority class")
    assert lines[-1].startswith("udlc run") and len(lines) == 4
