"""A spec's training, set up for a few probing steps without a run folder: what `udlc doctor` and
`udlc lr-find` train. The networks start fresh as training starts them (train.seed, else seed), and every
optimizer keeps a constant learning rate (the probe, not the schedule, decides it)."""

from __future__ import annotations

from typing import Any, Iterator, TYPE_CHECKING

import torch

from udlc.trainer.device import pick_device, precision
from udlc.trainer.loop import Setup
from udlc.objectives.finetune import held
from udlc.objectives.optimizers import make_optimizer
from udlc.trainer.run import build_models

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def probe_setup(compiled: Compiled, data: Any) -> Setup:
    """`data` is what the task's load_data gave; the task's RunState is `s.run_state`."""
    spec, task = compiled.spec, compiled.task
    device = pick_device(spec.train.device)
    torch.manual_seed(spec.init_seed)  # the networks start as training starts them (train.seed, else seed)
    state = task.start(compiled, data, device)
    models = build_models(compiled, device)
    # the same param groups as training: optimizer.groups, layer_decay, layers train.unfreeze releases later
    optimizers = {name: make_optimizer(models[name], spec.optimizer_of(name), graph, held(models[name], spec, graph))[0]
                  for name, graph in compiled.graphs.items()}
    batches = task.batches(state, "train", batch_size=spec.train.batch_size, shuffle=True, device=device)
    return Setup(spec=spec, task=task, graphs=compiled.graphs, models=models, optimizers=optimizers, schedulers={},
                 plateaus={}, train=batches, val=None, augment=None,
                 generator=torch.Generator().manual_seed(spec.init_seed), device=device,
                 autocast=precision(spec.train, device)[1], run=None, log=None, run_state=state)


def endless(s: Setup) -> Iterator[Any]:
    """The training split's batches, epoch after epoch, shuffled as training shuffles them."""
    while True:
        yield from s.train.epoch_batches(s.generator)


def set_lr(s: Setup, lr: float) -> None:
    for optimizer in s.optimizers.values():
        for group in optimizer.param_groups:
            group["lr"] = lr


def loss_of(values: dict[str, float]) -> float:
    """The value a probe watches from a training step's logged values: the loss."""
    return values["loss"] if "loss" in values else next(iter(values.values()))
