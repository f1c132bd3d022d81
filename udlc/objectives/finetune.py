"""Fine-tuning on the built networks: LoRA's adapters put on (udlc.layers.modules.lora), which parameters train in
an epoch (train.freeze, train.unfreeze, the base under LoRA), which the optimizer holds, and what a checkpoint keeps
of an adapted network. The graph-side facts (what the patterns name) are udlc.compiler.finetune's."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from udlc.compiler.finetune import ever_trains, lora_targets, trains_at
from udlc.layers.modules.lora import adapt


def node_of(parameter: str) -> str:
    """The node a parameter belongs to: the lowered network's submodules are named by node."""
    return parameter.split(".", 1)[0]


def is_adapter(parameter: str) -> bool:
    return parameter.rpartition(".")[2] in ("lora_A", "lora_B")


def put_adapters(model: nn.Module, spec: Any, graph: Any, seed: int) -> int:
    """The spec's LoRA adapters on `model` (none without `lora:`), their A drawn from `seed` alone, so that adding
    them changes no other random draw of the run."""
    if spec.lora is None:
        return 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        count = adapt(model, lora_targets(spec, graph), spec.lora.rank, spec.lora.alpha, spec.lora.dropout)
    # What its checkpoints keep, as an attribute so that a shadow copy (an EMA) keeps the same.
    also = trains_at(spec, graph, 1)
    model.lora_kept = frozenset(n for n, _ in model.named_parameters() if is_adapter(n) or node_of(n) in also)
    return count


def set_trainable(model: nn.Module, spec: Any, graph: Any, epoch: int) -> list[str]:
    """requires_grad as epoch `epoch` (counting from 1) trains: the adapters, and the layers trains_at names.
    Returns the nodes that start training with this epoch (gradual unfreezing), for the log."""
    training = trains_at(spec, graph, epoch)
    started = set()
    for name, p in model.named_parameters():
        node = node_of(name)
        if node not in graph.nodes:
            continue  # not one of the graph's layers (none today): left as it is
        wanted = is_adapter(name) or node in training
        if wanted and not p.requires_grad:
            started.add(node)
        p.requires_grad_(wanted)
    return sorted(started)


def held(model: nn.Module, spec: Any, graph: Any) -> set[str]:
    """The parameters the optimizer holds from the start: every one that trains in some epoch. One that starts
    frozen has no gradient until it is unfrozen, so the optimizer leaves it (and its state) alone until then."""
    training = ever_trains(spec, graph)
    return {name for name, _ in model.named_parameters() if is_adapter(name) or node_of(name) in training}


def saved_state(model: nn.Module, state: dict[str, Any]) -> dict[str, Any]:
    """What a checkpoint keeps of a network's state dict: all of it, or for an adapted network the parameters that
    train (adapters, also_train's layers) and the buffers (a norm's running statistics move in training) — the
    frozen base is where the run's record of its source (`base`) says."""
    kept = getattr(model, "lora_kept", None)
    if kept is None:
        return state
    parameters = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    return {k: v for k, v in state.items() if k in kept or k not in parameters}


def base_record(info: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Where an adapted run's base weights come from, as its checkpoints record it: the file or run it was
    initialized from and that file's hash (run.json's init_from and init_sha256), else the seed whose fresh
    initialization it is."""
    return {"init_from": info.get("init_from"), "init_sha256": info.get("init_sha256"), "seed": spec.init_seed}


def base_entry(s: Any) -> dict[str, Any]:
    """The `base` entry of an adapted run's checkpoints (none without `lora:`): a checkpoint that has one holds
    the adapters only, and a loader puts them over the base."""
    return {"base": base_record(s.run.info, s.spec)} if s.spec.lora is not None else {}


def release_layers(s: Any) -> None:
    """At the start of epoch s.epoch: requires_grad as that epoch trains (udlc.trainer.loop.Setup `s`), and a note
    of the layers train.unfreeze releases with it. Without train.unfreeze, what build_models set holds all run."""
    if not s.spec.train.unfreeze:
        return
    for name in s.optimizers:
        started = set_trainable(s.module(name), s.spec, s.graphs[name], s.epoch)
        if started and s.log is not None:
            where = "" if len(s.optimizers) == 1 else f" of {name}"
            s.log.note(f"epoch {s.epoch}: training {', '.join(started)}{where} from now on (train.unfreeze)")


def over_base(model: nn.Module, state: dict[str, Any], network: str) -> dict[str, Any]:
    """A checkpoint's state of one network, whole: one with a `base` (LoRA's) holds the adapters only, which go
    over the base weights `model` holds already (loaded when the run started)."""
    saved = state["models"][network]
    return {**model.state_dict(), **saved} if "base" in state else saved
