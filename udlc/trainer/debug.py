"""When the loss turns NaN or inf: find where, and say what to try (the debugging checklist)."""

from __future__ import annotations

from typing import Any

import torch

from udlc.errors import UdlcError

ADVICE = (
    "what to try: lower the learning rate (optimizer.lr); clip gradients (train.grad_clip: 1.0); "
    "check the data for NaN, inf or extreme values; add normalization (batchnorm2d, layernorm); "
    "check that the model overfits one batch at a low learning rate"
)


class TrainingDiverged(UdlcError):
    exit_code = 3


def nonfinite_report(s: Any, batches: dict[str, tuple[Any, Any]], loss: torch.Tensor, epoch: int,
                     step: int) -> TrainingDiverged:
    """Why a loss went non-finite, and what to try. `batches`: for each network the loss trained, what it read
    (its input, or a tuple of its inputs) and its targets; a task of several networks names the one at fault."""
    lines = [f"the loss became {loss.item()} at step {step} (epoch {epoch}); training stopped."]
    findings = [(network, diagnose(s, network, *batch)) for network, batch in batches.items()]
    (first, finding), *_ = [f for f in findings if f[1] is not None] or findings[-1:]
    finding = finding or "the model's outputs are finite but the loss is not: check the targets and the loss."
    lines.append(finding if len(batches) == 1 else f"network '{first}': {finding}")
    lines.append(ADVICE + ".")
    if s.written_epoch:
        lines.append(f"the last good checkpoint is kept: {s.run.checkpoint('last').with_suffix('.safetensors')} "
                     f"(after epoch {s.written_epoch}; `udlc train --resume {s.run}` continues from it)")
    return TrainingDiverged("\n".join(lines))


def diagnose(s: Any, network: str, xs: Any, yb: Any) -> str | None:
    """What is non-finite in `network` on inputs `xs` (targets `yb`, or None): its weights, its input, a
    layer's output, the targets, or outputs so large the loss overflows; None if nothing is."""
    xs = xs if isinstance(xs, tuple) else (xs,)
    model, graph = s.module(network), s.graphs[network]  # under torch.compile, hook the real modules
    bad_weights = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if bad_weights:
        node = bad_weights[0].split(".")[0]
        return (f"the weights of layer '{node}'{where_in_spec(graph, node)} are already non-finite: an earlier "
                "update diverged.")
    if not all(torch.isfinite(x).all() for x in xs):
        return "the input batch itself holds NaN or inf values: check the data."
    culprit = first_nonfinite(model, graph, xs)
    if culprit:
        return f"first non-finite output: layer '{culprit}' ({graph.nodes[culprit].op}){where_in_spec(graph, culprit)}."
    if yb is not None and yb.is_floating_point() and not torch.isfinite(yb).all():
        return "the targets hold NaN or inf values: check the data."
    with torch.no_grad():
        outs = model(*xs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    peak, index = max((o.abs().max().item(), i) for i, o in enumerate(outs))
    out_name = graph.outputs[index]
    if peak > 1e6:  # finite, but so large that the loss overflows: the weights have run away
        return (f"the model has diverged: the outputs of layer '{out_name}'{where_in_spec(graph, out_name)} "
                f"reach {peak:.3g}, so the loss overflows.")
    return None


@torch.no_grad()
def first_nonfinite(model: torch.nn.Module, graph: Any, xs: tuple[torch.Tensor, ...]) -> str | None:
    """The first node, in execution order, whose output holds NaN or inf on this batch."""
    found: list[str] = []

    def hook(name: str):
        def check(module, inputs, output):
            if not found and isinstance(output, torch.Tensor) and not torch.isfinite(output).all():
                found.append(name)
        return check

    handles = [getattr(model, name).register_forward_hook(hook(name)) for name in graph.nodes]
    try:
        model(*xs)
    finally:
        for h in handles:
            h.remove()
    return found[0] if found else None


def where_in_spec(graph: Any, node: str) -> str:
    n = graph.nodes.get(node)
    if n is None or n.span is None:
        return ""
    return f" at {n.span.file}:{n.span.line}:{n.span.col} ({n.path})"
