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

Text to text, from a CSV's source and target columns, tokenized (byte, char or bpe, <bos> and <eos> after the
tokenizer's own ids: udlc.data.specials), as T5 frames every task:

    data: {source: pairs.csv, text: question, target: answer, tokenizer: char}

Batches pad each field to the longest in the batch (udlc.data.collate) and give `<field>_mask`; the loss
and the token accuracy count real target positions only. `exact_match` decodes greedily, one token at a
time as in use, and counts the sequences that come out whole; it is logged for validation and test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TYPE_CHECKING

from udlc.compiler.causality import causality_errors
from udlc.data.specials import SEQ2SEQ_SPECIALS
from udlc.errors import SpecError
from udlc.spec.base import StrictModel
from udlc.tasks.checks import located
from udlc.tasks.fields import FieldsState, FieldsTask, Sequences, error, inputs_of, output_node, sequence_pairs
from udlc.tasks.registry import register
from udlc.tasks.served import DECODED_TEXT

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"source": "int64", "source_mask": "bool", "decoder": "int64", "decoder_mask": "bool"}
PAD, BOS, EOS = 0, 1, 2  # udlc.spec.sources.SPECIAL_TOKENS


@dataclass
class Seq2SeqState(FieldsState):
    bos: int = BOS  # the decoder's first token and a target's end: a tokenizer's specials, else the set's
    eos: int = EOS


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
        texts = spec.data.is_file() and spec.data.source.lower().endswith(".csv")
        if not isinstance(entry, SequenceSet) and not texts:
            errors.append(error(doc, f"task {self.name} learns from pairs of sequences, and {spec.data.source} holds "
                                "none", ("data", "source"), "use a generated sequence task ("
                                + ", ".join(e.name for e in SOURCES.sequence_sets()) + ") or a CSV of texts"))
        elif texts and not isinstance(spec.data.text, str):
            errors.append(error(doc, f"task {self.name} maps a CSV's source column to its target column",
                                ("data", "source"), "name them: `text: <source column>, target: <target column>`"))
        if spec.data.tokenizer_from is not None:  # its tokenizer adds <bos>/<eos> ids of its own (udlc.data.specials)
            errors.append(error(doc, f"task {self.name} learns its tokenizer from its own rows; tokenizer_from is read "
                                "by sequence_classification", ("data", "tokenizer_from"), "leave it out", key=True))
        if errors:
            return errors
        out, node = graph.shape_of(graph.outputs[0]), output_node(graph)
        if texts:
            if not check_files:
                return self.decoder_errors(graph, doc)
            try:
                sources, targets = self.read(compiled)
            except SpecError as e:
                return [located(e, doc)]
            from udlc.data.specials import texts_vocabulary

            vocab, named = texts_vocabulary(spec.data, sources + targets, SEQ2SEQ_SPECIALS)
        else:
            vocab, named = len(entry.vocabulary), entry.name
        if len(graph.outputs) != 1 or out is None or len(out) != 2 or out[0] != graph.inputs["decoder"][0]:
            return [SpecError(f"a seq2seq model gives logits at each decoder position, ({graph.inputs['decoder'][0]}, "
                              f"{vocab}); this one gives {out}", path=node.path, span=node.span,
                              hint=f"end with `linear: {vocab}` on the decoder's sequence")]
        if out[1] != vocab:
            listed = "" if texts else f" ({' '.join(entry.vocabulary)})"
            return [SpecError(f"the model gives {out[1]} logits per position but {named} has {vocab} tokens"
                              f"{listed}", path=node.path, span=node.span, hint=f"end with `linear: {vocab}`")]
        return self.decoder_errors(graph, doc)

    def decoder_errors(self, graph: Any, doc: Any) -> list[SpecError]:
        """Teacher forcing feeds the whole target: a decoder whose logits at t read decoder token t + 1 copies it in
        training and has nothing to copy when it decodes one token at a time. The source may be read whole."""
        return causality_errors(graph, ["decoder", "decoder_mask"], doc,
                                "a seq2seq decoder predicts each token from the source and the tokens before it")

    def read(self, compiled: Compiled) -> tuple[list[str], list[str]]:
        """A CSV's source texts and target texts (data.text and data.target)."""
        from udlc.data.text import read_text_csv

        data = compiled.spec.data
        return read_text_csv(compiled.base_dir / data.source, data.text, data.target)

    def logged(self, spec: Any, has_val: bool) -> list[str]:
        return ["train_loss"] + (["val_loss", "val_token_accuracy", "val_exact_match"] if has_val else [])

    # ---- train time -----------------------------------------------------------------------------------

    def load_data(self, compiled: Compiled) -> Any:
        import numpy as np

        if compiled.spec.data.is_file():
            try:
                return self.load_texts(compiled)
            except SpecError as e:
                raise located(e, compiled.doc) from None
        vocabulary, pairs, rng = sequence_pairs(compiled)
        samples = [{"source": s, "decoder": np.concatenate([[BOS], t]), "target": np.concatenate([t, [EOS]])}
                   for s, t in pairs]
        return Sequences(self.split(compiled, samples, rng), vocabulary)

    def load_texts(self, compiled: Compiled) -> Sequences:
        """A CSV's rows as (source + <eos>, <bos> + target, target + <eos>) ids, the tokenizer fitted on the
        training rows' texts, both columns."""
        import numpy as np

        from udlc.data.specials import fit_with_specials

        sources, targets = self.read(compiled)
        cuts = self.split(compiled, list(range(len(sources))), np.random.default_rng(compiled.spec.seed))
        train = "\n".join(t for i in cuts["train"] for t in (sources[i], targets[i]))
        tok = fit_with_specials(compiled.spec.data, train, "\n".join(sources + targets), SEQ2SEQ_SPECIALS)
        bos, eos = tok.id("<bos>"), tok.id("<eos>")

        def sample(i: int) -> dict:
            t = tok.encode(targets[i])
            return {"source": np.append(tok.encode(sources[i]), eos), "decoder": np.concatenate([[bos], t]),
                    "target": np.append(t, eos)}

        return Sequences({k: [sample(i) for i in idx] for k, idx in cuts.items()}, tokenizer=tok)

    def start(self, compiled: Compiled, data: Sequences, device: Any) -> Seq2SeqState:
        base = super().start(compiled, data, device)
        tok = data.tokenizer
        ends = (tok.id("<bos>"), tok.id("<eos>")) if tok is not None else (BOS, EOS)
        return Seq2SeqState(data, net=base.net, inputs=base.inputs, loss_fn=base.loss_fn, bos=ends[0], eos=ends[1])

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, data = compiled.graphs[state.net], state.data
        longest = max(len(x["target"]) for samples in data.splits.values() for x in samples)
        return {"task": self.name, "classes": None, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()], "max_target_length": longest,
                "normalization": None, **vocabulary_info(graph, data.vocabulary, data.tokenizer)}

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
        out = torch.full((len(target), 1), st.bos, dtype=torch.long, device=target.device)
        done = torch.zeros(len(target), dtype=torch.bool, device=target.device)
        steps = []
        for _ in range(target.shape[1]):
            fields = {**batch, "decoder": out, "decoder_mask": torch.ones_like(out, dtype=torch.bool)}
            token = model(*inputs_of(st.inputs, fields))[:, -1].argmax(-1)
            steps.append(torch.where(done, PAD, token))
            done |= token == st.eos
            out = torch.cat([out, token[:, None]], 1)
        return torch.stack(steps, 1)


def vocabulary_info(graph: Any, vocabulary: tuple[str, ...], tokenizer: Any) -> dict[str, Any]:
    """What a served encoder–decoder reads its texts with: a generated set's vocabulary, or a tokenizer (its JSON,
    and the network's width, which a padded BPE makes wider than the tokenizer)."""
    if tokenizer is None:
        return {"vocabulary": list(vocabulary)}
    return {"vocabulary": [], "tokenizer": tokenizer.to_json(), "vocab_size": graph.shape_of(graph.outputs[0])[1]}
