"""`udlc eval RUN`: the test metrics again, from the checkpoint results.json was computed with (the best
epoch's, unless early stopping was told not to restore it)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, TYPE_CHECKING

from udlc.errors import UdlcError
from udlc.runs import RunFolder

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def evaluate_run(run_dir: Path) -> dict[str, float]:
    run = RunFolder.open(run_dir)
    compiled = run.compiled()  # before torch is imported: a wrong folder is reported at once
    s, _ = evaluation_setup(run, compiled)

    from udlc.trainer.run import test_metrics

    metrics = test_metrics(s)
    if not metrics:
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    return metrics


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
