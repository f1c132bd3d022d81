"""`udlc eval RUN`: the test metrics again, from the checkpoint results.json was computed with (the best
epoch's, unless early stopping was told not to restore it)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

from udlc.errors import UdlcError


def evaluate_run(run_dir: Path) -> dict[str, float]:
    from udlc.trainer.run import final_checkpoint, read_run

    _, compiled = read_run(run_dir)  # before torch is imported: a wrong folder is reported at once
    best = final_checkpoint(run_dir, compiled.spec)
    if not best.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run_dir} has no checkpoint yet (checkpoints/best or last.safetensors)")

    import torch

    from udlc.compiler.lower import lower
    from udlc.trainer.objectives import make_loss
    from udlc.trainer.run import load_dataset, load_weights, test_metrics

    data = load_dataset(compiled)
    if not len(data.x_test):
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    device = torch.device("cpu")
    model = lower(compiled.graph)
    load_weights(model, best, device)
    s = SimpleNamespace(model=model, spec=compiled.spec, autocast=nullcontext, device=device,
                        loss_fn=make_loss(compiled.spec.loss, device))
    return test_metrics(s, data)
