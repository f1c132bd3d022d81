"""task: span_corruption — T5's objective (Raffel et al. 2020): an encoder–decoder reads a text with spans hidden,
each replaced by a sentinel, and writes the hidden spans, each after its sentinel.

    task: {span_corruption: {context: 128, noise_density: 0.15, mean_span_length: 3}}
    data: {source: stdlib, tokenizer: bpe, vocab_size: 4096}   # a text: built-in or .txt; byte, char, bpe, word
    model:
      inputs:                                      # a seq2seq network's fields
        source: {shape: [S], dtype: int64}
        source_mask: {shape: [S], dtype: bool}     # optional
        decoder: {shape: [T], dtype: int64}        # <bos> + target
      layers: [..., linear: 4096]                  # (T, vocab) logits

Each epoch each window of `context` tokens is corrupted anew from the run's generator, as
`t5.data.preprocessors.span_corruption` does (udlc.data.masking): "Thank you for inviting me to your party last
week" → source "Thank you <extra_id_0> me to your party <extra_id_1> week", target "<extra_id_0> for inviting
<extra_id_1> last <extra_id_2>" (T5's noise spans are drawn so that a text ends in one, and its target in a hidden
span). <bos>, <eos> and T5's 100 sentinels take the ids after the tokenizer's own, <extra_id_0> the
last (udlc.data.specials). Training and evaluation are seq2seq's (teacher forcing; token accuracy and greedy
exact match), and so is the exported file: `udlc generate` writes the spans a source's sentinels hide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from pydantic import Field, PositiveInt

from udlc.data.specials import SENTINELS, SPAN_SPECIALS
from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import located, windows_corpus
from udlc.tasks.fields import error, length_bound_errors, output_node, tokenizer_file_errors
from udlc.tasks.language_model import embedding_errors
from udlc.tasks.registry import register
from udlc.tasks.seq2seq import Seq2Seq, Seq2SeqState, vocabulary_info

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled


@dataclass
class SpanState(Seq2SeqState):
    seed: int = 0  # an evaluation's spans are drawn from it


class SpanCorruptionOptions(StrictModel):
    type: Literal["span_corruption"] = "span_corruption"
    context: PositiveInt = Field(128, ge=2, description="tokens per text window, before corruption")
    noise_density: float = Field(0.15, gt=0, lt=1, description="the share of tokens hidden (T5: 0.15)")
    mean_span_length: float = Field(3.0, ge=1, description="the hidden spans' mean length in tokens (T5: 3)")


@register
class SpanCorruption(Seq2Seq):
    name = "span_corruption"
    example = "span_corruption.yaml"  # tests/specs/contract/: what the contract test trains
    config = SpanCorruptionOptions
    description = "T5's objective: an encoder–decoder writes the spans hidden behind a text's sentinels"

    def counts(self) -> tuple[int, int, int, int]:
        """(noise tokens, spans, source length, target length) of every window: each has the same counts."""
        from udlc.data.masking import span_counts

        o = self.options
        noise, spans = span_counts(o.context, o.noise_density, o.mean_span_length)
        return noise, spans, o.context - noise + spans + 1, noise + spans + 1

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.data.specials import corpus_vocabulary
        from udlc.spec.sources import SOURCES

        spec, doc = compiled.spec, compiled.doc
        found = self.common_checks(compiled, "a seq2seq batch (span corruption's source and decoder)")
        if isinstance(found, SpecError):
            return [found]
        graph, base, errors = found
        errors += tokenizer_file_errors(compiled, self.name)
        if not SOURCES.is_text(spec.data.source):
            errors.append(error(doc, f"task {self.name} reads text, but {spec.data.source} holds samples",
                                ("data", "source"), "use `source: stdlib` or a .txt file"))
        _, spans, source, target = self.counts()
        if spans > SENTINELS:
            errors.append(error(doc, f"a window of {self.options.context} tokens hides {spans} spans, more than T5's "
                                f"{SENTINELS} sentinels", self.where + ("context",),
                                "shorten the context, or lengthen mean_span_length"))
        if errors:
            return errors
        for symbol, length, option in ((graph.inputs["source"][0], source, "context"),
                                       (graph.inputs["decoder"][0], target, "context")):
            errors += length_bound_errors(compiled, graph, symbol, length, option, self.where)
        out, node = graph.shape_of(graph.outputs[0]), output_node(graph)
        if len(graph.outputs) != 1 or out is None or len(out) != 2 or out[0] != graph.inputs["decoder"][0]:
            return errors + [SpecError(f"a seq2seq model gives logits at each decoder position, "
                                       f"({graph.inputs['decoder'][0]}, vocab); this one gives {out}", path=node.path,
                                       span=node.span, hint="end with `linear: <vocab size>` on the decoder's axis")]
        if check_files or not spec.data.is_file():
            vocab, why = corpus_vocabulary(spec.data, compiled.base_dir, SPAN_SPECIALS)
            if vocab is None:
                return errors + [located(why, doc)]
            if out[1] != vocab:
                errors.append(SpecError(f"the model gives {out[1]} logits per position but the {why} has {vocab} "
                                        "tokens", path=node.path, span=node.span, hint=f"end with `linear: {vocab}`"))
            errors += embedding_errors(graph, "source", vocab, why) + embedding_errors(graph, "decoder", vocab, why)
        return errors + self.decoder_errors(graph, doc)

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        return windows_corpus(compiled, SPAN_SPECIALS, self.options.context)

    def start(self, compiled: Compiled, data: Any, device: Any) -> SpanState:
        from udlc.objectives.losses import make_loss

        net, graph = next(iter(compiled.graphs.items()))
        tok = data.tokenizer
        return SpanState(data, net=net, inputs=list(graph.inputs), loss_fn=make_loss(compiled.spec.loss, device),
                         bos=tok.id("<bos>"), eos=tok.id("<eos>"), seed=compiled.spec.seed)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph = compiled.graphs[state.net]
        _, _, source, target = self.counts()
        return {"task": self.name, "classes": None, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()],
                "sample_shapes": [[source if n.startswith("source") else target] for n in graph.inputs],
                "max_target_length": target, "context": self.options.context, "normalization": None,
                **vocabulary_info(graph, (), state.data.tokenizer)}

    def sizes(self, state: Any) -> str:
        windows = (max(len(state.data.ids[s]) - 1, 0) // self.options.context for s in ("train", "val", "test"))
        return "/".join(map(str, windows))

    def batches(self, state: Any, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        from udlc.data.masking import SpanBatches

        tok, o = state.data.tokenizer, self.options
        batches = SpanBatches(state.data.ids[split], o.context, split, batch_size, shuffle, device,
                              density=o.noise_density, mean_span_length=o.mean_span_length,
                              sentinels=[tok.id(f"<extra_id_{k}>") for k in range(SENTINELS)],
                              bos=state.bos, eos=state.eos, seed=state.seed + ("train", "val", "test").index(split))
        return batches if batches.n else None
