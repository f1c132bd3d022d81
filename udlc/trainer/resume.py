"""What the loop's checkpoints hold and how a resume restores it: weights, optimizers, schedules, plateaus, the
position and every random stream, so that a resumed run continues bit for bit."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from udlc.objectives.finetune import base_entry, over_base, saved_state
from udlc.runs import checkpoint
from udlc.trainer.distributed import load_state, model_state, optimizer_state

if TYPE_CHECKING:
    from udlc.trainer.loop import Setup


def saved_models(s: Setup) -> dict[str, Any]:
    """Each network's state as a checkpoint keeps it (with LoRA, its adapters alone); sharded, every process
    gathers."""
    return {name: saved_state(s.module(name), model_state(s.module(name))) for name in s.models}


def save_checkpoints(s: Setup) -> None:
    """checkpoints/best when it improved since the last write, then checkpoints/last: together, so that the
    best a resumed run remembers is the one on disk. Writing (a synced file, milliseconds) only every
    train.checkpoint_seconds keeps a small model's epochs as fast as a hand-written loop's. On several processes
    every process hands in its random streams and the main one writes."""
    rng = random_streams(s)
    if s.processes is not None:
        rng = {**rng, "order": s.train.order.get_state(), "ranks": s.processes.gather(rng)}
    s.written_at, s.written_epoch = time.monotonic(), s.epoch
    models = saved_models(s)  # sharded: every process gathers
    optimizers = {name: optimizer_state(s.module(name), opt) for name, opt in s.optimizers.items()}
    if not s.main:
        return
    if s.best_state is not None:
        checkpoint.save(s.run.checkpoint("best"), s.best_state)
        s.best_state = None
    checkpoint.save(s.run.checkpoint("last"), last_state(s, models, rng, optimizers))


def random_streams(s: Setup) -> dict[str, Any]:
    """This process's random states: torch's (dropout) and the generator's (shuffling, augmentation)."""
    rng = {"torch": torch.get_rng_state(), "data": s.generator.get_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def set_streams(s: Setup, rng: dict[str, Any]) -> None:
    """This process's random states back as random_streams took them."""
    torch.set_rng_state(rng["torch"])
    s.generator.set_state(rng["data"])
    if "cuda" in rng:
        torch.cuda.set_rng_state_all(rng["cuda"])


def last_state(s: Setup, models: dict[str, Any], rng: dict[str, Any], optimizers: dict[str, Any]) -> dict[str, Any]:
    """Everything a resume needs to continue exactly: weights, optimizers, schedules, RNGs, position. On
    several processes `rng` also holds the epoch order's generator ("order") and every process's streams
    ("ranks")."""
    return {
        "models": models,
        "optimizers": optimizers,
        "schedulers": {name: {k: v for k, v in sch.state_dict().items() if k != "lr_lambdas"}
                       for name, sch in s.schedulers.items()},
        "plateaus": {name: p.state() for name, p in s.plateaus.items()},
        "rng": rng,
        "position": dict(s.state),
        **base_entry(s),  # with LoRA: where the base weights, left out of `models`, come from
    }


def restore_last(s: Setup) -> None:
    state = checkpoint.load(s.run.checkpoint("last"), device=s.device)
    for name in s.models:  # a shadow copy (an EMA) has no optimizer
        load_state(s.module(name), s.optimizers.get(name), over_base(s.module(name), state, name),
                   owned(state["optimizers"].get(name)))
    for name, scheduler in s.schedulers.items():
        scheduler.load_state_dict({**state["schedulers"][name], "lr_lambdas": [None] * len(scheduler.lr_lambdas)})
    for name, plateau in s.plateaus.items():
        plateau.load(state["plateaus"][name])
    s.state.update(state["position"])
    restore_streams(s, state["rng"])


def owned(state: Any) -> Any:
    """An optimizer's loaded state with each tensor in memory of its own. Loaded tensors are views into the
    file's buffer at any offset, and a dot product's rounding depends on its operands' alignment: L-BFGS's
    history, left there, would steer a resumed run off the uninterrupted one's path."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {k: owned(v) for k, v in state.items()}
    if isinstance(state, list):
        return [owned(v) for v in state]
    return state


def restore_streams(s: Setup, rng: dict[str, Any]) -> None:
    """The random states as saved, for a resume to draw what the run would have drawn. A run on several
    processes keeps the epoch order in its own generator ("order"): a single process resumes its order from
    there, and processes that the checkpoint has no streams for (another number of processes) start theirs
    afresh, from the seed, their rank and the epoch."""
    ranks = rng.get("ranks")
    if s.processes is not None:
        s.train.order.set_state(rng.get("order", rng["data"]).cpu())
        if ranks is not None and len(ranks) == s.processes.world:
            rng = ranks[s.processes.rank]
        else:
            seed = s.spec.init_seed + 1 + s.processes.rank + 7919 * s.state["epoch"]
            torch.manual_seed(seed)
            s.generator.manual_seed(seed)
            return
    torch.set_rng_state(rng["torch"].cpu())
    s.generator.set_state(rng.get("order", rng["data"]).cpu() if s.processes is None else rng["data"].cpu())
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])
