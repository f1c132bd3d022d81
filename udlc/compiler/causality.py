"""Which values of a typed graph let position t of a sequence see a later position.

A model that predicts each next token (a language model, a seq2seq decoder) must give its output at position t
from the tokens up to t: were it to read t + 1, it would learn to copy the answer during training and have none
to copy when it generates. The layer registry says how each layer's output at t reads its inputs' positions
(LayerType.reads: EACH, EARLIER, SHAPE, ALL); this module follows those words from the sequence inputs through
the graph, with the shapes saying where the positions are: axis 0 holding the sequence's symbol (T).

Each value is one of
  FREE    it does not depend on the sequence's tokens at all (the encoder's memory, a relative position bias),
  CAUSAL  position t of it depends on the tokens up to t,
  LATER   some position of it may depend on a later token, or it has no positions (a pooled vector).
A layer keeps CAUSAL only where it reads each dependent input at EACH or EARLIER and the input and its output
both hold the positions on axis 0 (a float input with features after them); any other reading of a dependent
input (ALL, a transpose that moves T, a flatten of it) gives LATER. That is sound whatever a layer does with FREE
values, and refuses only what the registry cannot vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from udlc.compiler.graph import Graph, Node
from udlc.errors import SpecError, Span
from udlc.layers import REGISTRY
from udlc.layers.registry import EACH, EARLIER, SHAPE

FREE, CAUSAL, LATER = "free", "causal", "later"


@dataclass
class Flow:
    """Where a graph's values stand, and the nodes that read later positions themselves (not merely downstream
    of one that does), each with the output that does."""

    states: dict[str, str]  # every value by reference: graph inputs, `node`, `node.output`
    lookahead: dict[str, list[str]]  # node name -> the references of its outputs that see later positions


def refs_of(node: Node) -> list[str]:
    """The references of a node's outputs, in order."""
    return [f"{node.name}.{o}" for o in node.out_names] if node.out_names else [node.name]


def follow(graph: Graph, sequence: Iterable[str]) -> Flow:
    """Each value's state, the graph inputs named in `sequence` being the tokens (CAUSAL) and the others FREE."""
    sequence = [s for s in sequence if s in graph.inputs]
    symbol = graph.inputs[sequence[0]][0] if sequence and graph.inputs[sequence[0]] else None
    states = {name: CAUSAL if name in sequence else FREE for name in graph.inputs}
    lookahead: dict[str, list[str]] = {}
    for node in graph.nodes.values():
        ins = [states.get(ref, LATER) for ref in node.inputs]  # a value left unknown by an error: assume the worst
        reads = REGISTRY[node.op].reads_of(node.config, len(node.inputs))
        dependent = [i for i, (state, word) in enumerate(zip(ins, reads)) if state != FREE and word != SHAPE]
        for k, ref in enumerate(refs_of(node)):
            if not dependent:
                states[ref] = FREE
                continue
            shape = node.shapes[k] if k < len(node.shapes) else None
            aligned = bool(shape) and shape[0] == symbol and all(sequence_like(graph, node.inputs[i], symbol)
                                                                 for i in dependent)
            looks = not aligned or any(reads[i] not in (EACH, EARLIER) for i in dependent)
            if looks:
                lookahead.setdefault(node.name, []).append(ref)
            states[ref] = LATER if looks or any(ins[i] == LATER for i in dependent) else CAUSAL
    return Flow(states, lookahead)


def sequence_like(graph: Graph, ref: str, symbol: object) -> bool:
    """Whether a value holds the positions on axis 0 as the registry's words mean them: (T, features...), or ids
    or a mask (T,). A float (T,) has no features: a norm or softmax of "the features" would read all of T."""
    shape = graph.shape_of(ref)
    return bool(shape) and shape[0] == symbol and (len(shape) > 1 or graph.dtype_of(ref) != "float32")


def upstream(graph: Graph, refs: Iterable[str]) -> set[str]:
    """The references the values `refs` are computed from, themselves included, through the inputs a layer reads
    for their values (not through a SHAPE reading: a bias table reads only the length)."""
    seen: set[str] = set()
    todo = list(refs)
    while todo:
        ref = todo.pop()
        if ref in seen:
            continue
        seen.add(ref)
        node = graph.nodes.get(ref.partition(".")[0])
        if node is not None:
            reads = REGISTRY[node.op].reads_of(node.config, len(node.inputs))
            todo += [i for i, word in zip(node.inputs, reads) if word != SHAPE]
    return seen


def causality_errors(graph: Graph, sequence: Iterable[str], doc: object, what: str) -> list[SpecError]:
    """One error per place a spec writes a node through which the outputs at position t see a later position of
    the `sequence` inputs; `what` names the model's duty ("a language model predicts each token from the ones
    before it"). Empty when every output is causal."""
    flow = follow(graph, sequence)
    if not any(flow.states.get(out) == LATER for out in graph.outputs):
        return []
    used = upstream(graph, graph.outputs)
    errors: dict[tuple, SpecError] = {}
    for name, refs in flow.lookahead.items():
        if not used.intersection(refs):
            continue
        node = graph.nodes[name]
        span, where = located(node, doc)
        key = (span.file, span.line) if span else (node.path,)
        if key not in errors:
            named = f"'{node.name}'" + (f" ({node.op})" if node.name != node.op else "")
            errors[key] = SpecError(f"{named} lets position t see later positions{where}, but {what}",
                                    path=node.path, span=span, hint=fix(node))
    return list(errors.values())


def located(node: Node, doc: object) -> tuple[Span | None, str]:
    """Where the user wrote the node, and the words naming the block it came from: a node of udlc's own library
    blocks is reported at the spec's line that uses the block (users do not read those files)."""
    if node.use is None:
        return node.span, ""
    block, line = node.use
    words = f" (in block '{block}' used at line {line})"
    if node.span is not None and node.span.file == getattr(doc, "file", None):
        return node.span, words  # a block written in the spec itself
    lines = getattr(doc, "lines", [])
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    col = text.find(block) + 1 if block in text else 1
    return Span(getattr(doc, "file", ""), line, col, text), words


def fix(node: Node) -> str:
    """What to write instead, for the layers that have a causal form."""
    from udlc.compiler.library import library_blocks

    if "causal" not in REGISTRY[node.op].config.model_fields:
        return ("keep each position's output to the positions up to it, the sequence on the first axis (T, features): "
                "causal self-attention (`causal: true`), a left-to-right rnn, lstm or gru, and layers that work "
                "position by position (linear, norms, activations)")
    block = library_blocks().get(node.use[0]) if node.use is not None else None
    if block is not None and "causal" in block.spec.params:
        return (f"write `causal: true` in the arguments of '{node.use[0]}' (its attention then reads earlier "
                "positions only), or use gpt_block")
    if block is not None:
        return "use gpt_block or transformer_decoder_block, whose self-attention is causal"
    return "write `causal: true` on this attention (each position then attends to itself and earlier ones)"
