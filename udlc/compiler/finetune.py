"""What fine-tuning's sections name in the typed graphs, without torch: the layers a pattern names
(optimizer.groups, train.freeze and train.unfreeze, lora.targets), the layers of layer-wise lr decay, which layers
train at a given epoch, the parameters LoRA adds; and `check_finetune`, their check at `udlc check` time.

Patterns are shell-style (fnmatch: * and ? only, no regular expressions) over node names as `udlc summary`
prints them, as train.freeze's always were."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, Iterable

from udlc.compiler.graph import Graph, Node
from udlc.errors import SpecError, did_you_mean
from udlc.spec.loader import dotted

PATTERN_HINT = "give node names as `udlc summary` shows them (* and ? match any characters)"


def named(patterns: Iterable[str], names: Iterable[str]) -> list[str]:
    """The names any of `patterns` matches, in their order."""
    patterns = list(patterns)
    return [name for name in names if any(fnmatchcase(name, p) for p in patterns)]


def weighted(graph: Graph) -> list[str]:
    return [name for name, node in graph.nodes.items() if node.params]


def adaptable(node: Node) -> str | None:
    """'linear' or 'attention' for a node LoRA can adapt; None otherwise. A linear layer tied to an embedding
    is left out: its weight is the embedding's, which merging would change too."""
    from udlc.layers.attention import AttentionConfig  # here: `check` reads the attention family only for LoRA

    if node.op == "linear" and not getattr(node.config, "tie", None):
        return "linear"
    if isinstance(node.config, AttentionConfig):
        return "attention"
    return None


def lora_targets(spec: Any, graph: Graph) -> list[str]:
    """The nodes of `graph` that get adapters."""
    if spec.lora is None:
        return []
    return [name for name in named(spec.lora.targets, graph.nodes) if adaptable(graph.nodes[name])]


def adapter_params(node: Node, graph: Graph, rank: int) -> int:
    """The parameters LoRA adds to a node: rank * (in + out) for each adapted linear map (an attention layer's
    are the q, k, v and out projections of udlc.layers.modules.attention.Attention)."""
    d = graph.shape_of(node.inputs[0])[-1]
    if adaptable(node) == "linear":
        return rank * (d + node.config.out_features)
    cfg = node.config
    e = graph.shape_of(node.inputs[1])[-1] if cfg.flags.cross else d
    kv = d // cfg.num_heads * cfg.kv_heads
    return rank * ((d + d) + 2 * (e + kv) + (d + d))  # q: d → d, k and v: e → kv, out: d → d


def trains_at(spec: Any, graph: Graph, epoch: int) -> set[str]:
    """The nodes whose own weights train in `epoch` (counting from 1): with LoRA, the also_train layers;
    otherwise all but train.freeze's, less those train.unfreeze has released by then."""
    if spec.lora is not None:
        return set(named(spec.lora.also_train, graph.nodes))
    released = [p for step in spec.train.unfreeze if step.epoch <= epoch for p in step.layers]
    frozen = set(named(spec.train.freeze, graph.nodes)) - set(named(released, graph.nodes))
    return {name for name in graph.nodes if name not in frozen}


def ever_trains(spec: Any, graph: Graph) -> set[str]:
    """The nodes whose weights train in some epoch: what the optimizer holds from the start."""
    return trains_at(spec, graph, max((step.epoch for step in spec.train.unfreeze), default=1))


def layer_units(graph: Graph) -> dict[str, int]:
    """Each weighted node's layer for layer-wise lr decay, numbered from 0 in node order: a top-level layer is
    its own layer, and every node one use of a block made (its outermost group: a repeat, a stage) shares one."""
    units: dict[str, int] = {}
    out = {}
    for name in weighted(graph):
        node = graph.nodes[name]
        unit = node.groups[0] if node.groups else name
        out[name] = units.setdefault(unit, len(units))
    return out


def decay_factors(graph: Graph, decay: float | None) -> dict[str, float]:
    """Each weighted node's lr factor: 1 for the last layer, `decay` per layer before it."""
    units = layer_units(graph)
    last = max(units.values(), default=0)
    return {name: (decay ** (last - unit) if decay else 1.0) for name, unit in units.items()}


def parameter_counts(spec: Any, graph: Graph) -> tuple[int, int]:
    """(trainable, frozen) parameters at the start of training: train.freeze's layers frozen, or with LoRA the
    whole base, the adapters (and also_train's layers) trainable."""
    total = graph.total_params
    trainable = sum(graph.nodes[n].params for n in trains_at(spec, graph, 1))
    if spec.lora is not None:
        adapters = sum(adapter_params(graph.nodes[n], graph, spec.lora.rank) for n in lora_targets(spec, graph))
        return trainable + adapters, total - trainable
    return trainable, total - trainable


# ---- the check ----------------------------------------------------------------------------------------------

def check_finetune(spec: Any, graphs: dict[str, Graph], doc: Any) -> list[SpecError]:
    """Every pattern of optimizer.groups, train.unfreeze and lora names a layer it can act on, at its line."""
    return _check_groups(spec, graphs, doc) + _check_unfreeze(spec, graphs, doc) + _check_lora(spec, graphs, doc)


def _unmatched(patterns: list[str], names: list[str], where: tuple, doc: Any, what: str,
               hint: str = PATTERN_HINT, guess: bool = True) -> list[SpecError]:
    return [SpecError(f"'{pattern}' names no {what}", path=dotted((*where, i)),
                      span=doc.span((*where, i)), hint=guess and did_you_mean(pattern, names) or hint)
            for i, pattern in enumerate(patterns) if not named([pattern], names)]


def _check_groups(spec: Any, graphs: dict[str, Graph], doc: Any) -> list[SpecError]:
    errors = []
    sections = [(("optimizers", net), opt, [net]) for net, opt in (spec.optimizers or {}).items()]
    shared = [net for net in graphs if net not in (spec.optimizers or {})]
    if shared:
        sections.append((("optimizer",), spec.optimizer, shared))
    for where, opt, networks in sections:
        names = [n for net in networks if net in graphs for n in weighted(graphs[net])]
        for j, group in enumerate(getattr(opt, "groups", [])):
            errors += _unmatched(group.match, names, (*where, "groups", j, "match"), doc, "layer with weights")
    return errors


def _check_unfreeze(spec: Any, graphs: dict[str, Graph], doc: Any) -> list[SpecError]:
    unfreeze = spec.train.unfreeze
    if not unfreeze:
        return []
    if spec.lora is not None:
        return [SpecError("train.unfreeze releases train.freeze's layers, and with `lora` the whole base stays "
                          "frozen", path="train.unfreeze", span=doc.span(("train", "unfreeze"), key=True),
                          hint="drop train.unfreeze, or name the layers to train whole in lora.also_train")]
    frozen = [n for g in graphs.values() for n in named(spec.train.freeze, weighted(g))]
    errors = []
    hint = ("train.unfreeze releases layers of train.freeze: freeze them first" if not frozen else
            f"the frozen layers are {', '.join(frozen[:6])}{' …' if len(frozen) > 6 else ''}; a layer to unfreeze "
            "later is frozen first, in train.freeze")
    for i, step in enumerate(unfreeze):
        if step.epoch > spec.train.epochs:
            errors.append(SpecError(f"epoch {step.epoch} comes after the last (train.epochs is {spec.train.epochs})",
                                    path=f"train.unfreeze[{i}].epoch", span=doc.span(("train", "unfreeze", i, "epoch")),
                                    hint=f"unfreeze at an epoch from 2 to {spec.train.epochs}"))
        errors += _unmatched(step.layers, frozen, ("train", "unfreeze", i, "layers"), doc,
                             "layer that train.freeze froze", hint, guess=False)
    return errors


def _check_lora(spec: Any, graphs: dict[str, Graph], doc: Any) -> list[SpecError]:
    lora = spec.lora
    if lora is None:
        return []
    adapt = [n for g in graphs.values() for n, node in g.nodes.items() if adaptable(node)]
    if not adapt:
        return [SpecError("lora adapts linear layers and attention projections, and this spec has none "
                          "(a linear tied to an embedding does not count)", path="lora",
                          span=doc.span(("lora",), key=True), hint="drop `lora`, or use train.freeze to fine-tune "
                                                                   "part of the network")]
    errors = _unmatched(lora.targets, adapt, ("lora", "targets"), doc, "linear or attention layer",
                        f"the layers LoRA can adapt are {', '.join(adapt[:6])}{' …' if len(adapt) > 6 else ''}")
    errors += _unmatched(lora.also_train, [n for g in graphs.values() for n in weighted(g)], ("lora", "also_train"),
                         doc, "layer with weights")
    if not errors:
        idle = [net for net, g in graphs.items() if not lora_targets(spec, g) and not trains_at(spec, g, 1)]
        errors += [SpecError(f"with `lora` the base of network '{net}' is frozen, and lora.targets name none of its "
                             "layers: it would train nothing", path="lora.targets", span=doc.span(("lora", "targets")),
                             hint="add a pattern for its layers, or name some in lora.also_train") for net in idle]
    if spec.train.freeze:
        errors.append(SpecError("with `lora` the whole base network is frozen already", path="train.freeze",
                                span=doc.span(("train", "freeze"), key=True), hint="drop train.freeze"))
    if spec.train.strategy == "fsdp":
        errors.append(SpecError("lora trains on one process or with ddp: fsdp would shard the base, which "
                                "checkpoints leave out", path="train.strategy",
                                span=doc.span(("train", "strategy")), hint="use strategy: ddp"))
    return errors
