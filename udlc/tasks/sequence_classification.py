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
from udlc.spec.data import split_sizes
from udlc.tasks.checks import located
from udlc.tasks.fields import FieldsState, FieldsTask, Sequences, error, inputs_of, length_bound_errors, output_node
from udlc.tasks.language_model import embedding_errors
from udlc.tasks.registry import evaluating, register
from udlc.tasks.served import TEXT_CLASSES

if TYPE_CHECKING:  # annotations only: the check path imports no more than it needs
    from udlc.compiler.pipeline import Compiled

FIELDS = {"tokens": "int64", "tokens_mask": "bool", "token_types": "int64"}  # types: a sentence pair's 0, 1


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
    augments_text = True  # data.augment's text augmentations (udlc.data.text_augment), checked below
    draws_subsets = True  # data.fraction/limit: FieldsTask.split keeps that share of the training rows, by class

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
        elif isinstance(spec.data.text, list) and spec.data.augment:
            errors.append(error(doc, "text augmentations change one text, and these rows are sentence pairs",
                                ("data", "augment"), "drop `augment`, or read one text column", key=True))
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
                texts, labels = self.read(compiled)
            except SpecError as e:
                return [located(e, doc)]
            n_train = split_sizes(len(texts), spec.data.split)[0]
            if spec.data.limit is not None and spec.data.limit > n_train:  # before a tokenizer learns from the rows
                return errors + [error(doc, f"limit {spec.data.limit} is more than the training split's {n_train} "
                                       "rows", ("data", "limit"), f"give at most {n_train}, or leave `limit` out to "
                                                                   "train on them all")]
            if isinstance(spec.data.text, list):  # sentence pairs: [CLS], [SEP], [MASK] after the tokenizer's ids
                from udlc.data.specials import BERT_SPECIALS, texts_vocabulary

                if spec.data.tokenizer == "word":
                    vocab = self.tokenizer(compiled, texts, labels).vocab_size
                    why = f"word tokenizer learned from the training rows of {spec.data.source}, with " \
                          f"{len(BERT_SPECIALS)} special tokens"
                else:
                    vocab, why = texts_vocabulary(spec.data, [t for pair in texts for t in pair], BERT_SPECIALS)
                errors += embedding_errors(graph, "token_types", 2, "sentence pair's two segments (token types 0, 1)")
            elif spec.data.tokenizer_from is not None:  # another spec's vocabulary (udlc.data.tokenizer_from)
                from udlc.data.tokenizer_from import borrowed_vocabulary

                try:
                    vocab, why = borrowed_vocabulary(spec.data, compiled.base_dir)
                except SpecError as e:
                    return [located(e, doc)]
            elif spec.data.tokenizer == "word":
                vocab = self.tokenizer(compiled, texts, labels).vocab_size
                why = f"word tokenizer learned from the training rows of {spec.data.source}"
            else:
                vocab, why = {"byte": (256, "byte tokenizer"), "bpe": (spec.data.vocab_size or DEFAULT_BPE_VOCAB,
                                                                   "bpe tokenizer (data.vocab_size)")}.get(
                spec.data.tokenizer or "byte", (CharTokenizer.fit("\n".join(texts)).vocab_size,  # as training fits it
                                             f"char tokenizer of {spec.data.source}"))
            errors += embedding_errors(graph, "tokens", vocab, why)
        if spec.data.augment:
            from udlc.data.text_augment import text_augment_errors

            known = vocab if check_files and not errors else None
            errors += text_augment_errors(compiled, spec.data.tokenizer or "byte", known, check_files)
        return errors

    def read(self, compiled: Compiled) -> tuple[list[str], list[str]]:
        """The CSV's texts and labels, the labels held to the model's output width."""
        from udlc.data.text import read_text_csv

        spec, graph = compiled.spec, next(iter(compiled.graphs.values()))
        if isinstance(spec.data.text, list):  # sentence pairs: each text a (first, second) pair
            from udlc.data.pairs import read_pair_csv

            texts, labels = read_pair_csv(compiled.base_dir / spec.data.source, spec.data.text, spec.data.target)
        else:
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

        spec = compiled.spec
        try:
            texts, labels = self.read(compiled)
        except SpecError as e:
            raise located(e, compiled.doc) from None
        try:
            cuts = self.split(compiled, list(range(len(texts))), np.random.default_rng(spec.seed), labels)  # rows
        except SpecError as e:
            raise located(e, compiled.doc) from None
        if isinstance(spec.data.text, list):
            return self.load_pairs(compiled, texts, labels, cuts)
        if spec.data.tokenizer_from is not None:  # the ids a network pretrained by that spec learned
            from udlc.data.tokenizer_from import borrowed_tokenizer

            try:
                tokenizer = borrowed_tokenizer(spec.data, compiled.base_dir)
            except SpecError as e:
                raise located(e, compiled.doc) from None
        else:
            tokenizer = self.tokenizer(compiled, texts, labels, cuts["train"])
        classes = sorted(set(labels))
        index = {c: i for i, c in enumerate(classes)}
        limit = self.options.max_tokens

        def encode(text: str) -> Any:
            return tokenizer.encode(text)[:limit]

        rows = {k: [(texts[i], np.int64(index[labels[i]])) for i in idx] for k, idx in cuts.items()}
        augment = self.augmenter(compiled, rows, encode, tokenizer) if spec.data.augment else None
        return Sequences({k: [{"tokens": encode(t), "target": y} for t, y in part] for k, part in rows.items()},
                         classes=classes, tokenizer=tokenizer, augment=augment)

    def load_pairs(self, compiled: Compiled, pairs: list, labels: list[str], cuts: dict) -> Sequences:
        """Sentence pairs as BERT reads them (udlc.data.pairs): ids and token types, the tokenizer fitted on the
        training rows' texts with [CLS], [SEP] and [MASK] after its ids."""
        import numpy as np

        from udlc.data.pairs import encode_pair

        try:
            tokenizer = self.tokenizer(compiled, pairs, labels, cuts["train"])
        except SpecError as e:
            raise located(e, compiled.doc) from None
        index = {c: i for i, c in enumerate(sorted(set(labels)))}

        def sample(i: int) -> dict:
            ids, types = encode_pair(tokenizer, *pairs[i], self.options.max_tokens)
            return {"tokens": ids, "token_types": types, "target": np.int64(index[labels[i]])}

        return Sequences({k: [sample(i) for i in idx] for k, idx in cuts.items()}, classes=sorted(index),
                         tokenizer=tokenizer)

    def tokenizer(self, compiled: Compiled, texts: list, labels: list[str], train: Any = None) -> Any:
        """The data's tokenizer, learned as training learns it: char from every row (so a later text's new
        characters take the unknown id), bpe and word from the training rows (`train`; drawn here for `check`);
        for sentence pairs (each text a pair) with [CLS], [SEP] and [MASK] after its ids (udlc.data.pairs)."""
        import numpy as np

        from udlc.data.specials import BERT_SPECIALS, fit_with_specials
        from udlc.data.text import fit_tokenizer, word_options

        data, pairs = compiled.spec.data, isinstance(compiled.spec.data.text, list)
        if train is None:
            train = self.split(compiled, list(range(len(texts))), np.random.default_rng(compiled.spec.seed),
                               labels)["train"]

        def joined(rows: Any) -> str:
            return "\n".join(t for i in rows for t in (texts[i] if pairs else (texts[i],)))

        if pairs:
            return fit_with_specials(data, joined(train), joined(range(len(texts))), BERT_SPECIALS)
        return fit_tokenizer(data.tokenizer, joined(train), joined(range(len(texts))), data.vocab_size,
                             word_options(data) if data.tokenizer == "word" else None)

    def augmenter(self, compiled: Compiled, rows: dict[str, list], encode: Any, tokenizer: Any) -> Any:
        """The text augmentations of the training rows (udlc.data.text_augment); back-translation's paraphrases
        are added to `rows["train"]` here, once."""
        from udlc.data.text_augment import TextAugmenter, back_translated, mask_id

        augments, base = compiled.spec.data.augment, compiled.base_dir
        paraphrases, cached = back_translated(augments, [t for t, _ in rows["train"]], base)
        rows["train"] += [(p, y) for p, (_, y) in zip(paraphrases, rows["train"])]
        texts, targets = [t for t, _ in rows["train"]], [y for _, y in rows["train"]]
        return TextAugmenter(texts, targets, augments, base, encode, mask_id(augments, tokenizer), cached)

    def batches(self, state: FieldsState, split: str, *, batch_size: int, shuffle: bool, device: Any) -> Any:
        """The shuffled training batches augmented anew each epoch where the spec augments; every other
        split (and the training split read in order, as an evaluation reads it) as written."""
        if split == "train" and shuffle and state.data.augment is not None:
            from udlc.data.text_augment import AugmentedTexts

            return AugmentedTexts(state.data.augment, batch_size, shuffle, device)
        return super().batches(state, split, batch_size=batch_size, shuffle=shuffle, device=device)

    def info(self, compiled: Compiled, state: Any) -> dict[str, Any]:
        graph, tokenizer = compiled.graphs[state.net], state.data.tokenizer
        return {"task": self.name, "classes": state.data.classes, "input_names": state.inputs,
                "input_shapes": [list(s) for s in graph.inputs.values()], "normalization": None,
                "tokenizer": tokenizer.to_json(), "vocab_size": tokenizer.vocab_size,
                "text_column": text_column(compiled.spec.data.text), "max_tokens": self.options.max_tokens,
                **({"back_translation": str(augment.translations)}
                   if (augment := state.data.augment) is not None and augment.translations else {})}

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


def text_column(text: str | list[str]) -> str:
    """The text column as the model file names it: a sentence pair's two as a JSON list (the file's tokenizer, with
    [CLS] and [SEP], says it reads pairs)."""
    import json

    return json.dumps(text) if isinstance(text, list) else text
