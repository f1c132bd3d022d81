"""`init:` at `udlc check` time (no torch, no numpy): the weights exist, the mapping reads, every rule matches a
tensor of the file's header and writes into a tensor of the network, of the file tensor's shape (after transpose,
split and reshape). The network's tensor names and shapes come from the layer registry's `tensors` rules
(udlc.compiler.tensors); loading (udlc.weights.load) checks them again against the built modules, with the same
errors at the same lines."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from udlc.errors import SpecError, SpecErrors, UdlcError, did_you_mean
from udlc.weights.files import Names, Source, open_source, read_names
from udlc.weights.mapping import Mapping, Plan, apply, check_targets

if TYPE_CHECKING:
    from udlc.compiler.pipeline import Compiled

MAP_SUFFIX = ".map.yaml"
# The zoo's shipped mappings, where a source checkout keeps them (a spec's own folder is searched first).
ZOO = Path(__file__).resolve().parent.parent.parent / "examples" / "zoo"


def find_map(name: str, base_dir: Path) -> Path:
    """`map:` as a file: a path (relative to the spec) when it has a folder or a .yaml suffix, else a shipped
    mapping's name, `<name>.map.yaml` beside the spec, then in the zoo."""
    if "/" in name or "\\" in name or name.endswith((".yaml", ".yml")):
        path = base_dir / name
        if not path.is_file():
            raise UdlcError(f"no mapping file at {path}")
        return path
    for folder in (base_dir, ZOO):
        if (folder / f"{name}{MAP_SUFFIX}").is_file():
            return folder / f"{name}{MAP_SUFFIX}"
    shipped = sorted(p.name[: -len(MAP_SUFFIX)] for p in ZOO.glob(f"*{MAP_SUFFIX}")) if ZOO.is_dir() else []
    raise UdlcError(f"no mapping named {name!r} (looked for {name}{MAP_SUFFIX} beside the spec and in the zoo)"
                    + (f"; shipped: {', '.join(shipped)}" if shipped else ""))


def run_names(names: Names, network: str) -> Names:
    """A udlc run's checkpoint holds `models.<network>.<name>`: one network's tensors, by their own names."""
    prefix = f"models.{network}."
    return {k[len(prefix):]: v for k, v in names.items() if k.startswith(prefix)}


def pick_network(networks: list[str], init_network: str | None, mapping: Mapping) -> str:
    """The network a file's weights go to: init.network, else the mapping's, else the only one."""
    if init_network and mapping.network and init_network != mapping.network:
        raise UdlcError(f"init.network is {init_network} and the mapping's network is {mapping.network}: give one")
    name = init_network or mapping.network
    if name is None:
        if len(networks) != 1:
            raise UdlcError(f"the spec has several networks ({', '.join(networks)}): name the one the weights go to "
                            "(init.network)")
        return networks[0]
    if name not in networks:
        hint = did_you_mean(name, networks)
        raise UdlcError(f"no network named {name}"
                        + (f" — {hint}" if hint else f"; the spec has {', '.join(networks)}"))
    return name


def resolve(init: Any, base_dir: Path, doc: Any = None, checkpoint: Path | None = None) -> tuple[Source, Mapping]:
    """The spec's `init:` as a source and a mapping; errors at init.from / init.map, or the mapping file's lines."""
    def at(key: str, e: UdlcError) -> SpecErrors:
        return SpecErrors([SpecError(str(e), path=f"init.{key}", span=doc.span(("init", key)) if doc else None)])

    try:
        source = open_source(base_dir / init.from_, checkpoint)
    except UdlcError as e:
        raise at("from", e) from None
    if init.map is None:
        return source, Mapping.identity()
    try:
        path = find_map(init.map, base_dir)
    except UdlcError as e:
        raise at("map", e) from None
    return source, Mapping.load(path)


def check_init(compiled: Compiled) -> list[SpecError]:
    """Every mistake in `init:` that the headers show, located (the spec's lines, or the mapping file's)."""
    init = compiled.spec.init
    if init is None:
        return []
    doc = compiled.doc
    try:
        source, mapping = resolve(init, compiled.base_dir, doc)
        networks = list(compiled.graphs)
        targets = networks if source.kind == "run" and not init.network else None
        if targets is None:
            try:
                targets = [pick_network(networks, init.network, mapping)]
            except UdlcError as e:
                key = "network" if init.network else "map" if mapping.network else "from"
                span = (mapping.network_span if key == "map" else doc.span(("init", key)))
                return [SpecError(str(e), path=f"init.{key}", span=span)]
        names = read_names(source)
        if names is None:  # a pickled state dict: only torch lists its tensors, when training starts
            return []
        errors = []
        for network in targets:
            file_names = run_names(names, network) if source.kind == "run" else names
            plan = apply(mapping, file_names)
            nodes = set(compiled.graphs[network].nodes)
            errors += _against_nodes(plan, mapping, nodes, network, file_names, doc)
            errors += _against_tensors(plan, mapping, nodes, compiled.graphs[network], network)
        return errors
    except SpecErrors as e:
        return list(e.errors)
    except UdlcError as e:
        return [SpecError(str(e), path="init.from", span=doc.span(("init", "from")))]


def _against_tensors(plan: Plan, mapping: Mapping, nodes: set[str], graph: Any, network: str) -> list[SpecError]:
    """A strict map's targets in existing nodes: each a tensor of the network, of the shape its rule gives (the
    errors loading gives). A network with a layer type whose tensors are unknown is left to loading."""
    from udlc.compiler.tensors import network_tensors  # the layer registry: not for `udlc import`, which reads JSON

    expected = network_tensors(graph) if mapping.strict else None
    if expected is None:
        return []
    known = Plan(assignments={t: a for t, a in plan.assignments.items() if t.split(".", 1)[0] in nodes})
    try:
        check_targets(known, mapping, expected, network)
    except SpecErrors as e:
        return list(e.errors)
    return []


def _against_nodes(plan: Plan, mapping: Mapping, nodes: set[str], network: str, names: Names, doc: Any
                   ) -> list[SpecError]:
    """A network tensor is `<node>.<parameter>`: each target's node must be one of the network's."""
    def node(target: str) -> str:
        return target.split(".", 1)[0]

    if not mapping.strict:
        if any(node(t) in nodes for t in plan.assignments) or not names:
            return []
        return [SpecError(f"none of the file's tensor names is a tensor of network {network} (the file has e.g. "
                          f"{', '.join(list(names)[:2])}; the network's nodes are e.g. {', '.join(sorted(nodes)[:3])})",
                          path="init.from", span=doc.span(("init", "from")),
                          hint="write a mapping of the names (init.map: a .map.yaml file)")]
    errors = []
    for target, a in plan.assignments.items():
        if node(target) not in nodes:
            hint = did_you_mean(node(target), nodes)
            errors.append(SpecError(f"{target} (from {a.source}) is not a tensor of network {network}: it has no node "
                                    f"{node(target)!r}", path=f"rules[{a.rule.index}]", span=a.rule.span,
                                    hint=hint or "`udlc summary SPEC` lists the network's node names"))
    return errors
