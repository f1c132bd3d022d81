"""The optimizers' implementations, by the names udlc.spec.optimizers registers: torch.optim's classes, given
lr, weight_decay and the config's own fields. Which parameters get weight decay is decided once for all of them,
in make_optimizer."""

from __future__ import annotations

from typing import Any, Callable

from udlc.objectives import implements
from udlc.spec.optimizers import OPTIMIZERS

FUSED = ("adam", "adamw", "sgd")  # the optimizers torch has a fused CUDA step for


def make_optimizer(model: Any, spec: Any, graph: Any = None, holds: set[str] | None = None) -> tuple[Any, str]:
    """The optimizer of a model's trainable parameters (or of those named in `holds`: a layer that train.unfreeze
    releases later is held from the start, without a gradient until then), and a sentence saying which of them
    get weight decay. optimizer.groups and layer_decay give parameters their own lr and weight decay by node;
    layer_decay's layers come from `graph` (without it, each node is a layer)."""
    named = [(n, p) for n, p in model.named_parameters() if (n in holds if holds is not None else p.requires_grad)]
    params = [p for _, p in named]
    if not hasattr(spec, "weight_decay"):  # L-BFGS: no weight decay, and one parameter group is all it takes
        groups: list[dict] = [{"params": params}]
        note = f"no weight decay ({spec.type} has none)"
    elif getattr(spec, "groups", None) or getattr(spec, "layer_decay", None):  # (a config built by hand may lack them)
        groups, note = _node_groups(named, spec, graph)
    elif spec.weight_decay and not spec.decay_bias_and_norm:
        # Biases and normalization scales (rank < 2) are not decayed: decaying them only hurts.
        decay = [p for p in params if p.dim() >= 2]
        rest = [p for p in params if p.dim() < 2]
        groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
        note = (f"weight decay {spec.weight_decay:g} on {len(decay)} weight tensors, not on {len(rest)} biases and "
                "norm parameters (optimizer.decay_bias_and_norm: true includes them)")
    else:
        groups = [{"params": params}]
        note = f"weight decay {spec.weight_decay:g} on all parameters" if spec.weight_decay else "no weight decay"
    # On CUDA (every parameter there), one fused kernel per step where torch has one.
    on_cuda = bool(params) and params[0].device.type == "cuda"
    options = {"fused": True} if on_cuda and spec.type in FUSED else {}
    return BUILD[spec.type](spec, groups, **options), note


def node_settings(spec: Any, nodes: list[str], graph: Any = None) -> dict[str, tuple[float, float]]:
    """Each node's (lr, weight_decay): the first of optimizer.groups that names it, else the optimizer's, the lr
    times its layer's layer_decay factor."""
    from udlc.compiler.finetune import decay_factors, named

    if graph is not None:
        factors = decay_factors(graph, spec.layer_decay)
    else:  # each node a layer, in the model's order
        factors = {n: spec.layer_decay ** (len(nodes) - 1 - i) if spec.layer_decay else 1.0
                   for i, n in enumerate(nodes)}
    out = {}
    for node in nodes:
        group = next((g for g in spec.groups if named(g.match, [node])), None)
        lr = group.lr if group is not None and group.lr is not None else spec.lr
        decay = group.weight_decay if group is not None and group.weight_decay is not None else spec.weight_decay
        out[node] = (lr * factors.get(node, 1.0), decay)
    return out


def _node_groups(named: list[tuple[str, Any]], spec: Any, graph: Any) -> tuple[list[dict], str]:
    """One torch param group per (lr, weight decay), the optimizer's own settings first (the lr the log shows)."""
    nodes = list(dict.fromkeys(name.split(".", 1)[0] for name, _ in named))
    settings = node_settings(spec, nodes, graph)
    keyed: dict[tuple[float, float], list] = {(spec.lr, spec.weight_decay): []}
    for name, p in named:
        lr, decay = settings[name.split(".", 1)[0]]
        if p.dim() < 2 and not spec.decay_bias_and_norm:
            decay = 0.0  # biases and norm scales are spared, as without groups
        keyed.setdefault((lr, decay), []).append(p)
    groups = [{"params": ps, "lr": lr, "weight_decay": decay} for (lr, decay), ps in keyed.items() if ps]
    lrs = sorted({lr for lr, _ in keyed if keyed[(lr, _)]})
    note = (f"{len(groups)} parameter groups (optimizer.groups, layer_decay), lr from {lrs[0]:g} to {lrs[-1]:g}"
            if lrs else "no parameters to train")
    return groups, note


def _torch(cls_name: str, *fields: str) -> Callable[..., Any]:
    """A builder for torch.optim.<cls_name>, passing lr, weight_decay (where the config has one), the named config
    fields and `options` (fused=True on CUDA). A param group's own lr or weight_decay overrides the config's."""

    def build(cfg: Any, groups: list[dict], **options: Any) -> Any:
        import torch

        args = {f: getattr(cfg, f) for f in ("lr", "weight_decay", *fields) if hasattr(cfg, f)}
        return getattr(torch.optim, cls_name)(groups, **args, **options)

    return build


BUILD: dict[str, Callable[..., Any]] = dict(implements(OPTIMIZERS, {
    "sgd": _torch("SGD", "momentum", "nesterov", "dampening"),
    "adam": _torch("Adam", "betas", "eps", "amsgrad"),
    "adamw": _torch("AdamW", "betas", "eps", "amsgrad"),
    "rmsprop": _torch("RMSprop", "alpha", "momentum", "eps", "centered"),
    "adadelta": _torch("Adadelta", "rho", "eps"),
    "adagrad": _torch("Adagrad", "lr_decay", "initial_accumulator_value", "eps"),
    "nadam": _torch("NAdam", "betas", "eps", "momentum_decay", "decoupled_weight_decay"),
    "radam": _torch("RAdam", "betas", "eps", "decoupled_weight_decay"),
    "lbfgs": _torch("LBFGS", "max_iter", "max_eval", "history_size", "line_search_fn", "tolerance_grad",
                    "tolerance_change"),
}))
