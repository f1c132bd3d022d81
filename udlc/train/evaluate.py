"""`udlc eval RUN`: the test metrics again, from the run's best checkpoint."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

from udlc.errors import UdlcError


def evaluate_run(run_dir: Path) -> dict[str, float]:
    import torch

    from udlc.compiler.lower import lower
    from udlc.train.objectives import make_loss
    from udlc.train.run import load_dataset, load_weights, read_run, test_metrics

    _, compiled = read_run(run_dir)
    best = run_dir / "checkpoints" / "best"
    if not best.with_suffix(".safetensors").is_file():
        raise UdlcError(f"{run_dir} has no best checkpoint yet (checkpoints/best.safetensors)")
    data = load_dataset(compiled)
    if not len(data.x_test):
        raise UdlcError("this run's spec has no test split (data.split's third fraction is 0)")
    device = torch.device("cpu")
    model = lower(compiled.graph)
    load_weights(model, best, device)
    s = SimpleNamespace(model=model, spec=compiled.spec, autocast=nullcontext, device=device,
                        loss_fn=make_loss(compiled.spec.loss, device))
    return test_metrics(s, data)
