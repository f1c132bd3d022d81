"""Loading weights into built networks (torch): the plan of the mapping, checked against each network's own
tensor names and shapes, copied in place — so tied tensors (an LM head sharing the token embedding) stay one
tensor — and a report of what was loaded, what is new and what in the file went unused."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from udlc.errors import SpecError, SpecErrors, UdlcError
from udlc.weights.check import pick_network, resolve, run_names
from udlc.weights.files import Source, load_tensors, read_names, sha256
from udlc.weights.mapping import Mapping, apply, check_targets

SHOWN = 8  # names listed in the report before "… and N more"


@dataclass
class LoadReport:
    """What load_into did: `text` is the log line; `loaded`, `new`, `unused` hold the names."""

    source: Source
    loaded: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)  # the network's tensors left at their fresh init
    unused: list[str] = field(default_factory=list)  # the file's tensors no rule took (dropped ones not included)
    dropped: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)  # without a mapping: same name, other shape

    @property
    def sha256(self) -> str:
        return sha256(self.source)

    @property
    def text(self) -> str:
        total = len(self.loaded) + len(self.new)
        parts = [f"initialized from {self.source.describe()}: loaded {len(self.loaded)} of {total} tensors"]
        fresh = [n for n in self.new if not any(m.startswith(n + " ") for m in self.mismatched)]
        if self.mismatched:
            parts.append(f"kept the fresh init for {_names(self.mismatched)}")
        if fresh:
            parts.append(f"new (fresh init): {_names(fresh)}")
        if self.unused:
            parts.append(f"unused in the file: {_names(self.unused)}")
        if self.dropped:
            parts.append(f"dropped by the mapping: {len(self.dropped)}")
        return ", ".join(parts)


def _names(names: list[str]) -> str:
    more = len(names) - SHOWN
    return ", ".join(names[:SHOWN]) + (f" … and {more} more" if more > 0 else "")


def load_init(models: dict[str, Any], init: Any, base_dir: Path, doc: Any = None,
              checkpoint: Path | None = None) -> LoadReport:
    """A spec's `init:` into its built networks (errors at the spec's or the mapping's lines)."""
    source, mapping = resolve(init, base_dir, doc, checkpoint)
    try:
        return load_into(models, source, mapping, init.network)
    except SpecErrors:
        raise
    except UdlcError as e:
        raise SpecErrors([SpecError(str(e), path="init.from", span=doc.span(("init", "from")) if doc else None)]) \
            from None


def load_into(models: dict[str, Any], source: Source | str | Path, mapping: Mapping | None = None,
              network: str | None = None) -> LoadReport:
    """Copy a source's tensors into `models` (name -> nn.Module) through `mapping` (default: names as they are).
    A udlc run's checkpoint fills every network it has by name (or only `network`); any other source fills one
    network. Raises SpecErrors at the mapping's lines for a target the network lacks or a shape that differs."""
    import torch

    from udlc.weights.files import open_source

    source = source if isinstance(source, Source) else open_source(source)
    mapping = mapping or Mapping.identity()
    if source.kind == "run":
        targets = [network] if network else [n for n in models]
    else:
        targets = [pick_network(list(models), network, mapping)]
    names = read_names(source)
    tensors = None
    if names is None:  # a pickled state dict: its names come with its tensors
        tensors = load_tensors(source)
        names = {k: (tuple(v.shape), str(v.dtype)) for k, v in tensors.items()}
    report = LoadReport(source)
    plans = {}
    for net in targets:
        file_names = run_names(names, net) if source.kind == "run" else names
        state = models[net].state_dict()
        plan, mismatched = check_targets(apply(mapping, file_names), mapping,
                                         {k: tuple(v.shape) for k, v in state.items()}, net)
        _check_ties(plan, state)
        plans[net] = plan, state
        order = {key: i for i, key in enumerate(state)}  # the network's order, as `new` is listed
        report.mismatched += sorted(mismatched, key=lambda m: order[m.split(" ", 1)[0]])
        report.unused += plan.unused
        report.dropped += plan.dropped
    prefix = {net: f"models.{net}." if source.kind == "run" else "" for net in targets}
    if tensors is None:
        tensors = load_tensors(source, {prefix[net] + a.source for net, (plan, _) in plans.items()
                                        for a in plan.assignments.values()})
    with torch.no_grad():
        for net, (plan, state) in plans.items():
            written = set()
            for target, a in plan.assignments.items():
                value = a.convert(tensors[prefix[net] + a.source])
                state[target].copy_(value.to(state[target].dtype))  # in place: a tied tensor is written once for all
                written.add(_storage(state[target]))
            for key, tensor in state.items():
                loaded = key in plan.assignments or _storage(tensor) in written
                (report.loaded if loaded else report.new).append(key if len(targets) == 1 else f"{net}.{key}")
    if source.kind == "run":  # a network the checkpoint does not have starts fresh, as the rest of `new` does
        report.new += [f"{net}.*" for net in models if net not in targets]
    if not report.loaded:
        raise UdlcError(f"{source.path}: none of its tensors matches this spec's networks by name and shape"
                        + ("" if mapping.strict else " — write a mapping of its names (init.map)"))
    return report


def _storage(tensor: Any) -> tuple[int, int]:
    return tensor.untyped_storage().data_ptr(), tensor.storage_offset()


def _check_ties(plan: Any, state: dict[str, Any]) -> None:
    """Two targets that are one tensor (tied) must not come from two file tensors: one would silently win."""
    seen: dict[tuple[int, int], Any] = {}
    errors = []
    for target, a in plan.assignments.items():
        other = seen.setdefault(_storage(state[target]), a)
        if other is not a and other.source != a.source:
            errors.append(SpecError(f"{target} and {other.target} are one tensor (tied) in the network, and the "
                                    f"mapping writes them from {a.source} and {other.source}",
                                    path=f"rules[{a.rule.index}]", span=a.rule.span,
                                    hint="map only one of them; the other follows (drop: true for the second)"))
    if errors:
        raise SpecErrors(errors)
