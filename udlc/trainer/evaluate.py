"""`udlc eval RUN`: the test metrics again, from the checkpoint results.json was computed with (the best
epoch's, unless early stopping was told not to restore it; a gradient_boosting run's fitted trees)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, TYPE_CHECKING

from udlc.errors import UdlcError
from udlc.runs import RunFolder
from udlc.spec.model import tree_model

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def evaluate_run(run_dir: Path) -> dict[str, float]:
    run = RunFolder.open(run_dir)
    compiled = run.compiled()  # before torch is imported: a wrong folder is reported at once
    if tree_model(compiled.spec) is not None:  # scored as train_trees scored the trees, by its ONNX checkpoint
        from udlc.trainer.trees import scores

        answers, truth, data = tree_answers(run, compiled)
        return {f"test_{k}": v for k, v in scores(compiled, data, answers, truth).items()}
    s, _ = evaluation_setup(run, compiled)

    from udlc.trainer.run import test_metrics

    metrics = test_metrics(s)
    if not metrics:
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    return metrics


def tree_answers(run: RunFolder, compiled: Compiled) -> tuple[Any, Any, Any]:
    """A gradient_boosting run's fitted trees (checkpoints/trees.onnx, checked against scikit-learn when written)
    on its test split, in onnxruntime: (class probabilities (N, C) or standardized values (N, 1), the targets, the
    data); what `udlc eval` scores and `udlc report` counts."""
    checkpoint = run.checkpoint("trees").with_suffix(".onnx")
    if not checkpoint.is_file():
        raise UdlcError(f"{run} has no fitted trees yet (checkpoints/trees.onnx) — train it first")
    if compiled.spec.data.split[2] <= 0:
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    import numpy as np
    import onnxruntime as ort

    data = compiled.task.load_data(compiled)
    rows = np.asarray(data.x_test, np.float32).reshape(len(data.x_test), -1)  # standardized, as the trees were fitted
    session = ort.InferenceSession(str(checkpoint), providers=["CPUExecutionProvider"])
    answers = session.run(None, {session.get_inputs()[0].name: rows})[-1]  # skl2onnx's last: probabilities or values
    return answers.reshape(len(rows), -1), np.asarray(data.y_test).reshape(-1), data


def evaluation_setup(run: RunFolder, compiled: Compiled) -> tuple[Any, Any]:
    """The run's final weights in its networks on the CPU and the task started on its data: (s, the task's
    RunState), what test_metrics (and `udlc report`'s predictions) read."""
    final = run.final_checkpoint(compiled.spec)
    if not final.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run} has no checkpoint yet (checkpoints/best or last.safetensors)")

    import torch

    from udlc.runs import checkpoint
    from udlc.trainer.loop import Setup
    from udlc.trainer.run import build_models

    task = compiled.task
    device = torch.device("cpu")
    state = task.start(compiled, task.load_data(compiled), device)
    models = build_models(compiled, device)
    s = Setup(spec=compiled.spec, task=task, graphs=compiled.graphs, models=models, optimizers={}, schedulers={},
              plateaus={}, train=None, val=None, augment=None, generator=torch.Generator(), device=device,
              autocast=nullcontext, run=run, log=None, run_state=state)
    # Loaded after Setup: an fp64 run's networks are float64 by then, and its weights load without rounding.
    checkpoint.load_models(s.models, final, device)
    return s, state
