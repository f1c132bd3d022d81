"""Checks shared by the tasks whose batches are named fields of token ids and masks (seq2seq,
sequence_classification, token_classification): the model's inputs are named after the fields, so each
is fed by name, and each must have its field's dtype and one axis."""

from __future__ import annotations

from typing import Any

from udlc.errors import SpecError


def error(doc: Any, message: str, path: tuple, hint: str | None = None, key: bool = False) -> SpecError:
    return SpecError(message, path=".".join(map(str, path)), span=doc.span(tuple(path), key=key), hint=hint)


def one_network(compiled: Any, task: str) -> tuple[str, Any, tuple] | SpecError:
    """The spec's one network: its name, graph and where it is written; or the error of a spec with several."""
    (net, graph), *others = compiled.graphs.items()
    if others:
        return error(compiled.doc, f"task {task} trains one network", ("models",), "give one network under `model:`",
                     key=True)
    return net, graph, ("model",) if compiled.spec.model is not None else ("models", net)


def check_fields(compiled: Any, graph: Any, base: tuple, fields: dict[str, str], required: tuple[str, ...],
                 what: str) -> list[SpecError]:
    """Every input is one of `fields` (name → dtype), with that dtype and one axis; the `required` ones exist."""
    spec, doc = compiled.spec, compiled.doc
    written = next(m for m in spec.networks.values())
    errors = []
    for name, shape in graph.inputs.items():
        where = base + ("inputs", name) if written.inputs else base + ("input",)
        want = fields.get(name)
        if want is None:
            errors.append(error(doc, f"the input '{name}' is no field of {what}", where,
                                "name the inputs after the fields: " + ", ".join(fields), key=True))
        elif len(shape) != 1 or graph.dtype_of(name) != want:
            errors.append(error(doc, f"'{name}' is one {want} per position: shape [T], dtype {want}", where, key=True))
    for name in required:
        if name not in graph.inputs:
            errors.append(error(doc, f"the model must read `{name}`", base,
                                f"declare it: `inputs: {{{name}: {{shape: [T], dtype: {fields[name]}}}}}`", key=True))
    return errors


def output_node(graph: Any) -> Any:
    return graph.nodes[graph.outputs[0].partition(".")[0]]
