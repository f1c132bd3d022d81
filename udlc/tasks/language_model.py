"""task: language_model — one causal network learns the next token of a text.

    task: {language_model: {context: 128}}
    data: {source: stdlib, tokenizer: byte}          # or a .txt file; byte, char or bpe
    model:
      input: {shape: [T], dtype: int64}
      layers: [..., linear: 256]                     # (T, vocab) logits: position t predicts token t + 1
    loss: cross_entropy

The network reads windows of `context` token ids and gives, at every position, logits over the
vocabulary for the token that follows (udlc.data.text makes the windows). Causality is the model's, and
`check` refuses a network whose logits at t see a later token (udlc.compiler.causality): a transformer needs
`causal: true` attention (gpt_block), a left-to-right recurrent network is causal as written. Each epoch logs the
loss in nats per token, perplexity and bits per byte (comparable across tokenizers: the split's
total loss in bits over its UTF-8 bytes). The exported model serves logits and probabilities at every
position, and carries its tokenizer, so `udlc generate` needs only onnxruntime and numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, TYPE_CHECKING

from pydantic import Field, PositiveInt

from udlc.compiler.causality import causality_errors
from udlc.errors import SpecError, one_of
from udlc.spec.base import StrictModel
from udlc.tasks.checks import check_sections, located
from udlc.tasks.fields import error, length_bound_errors
from udlc.tasks.registry import RunState, Served, Task, register
from udlc.tasks.served import NEXT_TOKEN

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

MEAN_METRICS = ("accuracy", "top_k")  # averages over tokens: exact when computed batch by batch


@dataclass
class LanguageModelState(RunState):
    net: str  # the one network
    input: str  # its input: a window of token ids
    loss_fn: Callable[[Any, Any], Any]  # cross-entropy over every position


class LanguageModelOptions(StrictModel):
    type: Literal["language_model"] = "language_model"
    context: PositiveInt = Field(128, description="tokens per training window (the longest context the model sees)")


@register
class LanguageModel(Task):
    name = "language_model"
    example = "language_model.yaml"  # tests/specs/contract/: what the contract test trains
    config = LanguageModelOptions
    description = "one causal network learns the next token of a text (data: a text source and a tokenizer)"
    splits_evaluation = True  # evaluate sums over a share of the windows in each process, then over all

    def network(self, compiled: Compiled) -> str:
        return next(iter(compiled.graphs))

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.spec.sources import SOURCES

        spec, doc = compiled.spec, compiled.doc
        networks = list(compiled.graphs)
        if len(networks) != 1:
            return [error(doc, f"task {self.name} trains one network, but `models` names {len(networks)}", ("models",),
                        "give one network under `model:`", key=True)]
        base = ("model",) if spec.model is not None else ("models", networks[0])
        graph = compiled.graphs[networks[0]]
        errors = check_sections(compiled, self)
        if not SOURCES.is_text(spec.data.source):
            errors.append(error(doc, f"task {self.name} reads text, but {spec.data.source} holds samples",
                              ("data", "source"), "use `source: stdlib` or a .txt file"))
        if spec.loss.type != "cross_entropy" or spec.loss.weight:
            errors.append(error(doc, "a language model learns with cross_entropy over the vocabulary (no class weights)",
                              ("loss",), "write `loss: cross_entropy` (label_smoothing is allowed)"))
        for i, m in enumerate(spec.metrics):
            if m.type not in MEAN_METRICS:
                errors.append(error(doc, f"'{m.type}' is not computed for language models", ("metrics", i),
                                  f"use {one_of(MEAN_METRICS)} (perplexity and bits per byte are always logged)"))
        for i, aug in enumerate(spec.data.augment):
            errors.append(error(doc, "a language model's data is not augmented", ("data", "augment", i),
                              "drop `augment`"))
        if len(graph.inputs) != 1:
            return errors + [error(doc, f"task {self.name} feeds one input of token ids; this model has "
                                 f"{len(graph.inputs)}", base + ("inputs",), "give one `input`", key=True)]
        (name, shape), = graph.inputs.items()
        where = base + (("input",) if spec.networks[networks[0]].input is not None else ("inputs", name))
        if len(shape) != 1 or graph.dtype_of(name) != "int64":
            errors.append(error(doc, f"a language model reads token ids: one int64 axis, not {_typed(shape, graph.dtype_of(name))}",
                              where, "write `input: {shape: [T], dtype: int64}`", key=True))
        elif isinstance(shape[0], int) and shape[0] != self.options.context:
            errors.append(error(doc, f"the input takes {shape[0]} tokens but the task's context is {self.options.context}",
                              where, f"write `shape: [T]` (any length), or context: {shape[0]}", key=True))
        if len(graph.outputs) != 1:
            errors.append(error(doc, f"task {self.name} trains one output", base + ("outputs",), key=True))
        errors += length_bound_errors(compiled, graph, shape[0], self.options.context, "context", self.where)
        if errors:
            return errors
        out = graph.shape_of(graph.outputs[0])
        node = graph.nodes[graph.outputs[0].partition(".")[0]]
        if out is None or len(out) != 2 or out[0] != shape[0]:
            return [SpecError(f"a language model gives logits at every position, ({shape[0]}, vocab); this one "
                              f"gives {out}", path=node.path, span=node.span,
                              hint="keep the sequence axis to the end and finish with `linear: <vocab size>`")]
        # Causality is the model's to keep (a transformer needs causal attention), and check holds it to it: a model
        # whose logits at t read token t + 1 copies it in training and has nothing to copy when it generates.
        errors = causality_errors(graph, [name], doc, "a language model predicts each token from the ones before it")
        if check_files or not spec.data.is_file():
            errors += self.check_vocabulary(compiled, graph, out[1], node)
        return errors

    def check_vocabulary(self, compiled: Compiled, graph: Any, width: int, node: Any) -> list[SpecError]:
        """The output's width and every embedding of the ids against the tokenizer's vocabulary."""
        vocab, why = vocabulary_size(compiled)
        if vocab is None:
            return [located(why, compiled.doc)]
        errors = []
        if width != vocab:
            errors.append(SpecError(f"the model gives {width} logits per position but the {why} has {vocab} tokens",
                                    path=node.path, span=node.span, hint=f"finish with `linear: {vocab}`"))
        (name,) = graph.inputs
        return errors + embedding_errors(graph, name, vocab, why)

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        from udlc.spec.metrics import metric_name

        names = ["train_loss"]
        if has_val:
            names += ["val_loss", "val_perplexity", "val_bits_per_byte"] + [f"val_{metric_name(m)}"
                                                                           for m in spec.metrics]
        return names

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(self.network(compiled), 0, NEXT_TOKEN, "softmax")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        from udlc.data.text import load_corpus

        spec = compiled.spec
        try:
            data = load_corpus(spec.data, compiled.base_dir)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        if not len(data.windows("train", self.options.context)[0]):
            raise located(SpecError(f"the training text holds {len(data.ids['train'])} tokens, fewer than one "
                                    f"window of context {self.options.context} + 1", path="data.source",
                                    hint="give more text (max_chars), or a shorter context"), compiled.doc)
        return data

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, data = compiled.graphs[state.net], state.data
        return {
            "task": self.name,
            "classes": None,
            "input_names": list(graph.inputs),
            "input_shapes": [list(s) for s in graph.inputs.values()],
            "sample_shapes": [[self.options.context]],
            "context": self.options.context,
            "vocab_size": data.tokenizer.vocab_size,
            "tokenizer": data.tokenizer.to_json(),
            "normalization": None,  # token ids are not standardized
        }

    def chance_loss(self, compiled: Compiled, state: Any) -> tuple[float, str] | None:
        """Each position guesses among the whole vocabulary: ln V."""
        import math

        vocab = state.data.tokenizer.vocab_size
        return math.log(vocab), f"ln {vocab} for a vocabulary of {vocab} tokens"

    def sizes(self, state: Any) -> str:
        return "/".join(str(len(state.data.windows(s, self.options.context)[0])) for s in ("train", "val", "test"))

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.text import WindowBatches

        batches = WindowBatches(state.data.ids[split], self.options.context, state.input, split, batch_size, shuffle,
                                device)
        return batches if batches.n else None

    def start(self, compiled: Compiled, data: Any, device: Any) -> LanguageModelState:
        from udlc.objectives.losses import make_loss

        net = self.network(compiled)
        ce = make_loss(compiled.spec.loss, device)
        return LanguageModelState(data, net=net, input=next(iter(compiled.graphs[net].inputs)),
                                  loss_fn=lambda out, y: ce(out.flatten(0, -2), y.flatten()))

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        st: LanguageModelState = s.run_state
        xb, yb = batch[st.input], batch["target"]
        with s.autocast():
            loss = st.loss_fn(s.models[st.net](xb), yb)
        return {"loss": s.update(st.net, loss, (xb, yb))}, len(xb)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        """Sums over the split's windows batch by batch: the logits of a whole split need not fit in memory."""
        import torch
        import torch.nn.functional as F

        from udlc.objectives.metrics import compute_metrics

        st: LanguageModelState = s.run_state
        model = s.models[st.net]
        was_training = model.training
        model.eval()
        nats, tokens, sums = 0.0, 0, {}
        with torch.no_grad():
            for batch in batches.epoch_batches(None):
                xb, yb = batch[st.input], batch["target"]
                with s.autocast():
                    out = model(xb)
                out, y = out.float().flatten(0, -2), yb.flatten()
                # A Shard's stand-in window counts for nothing, but is scored: every process sums the same keys.
                n = s.counted(batches, len(y))
                nats += F.cross_entropy(out, y, reduction="sum").item() * (n > 0)  # unsmoothed: of the data
                for k, v in compute_metrics(s.spec.metrics, out, y, "softmax").items():
                    sums[k] = sums.get(k, 0.0) + v * n
                tokens += n
        model.train(was_training)
        keys = sorted(sums)  # a process's share of the split: the sums over all of them
        totals = s.all_reduce_sum(batches, [nats, tokens, *(sums[k] for k in keys)])
        nats, tokens, sums = totals[0], round(totals[1]), dict(zip(keys, totals[2:]))
        loss = nats / tokens
        # The windows cover all but the split's last few tokens: count the bytes they stand for at the split's
        # bytes per token (exact for the byte tokenizer, where bits per byte is the loss in bits).
        split = batches.split
        split_bytes = tokens * st.data.bytes[split] / len(st.data.ids[split])
        row = {"loss": loss, "perplexity": math.exp(min(loss, 700)),
               "bits_per_byte": nats / math.log(2) / split_bytes}
        row.update({k: v / tokens for k, v in sums.items()})
        return row


def embedding_errors(graph: Any, ids: str, vocab: int, why: str) -> list[SpecError]:
    """Every embedding that reads the token ids `ids` must have a row for each token of the vocabulary."""
    return [SpecError(f"the embedding has {n.config.num_embeddings} rows but the {why} has {vocab} tokens",
                      path=n.path, span=n.span, hint=f"num_embeddings: {vocab}")
            for n in graph.nodes.values()
            if n.op == "embedding" and ids in n.inputs and n.config.num_embeddings < vocab]


def vocabulary_size(compiled: Compiled) -> tuple[int | None, Any]:
    """The tokenizer's vocabulary size as check can know it, and its description (or the SpecError)."""
    from udlc.data.text import CharTokenizer, read_text

    data = compiled.spec.data
    if data.tokenizer in (None, "byte"):
        return 256, "byte tokenizer"
    if data.tokenizer in ("bpe", "word"):  # learned from the training split, as training will
        from udlc.data.text import checked_vocabulary

        return checked_vocabulary(data, compiled.base_dir)
    try:
        text = read_text(data.source, data.max_chars, compiled.base_dir)
    except SpecError as e:
        return None, e
    return CharTokenizer.fit(text).vocab_size, f"char tokenizer of {data.source}"


def _typed(shape: tuple, dtype: str | None) -> str:
    return f"({', '.join(map(str, shape))}) {dtype}"
