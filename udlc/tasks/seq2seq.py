"""task: seq2seq — an encoder–decoder network maps a source sequence to a target one, trained with teacher
forcing: the decoder reads the target shifted right (after a begin token) and learns each next token.

    task: seq2seq
    data: {source: reverse, samples: 20000}          # generated: copy, reverse, sort, add
    model:
      inputs:                                        # named after the batch's fields
        source: {shape: [S], dtype: int64}
        source_mask: {shape: [S], dtype: bool}       # True at real positions (optional)
        decoder: {shape: [T], dtype: int64}          # <bos> + target
      layers: [..., linear: 13]                      # (T, vocabulary) logits
    loss: cross_entropy

Batches pad each field to the longest in the batch (udlc.data.collate) and give `<field>_mask`; the loss
and the token accuracy count real target positions only. `exact_match` decodes greedily, one token at a
time as in use, and counts the sequences that come out whole; it is logged for validation and test.
"""

from __future__ import annotations

from typing import Any, Literal, TYPE_CHECKING

from udlc.compiler.causality import causality_errors
from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.fields import FieldsTask, Sequences, error, inputs_of, output_node, sequence_pairs
from udlc.tasks.registry import register
from udlc.tasks.served import DECODED_TEXT

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"source": "int64", "source_mask": "bool", "decoder": "int64", "decoder_mask": "bool"}
PAD, BOS, EOS = 0, 1, 2  # udlc.spec.sources.SPECIAL_TOKENS


class Seq2SeqOptions(StrictModel):
    type: Literal["seq2seq"] = "seq2seq"


@register
class Seq2Seq(FieldsTask):
    name = "seq2seq"
    example = "seq2seq.yaml"  # tests/specs/contract/: what the contract test trains
    config = Seq2SeqOptions
    description = "an encoder–decoder network maps a token sequence to another (teacher forcing; greedy exact match)"
    serves = DECODED_TEXT
    fields, required = FIELDS, ("source", "decoder")

    def check(self, compiled: Compiled, check_files: bool) -> list[SpecError]:
        from udlc.spec.sources import SOURCES, SequenceSet

        spec, doc = compiled.spec, compiled.doc
        found = self.common_checks(compiled, "a seq2seq batch")
        if isinstance(found, SpecError):
            return [found]
        graph, base, errors = found
        entry = SOURCES.find(spec.data.source)
        if not isinstance(entry, SequenceSet):
            errors.append(error(doc, f"task {self.name} learns from pairs of sequences, and {spec.data.source} holds "
                                "none", ("data", "source"), "use a generated sequence task: "
                                + ", ".join(e.name for e in SOURCES.sequence_sets())))
        if errors:
            return errors
        out, node = graph.shape_of(graph.outputs[0]), output_node(graph)
        vocab = len(entry.vocabulary)
        if len(graph.outputs) != 1 or out is None or len(out) != 2 or out[0] != graph.inputs["decoder"][0]:
            return [SpecError(f"a seq2seq model gives logits at each decoder position, ({graph.inputs['decoder'][0]}, "
                              f"{vocab}); this one gives {out}", path=node.path, span=node.span,
                              hint=f"end with `linear: {vocab}` on the decoder's sequence")]
        if out[1] != vocab:
            return [SpecError(f"the model gives {out[1]} logits per position but {entry.name} has {vocab} tokens "
                              f"({' '.join(entry.vocabulary)})", path=node.path, span=node.span,
                              hint=f"end with `linear: {vocab}`")]
        # Teacher forcing feeds the whole target: a decoder whose logits at t read decoder token t + 1 copies it in
        # training and has nothing to copy when it decodes one token at a time. The source may be read whole.
        return causality_errors(graph, ["decoder", "decoder_mask"], doc,
                                "a seq2seq decoder predicts each token from the source and the tokens before it")

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss", "val_token_accuracy", "val_exact_match"] if has_val else [])

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        import numpy as np

        vocabulary, pairs, rng = sequence_pairs(compiled)
        samples = [{"source": s, "decoder": np.concatenate([[BOS], t]), "target": np.concatenate([t, [EOS]])}
                   for s, t in pairs]
        return Sequences(self.split(compiled, samples, rng), vocabulary)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, data = compiled.graphs[state.net], state.data
        longest = max(len(x["target"]) for samples in data.splits.values() for x in samples)
        return {"task": self.name, "classes": None, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()],
                "vocabulary": list(data.vocabulary), "max_target_length": longest, "normalization": None}

    def train_step(self, s: Any, batch: Any) -> tuple[dict[str, float], int]:
        return self.train_positions(s, batch)

    def evaluate(self, s: Any, batches: Any) -> dict[str, float]:
        return self.evaluate_positions(s, batches)

    def decoded(self, st: Any, model: Any, batch: dict, logits: Any) -> Any:
        return self.greedy(st, model, batch)

    def greedy(self, st: Any, model: Any, batch: dict) -> Any:
        """Each sequence decoded one token at a time from <bos>, as in use; PAD after its first <eos>, and
        as long as the batch's targets (a longer answer is wrong at its first extra token anyway)."""
        import torch

        target = batch["target"]
        out = torch.full((len(target), 1), BOS, dtype=torch.long, device=target.device)
        done = torch.zeros(len(target), dtype=torch.bool, device=target.device)
        steps = []
        for _ in range(target.shape[1]):
            fields = {**batch, "decoder": out, "decoder_mask": torch.ones_like(out, dtype=torch.bool)}
            token = model(*inputs_of(st.inputs, fields))[:, -1].argmax(-1)
            steps.append(torch.where(done, PAD, token))
            done |= token == EOS
            out = torch.cat([out, token[:, None]], 1)
        return torch.stack(steps, 1)
