"""Checks shared by the tasks whose batches are named fields of token ids and masks (seq2seq,
sequence_classification, token_classification): the model's inputs are named after the fields, so each
is fed by name, and each must have its field's dtype and one axis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, TYPE_CHECKING

from udlc.errors import SpecError
from udlc.spec.data import split_sizes
from udlc.tasks.registry import RunState, Served, Task

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


def error(doc: Any, message: str, path: tuple, hint: str | None = None, key: bool = False) -> SpecError:
    return SpecError(message, path=".".join(map(str, path)), span=doc.span(tuple(path), key=key), hint=hint)


def tokenizer_file_errors(compiled: Any, task: str) -> list[SpecError]:
    """A task that adds special tokens of its own ([MASK], sentinels: udlc.data.specials) builds its tokenizer from
    the corpus; a published tokenizer.json (data.tokenizer_file) is read by language_model alone."""
    if getattr(compiled.spec.data, "tokenizer_file", None) is None:
        return []
    return [error(compiled.doc, f"task {task} adds its special tokens to a tokenizer it learns; tokenizer_file is "
                  "read by language_model", ("data", "tokenizer_file"), "leave it out", key=True)]


def no_metrics(compiled: Compiled, task: str, logs: str) -> list[SpecError]:
    """A task that logs its own values (`logs` says which) takes no `metrics`."""
    if not compiled.spec.metrics:
        return []
    return [error(compiled.doc, f"task {task} logs its own {logs}", ("metrics",), "drop `metrics`", key=True)]


def one_network(compiled: Compiled, task: str) -> tuple[str, Any, tuple] | SpecError:
    """The spec's one network: its name, graph and where it is written; or the error of a spec with several."""
    (net, graph), *others = compiled.graphs.items()
    if others:
        return error(compiled.doc, f"task {task} trains one network", ("models",), "give one network under `model:`",
                     key=True)
    return net, graph, ("model",) if compiled.spec.model is not None else ("models", net)


def check_fields(compiled: Compiled, graph: Any, base: tuple, fields: dict[str, str], required: tuple[str, ...],
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


def length_bound_errors(compiled: Compiled, graph: Any, symbol: Any, length: int, option: str, where: tuple
                        ) -> list[SpecError]:
    """A task's length option (a language model's context, a text classifier's max_tokens) that a layer of the
    network cannot take, such as a positions table with fewer rows: training would index past its end. The
    error stands at the option where it is written, else at the layer."""
    from udlc.layers.registry import REGISTRY

    if not isinstance(symbol, str):
        return []
    for node in graph.nodes.values():
        rule = REGISTRY[node.op].bounds
        most = rule(node.config, *(graph.shape_of(i) for i in node.inputs)).get(symbol) if rule and node.shapes else None
        if most is not None and most < length:
            layer = node.op if node.name == node.op else f"{node.op} '{node.name}'"
            message = f"{option} is {length} tokens, but {layer} holds positions for {most}: training would read past its end"
            hint = f"use {option}: {most}, or give {node.op} room for {length} (max_len: {length})"
            written = compiled.doc.data
            for key in where:
                written = written.get(key) if isinstance(written, dict) else None
            if isinstance(written, dict) and option in written:
                return [error(compiled.doc, message, where + (option,), hint)]
            return [SpecError(message, path=node.path, span=node.span, hint=hint)]
    return []


def output_node(graph: Any) -> Any:
    return graph.nodes[graph.outputs[0].partition(".")[0]]


@dataclass
class Sequences:
    """A sequence task's data: its samples (dicts of token-id arrays) by split, and what reading them found."""

    splits: dict[str, list[dict]]  # train, val, test
    vocabulary: tuple[str, ...] = ()  # a generated sequence set's tokens
    classes: list[str] | None = None  # a text classifier's labels, in class-index order
    tokenizer: Any = None  # a text classifier's, fitted on its training text
    augment: Any = None  # a text classifier's udlc.data.text_augment.TextAugmenter, when the spec augments


@dataclass
class FieldsState(RunState):
    data: Sequences
    net: str  # the one network
    inputs: list[str]  # its inputs, fed by name from a batch's fields (inputs_of)
    loss_fn: Callable[[Any, Any], Any]


def inputs_of(inputs: list[str], batch: dict) -> tuple:
    """The model's `inputs` from a batch. Collate builds `<field>_mask` only where it padded; a batch whose
    samples were all one length has none, and then every position is real."""
    return tuple(batch[name] if name in batch else batch[name.removesuffix("_mask")] >= 0 for name in inputs)


class FieldsTask(Task):
    """Base of the tasks whose batches are named fields of variable-length samples: the checks they share, a
    seeded split of the samples, padded batches (udlc.data.collate) and cross-entropy."""

    fields: ClassVar[dict[str, str]]  # input name -> dtype
    serves: ClassVar[str]  # the served kind of its one network's file (udlc.tasks.served)
    required: ClassVar[tuple[str, ...]]
    own_metrics: ClassVar[bool] = True  # the task logs its own metrics; the spec's `metrics` is refused
    maximized = frozenset({"token_accuracy", "exact_match"})
    # It takes the text augmentations (udlc.spec.text_augments) and checks them itself; the others take none:
    # moving or dropping words would leave a label per position (or a target sequence) no longer matching.
    augments_text: ClassVar[bool] = False

    def common_checks(self, compiled: Compiled, what: str) -> tuple[Any, tuple, list[SpecError]] | SpecError:
        """The one network's graph, where it is written, and the errors every such task finds."""
        from udlc.tasks.checks import check_sections

        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return found
        _, graph, base = found
        errors = check_sections(compiled, self)
        if spec.loss.type != "cross_entropy" or spec.loss.weight:
            errors.append(error(doc, f"task {self.name} learns with cross_entropy (no class weights)", ("loss",),
                                "write `loss: cross_entropy`"))
        if self.own_metrics:
            errors += no_metrics(compiled, self.name, "metrics (token_accuracy, exact_match)")
        if spec.data.augment and not self.augments_text:
            errors.append(error(doc, f"task {self.name} takes no augmentation", ("data", "augment"),
                                "drop `augment`", key=True))
        return graph, base, errors + check_fields(compiled, graph, base, self.fields, self.required, what)

    def split(self, compiled: Compiled, samples: list, rng: Any, labels: list | None = None) -> dict[str, list]:
        """Train, validation and test samples, in a seeded random order, by the spec's fractions; data.fraction or
        limit keeps a subset of the training samples (in proportion to each class where `labels` are given, as
        udlc.data.prepare draws it), the other splits whole."""
        import numpy as np

        data = compiled.spec.data
        order = rng.permutation(len(samples))
        n_train, n_val, _ = split_sizes(len(samples), data.split)
        cuts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
        if data.fraction is not None or data.limit is not None:
            from udlc.data.dataset import subset_of

            train = cuts["train"]
            cuts["train"] = subset_of(train, None if labels is None else np.asarray(labels)[train], data,
                                      compiled.spec.seed)
        return {k: [samples[i] for i in idx] for k, idx in cuts.items()}

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, self.serves, "softmax")]

    def sizes(self, state: FieldsState) -> str:
        return "/".join(str(len(state.data.splits[k])) for k in ("train", "val", "test"))

    def batches(self, state: FieldsState, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.collate import PaddedBatches

        samples = state.data.splits[split]
        return PaddedBatches(samples, batch_size, shuffle, device) if samples else None

    def start(self, compiled: Compiled, data: Sequences, device: Any) -> FieldsState:
        from udlc.objectives.losses import make_loss

        net, graph = next(iter(compiled.graphs.items()))
        return FieldsState(data, net=net, inputs=list(graph.inputs), loss_fn=make_loss(compiled.spec.loss, device))

    def test_outputs(self, s: Any, batch: Any) -> Any:
        st: FieldsState = s.run_state
        return s.models[st.net](*inputs_of(st.inputs, batch))

    # ---- tasks with a label at every position (seq2seq's decoder, token_classification) ------------------

    def train_positions(self, s: Any, batch: dict) -> tuple[dict[str, float], int]:
        """Cross-entropy over the real target positions: padding is not learned."""
        st: FieldsState = s.run_state
        inputs, target = inputs_of(st.inputs, batch), batch["target"]
        real = batch.get("target_mask", target >= 0)
        with s.autocast():
            loss = st.loss_fn(s.models[st.net](*inputs)[real], target[real])
        return {"loss": s.update(st.net, loss, (inputs, target))}, len(target)

    def decoded(self, st: FieldsState, model: Any, batch: dict, logits: Any) -> Any:
        """Each position's predicted label, as used: the most likely one (seq2seq decodes step by step)."""
        return logits.argmax(-1)

    def evaluate_positions(self, s: Any, batches: Any) -> dict[str, float]:
        """Loss and token accuracy over the real positions; exact_match: sequences right at every real one."""
        import torch
        import torch.nn.functional as F

        st: FieldsState = s.run_state
        model = s.models[st.net]
        was_training = model.training
        model.eval()
        nats = tokens = right = exact = n = 0
        with torch.no_grad():
            for batch in batches.epoch_batches(None):
                target = batch["target"]
                real = batch.get("target_mask", target >= 0)
                logits = model(*inputs_of(st.inputs, batch)).float()
                nats += F.cross_entropy(logits[real], target[real], reduction="sum").item()
                right += ((logits.argmax(-1) == target) & real).sum().item()
                exact += ((self.decoded(st, model, batch, logits) == target) | ~real).all(-1).sum().item()
                tokens, n = tokens + real.sum().item(), n + len(target)
        model.train(was_training)
        return {"loss": nats / tokens, "token_accuracy": right / tokens, "exact_match": exact / n}


def sequence_pairs(compiled: Compiled) -> tuple[tuple[str, ...], list[tuple[Any, Any]], Any]:
    """A generated sequence set's vocabulary, its (source ids, target ids) pairs, and the generator that made
    them (it goes on to order the split)."""
    import numpy as np

    from udlc.data.layout import DEFAULT_SAMPLES
    from udlc.data.builtin_sets import generator
    from udlc.spec.sources import SOURCES

    spec = compiled.spec
    entry = SOURCES.find(spec.data.source)
    index = {c: i for i, c in enumerate(entry.vocabulary)}
    encode = lambda text: np.array([index[c] for c in text], dtype=np.int64)  # noqa: E731
    rng = np.random.default_rng(spec.seed)
    pairs = [(encode(s), encode(t)) for s, t in generator(entry.name)(spec.data.samples or DEFAULT_SAMPLES, rng)]
    return entry.vocabulary, pairs, rng
