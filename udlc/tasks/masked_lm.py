"""task: masked_language_model — BERT's objective: a network reads a text with some tokens hidden and gives, at
every position, logits over the vocabulary; it learns the hidden ones.

    task: {masked_language_model: {context: 128, mask_rate: 0.15}}
    data: {source: stdlib, tokenizer: bpe, vocab_size: 4096}   # a text: built-in or .txt; byte, char, bpe, word
    model:
      inputs:
        tokens: {shape: [T], dtype: int64}
        token_types: {shape: [T], dtype: int64}   # optional: BERT's segment ids (all 0 here: one segment)
      layers: [..., linear: 4096]                  # (T, vocab) logits

The text is cut into windows of `context` tokens (udlc.data.masking.MaskedBatches), and each epoch each token is
chosen with probability `mask_rate`: of those, 80 % become [MASK], 10 % a random token, 10 % stay (Devlin et al.
2019). The loss is cross-entropy at the chosen positions only; a validation split is masked the same way every
epoch, so its loss is comparable between epochs. [CLS], [SEP] and [MASK] take the ids after the tokenizer's own
(udlc.data.specials), so the network's width is the tokenizer's and three more. The network may read the whole
window (no causality is asked of it). The exported file fills masks: `udlc generate model.onnx --prompt
"import [MASK]"` prints the text with each [MASK] replaced by its most likely token (a prompt without one is
asked for the token after it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, TYPE_CHECKING

from pydantic import Field, PositiveInt

from udlc.data.specials import BERT_SPECIALS
from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import check_sections, located, windows_corpus
from udlc.tasks.fields import (check_fields, error, inputs_of, length_bound_errors, no_metrics, one_network,
                               output_node, tokenizer_file_errors)
from udlc.tasks.language_model import embedding_errors
from udlc.tasks.registry import RunState, Served, Task, evaluating, register
from udlc.tasks.served import FILL_MASK

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"tokens": "int64", "tokens_mask": "bool", "token_types": "int64"}
MASK = "[MASK]"


@dataclass
class MaskedState(RunState):
    net: str
    inputs: list[str]  # the network's inputs, fed by name from a batch (inputs_of)
    loss_fn: Callable[[Any, Any], Any]
    seed: int  # an evaluation's masks are drawn from it


class MaskedLanguageModelOptions(StrictModel):
    type: Literal["masked_language_model"] = "masked_language_model"
    context: PositiveInt = Field(128, description="tokens per training window")
    mask_rate: float = Field(0.15, gt=0, lt=1, description="the share of tokens chosen to be learned (BERT: 0.15); "
                             "of those, 80 % become [MASK], 10 % a random token, 10 % stay")


def text_source_errors(compiled: Compiled, task: str) -> list[SpecError]:
    """A corpus objective reads a text source, learns with plain cross-entropy, and takes no metrics or augment."""
    from udlc.spec.sources import SOURCES

    spec, doc = compiled.spec, compiled.doc
    errors = []
    if not SOURCES.is_text(spec.data.source):
        errors.append(error(doc, f"task {task} reads text, but {spec.data.source} holds samples", ("data", "source"),
                            "use `source: stdlib` or a .txt file"))
    if spec.loss.type != "cross_entropy" or spec.loss.weight:
        errors.append(error(doc, f"task {task} learns with cross_entropy over the vocabulary (no class weights)",
                            ("loss",), "write `loss: cross_entropy` (label_smoothing is allowed)"))
    if spec.data.augment:
        errors.append(error(doc, f"task {task} takes no augmentation", ("data", "augment"), "drop `augment`", key=True))
    return errors + no_metrics(compiled, task, "values (loss, perplexity, accuracy at the hidden tokens)")


@register
class MaskedLanguageModel(Task):
    name = "masked_language_model"
    example = "masked_language_model.yaml"  # tests/specs/contract/: what the contract test trains
    config = MaskedLanguageModelOptions
    description = "BERT's objective: a network restores the masked tokens of a text (data: a text and a tokenizer)"
    maximized = frozenset({"masked_accuracy"})

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.data.specials import corpus_vocabulary

        spec, doc = compiled.spec, compiled.doc
        found = one_network(compiled, self.name)
        if isinstance(found, SpecError):
            return [found]
        _, graph, base = found
        errors = check_sections(compiled, self) + text_source_errors(compiled, self.name)
        errors += tokenizer_file_errors(compiled, self.name)
        errors += check_fields(compiled, graph, base, FIELDS, ("tokens",), "a masked-language-model batch")
        if errors:
            return errors
        length = graph.inputs["tokens"][0]
        if isinstance(length, int) and length != self.options.context:
            where = base + ("inputs", "tokens")
            return [error(doc, f"the input takes {length} tokens but the task's context is {self.options.context}",
                          where, f"write `shape: [T]` (any length), or context: {length}", key=True)]
        errors = length_bound_errors(compiled, graph, length, self.options.context, "context", self.where)
        out, node = graph.shape_of(graph.outputs[0]), output_node(graph)
        if len(graph.outputs) != 1 or out is None or len(out) != 2 or out[0] != length:
            return errors + [SpecError(f"a masked language model gives logits at every position, ({length}, vocab); "
                                       f"this one gives {out}", path=node.path, span=node.span,
                                       hint="keep the sequence axis and end with `linear: <vocab size>`")]
        errors += embedding_errors(graph, "token_types", 1, "one segment of a masked text (token type 0)")
        if spec.data.is_file() and not check_files:  # a .txt file's vocabulary is read only where files are
            return errors
        vocab, why = corpus_vocabulary(spec.data, compiled.base_dir, BERT_SPECIALS)
        if vocab is None:
            return errors + [located(why, doc)]
        if out[1] != vocab:
            errors.append(SpecError(f"the model gives {out[1]} logits per position but the {why} has {vocab} "
                                    "tokens", path=node.path, span=node.span, hint=f"end with `linear: {vocab}`"))
        return errors + embedding_errors(graph, "tokens", vocab, why)

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss", "val_perplexity", "val_masked_accuracy"] if has_val else [])

    def served(self, compiled: Compiled) -> list[Served]:
        return [Served(next(iter(compiled.graphs)), 0, FILL_MASK, "softmax")]

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        return windows_corpus(compiled, BERT_SPECIALS, self.options.context)

    def start(self, compiled: Compiled, data: Any, device: Any) -> MaskedState:
        from udlc.objectives.losses import make_loss

        net, graph = next(iter(compiled.graphs.items()))
        return MaskedState(data, net=net, inputs=list(graph.inputs), loss_fn=make_loss(compiled.spec.loss, device),
                           seed=compiled.spec.seed)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, tok = compiled.graphs[state.net], state.data.tokenizer
        return {"task": self.name, "classes": None, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()],
                "sample_shapes": [[self.options.context]] * len(graph.inputs), "context": self.options.context,
                "vocab_size": graph.shape_of(graph.outputs[0])[1], "tokenizer": tok.to_json(), "mask_token": MASK,
                "normalization": None}

    def chance_loss(self, compiled: Compiled, state: Any) -> tuple[float, str] | None:
        vocab = state.data.tokenizer.vocab_size
        return math.log(vocab), f"ln {vocab} for a vocabulary of {vocab} tokens"

    def sizes(self, state: Any) -> str:
        windows = (max(len(state.data.ids[s]) - 1, 0) // self.options.context for s in ("train", "val", "test"))
        return "/".join(map(str, windows))

    def batches(self, state: MaskedState, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.masking import MaskedBatches

        tok = state.data.tokenizer
        batches = MaskedBatches(state.data.ids[split], self.options.context, "tokens", split, batch_size, shuffle,
                                device, rate=self.options.mask_rate, mask_id=tok.id(MASK), vocab=tok.base.vocab_size,
                                seed=state.seed + ("train", "val", "test").index(split),
                                types="token_types" if "token_types" in state.inputs else None)
        return batches if batches.n else None

    def train_step(self, s: Any, batch: dict) -> tuple[dict[str, float], int]:
        st: MaskedState = s.run_state
        inputs, target, chosen = inputs_of(st.inputs, batch), batch["target"], batch["chosen"]
        with s.autocast():
            loss = st.loss_fn(s.models[st.net](*inputs)[chosen], target[chosen])  # the chosen positions only
        return {"loss": s.update(st.net, loss, (inputs, target))}, len(target)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        import torch.nn.functional as F

        st: MaskedState = s.run_state
        model = s.models[st.net]
        nats = right = count = 0.0
        with evaluating(model):
            for batch in batches.epoch_batches(None):
                chosen = batch["chosen"]
                logits, target = model(*inputs_of(st.inputs, batch)).float()[chosen], batch["target"][chosen]
                nats += F.cross_entropy(logits, target, reduction="sum").item()
                right += (logits.argmax(-1) == target).sum().item()
                count += len(target)
        loss = nats / count
        return {"loss": loss, "perplexity": math.exp(min(loss, 700)), "masked_accuracy": right / count}
