"""`udlc eval RUN`: the test metrics again, from the checkpoint results.json was computed with (the best
epoch's, unless early stopping was told not to restore it)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

from udlc.errors import UdlcError
from udlc.runs import RunFolder


def evaluate_run(run_dir: Path) -> dict[str, float]:
    run = RunFolder.open(run_dir)
    compiled = run.compiled()  # before torch is imported: a wrong folder is reported at once
    final = run.final_checkpoint(compiled.spec)
    if not final.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run} has no checkpoint yet (checkpoints/best or last.safetensors)")

    import torch

    from udlc.runs import checkpoint
    from udlc.trainer.run import build_models, test_metrics

    task = compiled.task
    data = task.load_data(compiled)
    device = torch.device("cpu")
    models = build_models(compiled, device)
    checkpoint.load_models(models, final, device)
    s = SimpleNamespace(models=models, graphs=compiled.graphs, spec=compiled.spec, task=task,
                        autocast=nullcontext, device=device)
    task.setup(s, data)
    metrics = test_metrics(s, data)
    if not metrics:
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    return metrics
