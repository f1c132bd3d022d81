"""task: sequence_classification — one network reads a text, as token ids, and gives its class.

    task: {sequence_classification: {max_tokens: 256}}
    data: {source: reviews.csv, text: review, target: label, tokenizer: char}
    model:
      inputs:
        tokens: {shape: [T], dtype: int64}
        tokens_mask: {shape: [T], dtype: bool}      # True at real positions (optional)
      layers: [..., linear: <classes>]
    loss: cross_entropy

Each row's text is tokenized (byte, char or bpe, as for language models) and cut to `max_tokens`; batches
pad the texts to the longest in the batch and give `tokens_mask`, which masked pooling and masked
attention read so that padding changes nothing. The exported model takes the ids and the mask and gives
`logits` and `probabilities`; it carries its tokenizer, so `udlc predict MODEL.onnx rows.csv` reads the
text column itself.
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, PositiveInt

from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import located
from udlc.tasks.fields import FieldsState, FieldsTask, Sequences, error, inputs_of, length_bound_errors, output_node
from udlc.tasks.language_model import embedding_errors
from udlc.tasks.registry import evaluating, register
from udlc.tasks.served import TEXT_CLASSES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"tokens": "int64", "tokens_mask": "bool"}


class SequenceClassificationOptions(StrictModel):
    type: Literal["sequence_classification"] = "sequence_classification"
    max_tokens: PositiveInt = Field(256, description="each text is cut to its first N tokens")


@register
class SequenceClassification(FieldsTask):
    name = "sequence_classification"
    example = "sequence_classification.yaml"  # tests/specs/contract/: what the contract test trains
    config = SequenceClassificationOptions
    description = "one network gives the class of a text (a CSV's text column, tokenized)"
    serves = TEXT_CLASSES
    fields, required, own_metrics = FIELDS, ("tokens",), False

    # ---- check time -----------------------------------------------------------------------------------

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        spec, doc = compiled.spec, compiled.doc
        found = self.common_checks(compiled, "a text batch")
        if isinstance(found, SpecError):
            return [found]
        graph, base, errors = found
        if spec.data.text is None:
            errors.append(error(doc, f"task {self.name} reads a text column", ("data", "source"),
                                "give a CSV and its column: `text: <column name>`"))
        if "tokens" in graph.inputs:
            errors += length_bound_errors(compiled, graph, graph.inputs["tokens"][0], self.options.max_tokens,
                                          "max_tokens", self.where)
        out = graph.shape_of(graph.outputs[0]) if len(graph.outputs) == 1 else None
        node = output_node(graph)
        if not errors and (out is None or len(out) != 1):
            errors.append(SpecError(f"a text classifier gives one logit per class, (classes,); this one gives {out}",
                                    path=node.path, span=node.span,
                                    hint="pool the sequence first (masked_seq_pool, select), then `linear: <classes>`"))
        if not errors and check_files:
            from udlc.data.text import DEFAULT_BPE_VOCAB, CharTokenizer

            try:
                texts, _ = self.read(compiled)
            except SpecError as e:
                return [located(e, doc)]
            vocab, why = {"byte": (256, "byte tokenizer"), "bpe": (spec.data.vocab_size or DEFAULT_BPE_VOCAB,
                                                                   "bpe tokenizer (data.vocab_size)")}.get(
                spec.data.tokenizer or "byte", (CharTokenizer.fit("\n".join(texts)).vocab_size,  # as training fits it
                                             f"char tokenizer of {spec.data.source}"))
            errors += embedding_errors(graph, "tokens", vocab, why)
        return errors

    def read(self, compiled: Compiled) -> tuple[list[str], list[str]]:
        """The CSV's texts and labels, the labels held to the model's output width."""
        from udlc.data.text import read_text_csv

        spec, graph = compiled.spec, next(iter(compiled.graphs.values()))
        texts, labels = read_text_csv(compiled.base_dir / spec.data.source, spec.data.text, spec.data.target)
        classes = sorted(set(labels))
        width, node = graph.shape_of(graph.outputs[0])[0], output_node(graph)
        if width != len(classes):
            raise SpecError(f"the model gives {width} logits but {spec.data.source} has {len(classes)} classes "
                            f"({', '.join(classes[:8])})", path=node.path, span=node.span,
                            hint=f"end with `linear: {len(classes)}`")
        return texts, labels

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        from udlc.spec.metrics import metric_name

        return ["train_loss"] + (["val_loss"] + [f"val_{metric_name(m)}" for m in spec.metrics] if has_val else [])

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        import numpy as np

        from udlc.data.text import fit_tokenizer

        spec = compiled.spec
        try:
            texts, labels = self.read(compiled)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        cuts = self.split(compiled, list(range(len(texts))), np.random.default_rng(spec.seed))  # row numbers
        train_text = "\n".join(texts[i] for i in cuts["train"])
        tokenizer = fit_tokenizer(spec.data.tokenizer, train_text, "\n".join(texts), spec.data.vocab_size)
        classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        limit = self.options.max_tokens

        def sample(i: int) -> dict:
            return {"tokens": tokenizer.encode(texts[i])[:limit], "target": np.int64(index[labels[i]])}

        return Sequences({k: [sample(i) for i in idx] for k, idx in cuts.items()}, classes=classes,
                         tokenizer=tokenizer)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, tokenizer = compiled.graphs[state.net], state.data.tokenizer
        return {"task": self.name, "classes": state.data.classes, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()], "normalization": None,
                "tokenizer": tokenizer.to_json(), "vocab_size": tokenizer.vocab_size,
                "text_column": compiled.spec.data.text, "max_tokens": self.options.max_tokens}

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        st: FieldsState = s.run_state
        inputs = inputs_of(st.inputs, batch)
        with s.autocast():
            loss = st.loss_fn(s.models[st.net](*inputs), batch["target"])
        return {"loss": s.update(st.net, loss, (inputs, batch["target"]))}, len(batch["target"])

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch

        from udlc.objectives.metrics import compute_metrics

        st: FieldsState = s.run_state
        model = s.models[st.net]
        with evaluating(model):
            pairs = [(model(*inputs_of(st.inputs, b)).float(), b["target"]) for b in batches.epoch_batches(None)]
        out, y = torch.cat([o for o, _ in pairs]), torch.cat([t for _, t in pairs])
        return {"loss": st.loss_fn(out, y).item(), **compute_metrics(s.spec.metrics, out, y, "softmax")}
