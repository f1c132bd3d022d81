"""Text augmentation for a text column (task sequence_classification): where the configs of
udlc.spec.text_augments meet the training split.

Where: the classifier tokenizes each row once, before training (udlc.tasks.sequence_classification). The word
operations need words, and none of the CSV tokenizers (byte, char, bpe) has word tokens to work on, so the hook
is on the raw text: each epoch the training rows' texts are augmented, then tokenized again with the tokenizer
fitted before (re-tokenizing a few thousand rows is milliseconds), then token_mask works on the ids. The
tokenizer is fitted on the rows as written, so the vocabulary `check` counts is the one trained: a character
only a synonym or a translation brings takes the char tokenizer's unknown id.

Randomness: each epoch draws one seed from the run's generator (which the checkpoints keep) and a numpy
Generator from it does the rest, so a resumed run draws the same augmentations; the epoch's order is then
drawn from the run's generator as for any padded batches. Validation, test, `udlc predict` and the export see
the rows as written: only the shuffled training batches are augmented.

back_translation runs once, when the data is loaded: one paraphrase per training row, added to the training
rows with its row's label, cached on disk by a hash of everything that makes it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Callable

from udlc.errors import SpecError
from udlc.spec.augments import AUGMENTS
from udlc.spec.text_augments import WORD_AUGMENTS

TEXT_NAMES = "random_swap, random_deletion, random_insertion, synonym_replacement, token_mask, back_translation"


class TextAugmenter:
    """The training rows' texts and targets, and the augmentations to draw for them each epoch."""

    def __init__(self, texts: list[str], targets: list[Any], augments: list, base_dir: Path,
                 encode: Callable[[str], Any], mask_id: int | None, translations: Path | None = None):
        from udlc.data.synonyms import read_synonyms
        from udlc.objectives.text_augments import TEXT_APPLY

        self.texts, self.targets, self.encode, self.mask_id = texts, targets, encode, mask_id
        self.translations = translations  # the file caching back-translation's rows (the run's info names it)
        self.words: list[tuple[Any, Callable[..., Any], dict]] = []  # (config, operation, synonyms)
        self.masks = [aug for aug in augments if aug.type == "token_mask"]
        for i, aug in enumerate(augments):
            if aug.type in WORD_AUGMENTS:
                file = getattr(aug, "synonyms", None)
                synonyms = read_synonyms(base_dir / file, f"data.augment[{i}]") if file else {}
                self.words.append((aug, TEXT_APPLY[aug.type], synonyms))
        self.mask = TEXT_APPLY["token_mask"]

    def __len__(self) -> int:
        return len(self.texts)

    def text(self, text: str, rng: Any) -> str:
        """One row's text with the word augmentations applied in the spec's order (each to its share of rows)."""
        words, changed = text.split(), False
        for aug, operation, synonyms in self.words:
            if aug.rows < 1 and rng.random() >= aug.rows:
                continue
            words, changed = operation(words, aug, rng, synonyms), True
        return " ".join(words) if changed else text

    def samples(self, rng: Any) -> list[dict]:
        """The epoch's training samples: each row augmented, tokenized, its ids masked."""
        out = []
        for text, target in zip(self.texts, self.targets):
            ids = self.encode(self.text(text, rng))
            for aug in self.masks:
                ids = self.mask(ids, aug, rng, self.mask_id)
            out.append({"tokens": ids, "target": target})
        return out


class AugmentedTexts:
    """The training split's batches, augmented anew each epoch: udlc.data.collate.PaddedBatches' protocol (len,
    epoch_batches) over the epoch's samples."""

    def __init__(self, augmenter: TextAugmenter, batch_size: int, shuffle: bool, device: Any = "cpu"):
        self.augmenter, self.batch_size, self.shuffle, self.device = augmenter, batch_size, shuffle, device

    def __len__(self) -> int:
        return -(-len(self.augmenter) // self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Any:
        import numpy as np
        import torch

        from udlc.data.collate import PaddedBatches

        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        samples = self.augmenter.samples(np.random.default_rng(seed))
        yield from PaddedBatches(samples, self.batch_size, self.shuffle, self.device).epoch_batches(generator)


def mask_id(augments: list, tokenizer: Any) -> int | None:
    """The id token_mask writes: the spec's `id`, else the char tokenizer's unknown id (its last); check has
    refused token_mask without `id` for every other tokenizer."""
    for aug in augments:
        if aug.type == "token_mask":
            return aug.id if aug.id is not None else tokenizer.vocab_size - 1
    return None


# ---- back-translation, once before training --------------------------------------------------------------


def back_translated(augments: list, texts: list[str], base_dir: Path) -> tuple[list[str], Path | None]:
    """The paraphrase of each training text by the spec's back_translation (none without one), and the file that
    caches them: made once, then read again by any run with the same models, settings and rows."""
    from udlc.data.text import cache_folder
    from udlc.objectives.text_augments import TEXT_APPLY

    aug = next((a for a in augments if a.type == "back_translation"), None)
    if aug is None:
        return [], None
    key = _translation_key(aug, texts, base_dir)
    cached = cache_folder() / "back-translation" / f"{key}.json"
    try:
        rows = json.loads(cached.read_text(encoding="utf-8"))
        if isinstance(rows, list) and len(rows) == len(texts) and all(isinstance(r, str) for r in rows):
            return rows, cached
    except (OSError, ValueError):  # none yet, or a broken one: translate again
        pass
    try:
        rows = TEXT_APPLY["back_translation"](texts, aug, base_dir)
    except ImportError as e:
        raise SpecError(f"back_translation needs the `transformers` package ({e})", path="data.augment",
                        hint="pip install transformers sentencepiece") from None
    cached.parent.mkdir(parents=True, exist_ok=True)
    part = cached.with_name(f".{cached.name}.{os.getpid()}")
    part.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    os.replace(part, cached)  # whole or not at all, whoever else writes it
    return rows, cached


def _translation_key(aug: Any, texts: list[str], base_dir: Path) -> str:
    """A hash of the models' files, the settings, the transformers version and the rows."""
    import transformers

    h = hashlib.sha256(json.dumps([aug.model_dump(exclude={"model", "back"}), transformers.__version__]).encode())
    for folder in (aug.model, aug.back):
        if folder is None:
            continue
        for file in sorted(p for p in (base_dir / folder).rglob("*") if p.is_file()):
            h.update(file.name.encode() + b"\0")
            with open(file, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    for text in texts:
        h.update(text.encode() + b"\0")
    return h.hexdigest()[:32]


# ---- check time: plain Python ----------------------------------------------------------------------------


def text_augment_errors(compiled: Any, tokenizer: str, vocab: int | None, check_files: bool) -> list[SpecError]:
    """Each of a text classifier's augmentations where it does not fit, at its line: one that is not a text's,
    a synonyms file missing or malformed, a mask id the tokenizer lacks, a translation model that is not there."""
    from udlc.data.synonyms import read_synonyms

    spec, doc = compiled.spec, compiled.doc
    errors = []
    translations = 0
    for i, aug in enumerate(spec.data.augment):
        where, span = f"data.augment[{i}]", doc.span(("data", "augment", i))

        def refuse(message: str, hint: str | None = None) -> None:
            errors.append(SpecError(message, path=where, span=span, hint=hint))

        if not AUGMENTS[aug.type].text_only:
            refuse(f"'{aug.type}' changes pictures or numeric samples, and a text classifier reads token ids",
                   f"use a text augmentation: {TEXT_NAMES}")
        elif aug.type in ("random_insertion", "synonym_replacement") and check_files:
            try:
                read_synonyms(compiled.base_dir / aug.synonyms, where)
            except SpecError as e:
                e.span = span
                errors.append(e)
        elif aug.type == "token_mask":
            if aug.id is None and (tokenizer != "char" or spec.data.tokenizer_from is not None):
                which = (f"the {tokenizer} tokenizer" if spec.data.tokenizer_from is None
                         else "a borrowed tokenizer (tokenizer_from)")
                refuse(f"{which} has no unknown id for token_mask to write",
                       "give the mask's id: `token_mask: {p: 0.1, id: 0}`")
            elif aug.id is not None and vocab is not None and aug.id >= vocab:
                refuse(f"token_mask id {aug.id} is past the vocabulary ({vocab} ids)", f"use an id below {vocab}")
        elif aug.type == "back_translation":
            translations += 1
            if translations > 1:
                refuse("back_translation is given twice; it adds one paraphrase per row", "keep one")
            elif importlib.util.find_spec("transformers") is None:
                refuse("back_translation needs the `transformers` package", "pip install transformers sentencepiece")
            elif check_files:
                for folder in (aug.model, aug.back):
                    problem = _model_problem(compiled.base_dir, folder) if folder is not None else None
                    if problem:
                        refuse(problem, "give a folder written by a Hugging Face model's save_pretrained (its "
                                        "config.json, weights and tokenizer), relative to the spec")
    return errors


def _model_problem(base_dir: Path, folder: str) -> str | None:
    path = base_dir / folder
    config = path / "config.json"
    if not path.is_dir():
        return f"no model folder {folder} (looked in {Path(base_dir).resolve()})"
    if not config.is_file():
        return f"{folder} has no config.json: not a Hugging Face model folder"
    try:
        seq2seq = json.loads(config.read_text(encoding="utf-8")).get("is_encoder_decoder")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return f"{folder}/config.json is not a JSON mapping"
    if not seq2seq:
        return f"{folder} holds no seq2seq (encoder-decoder) model, which translation needs (Marian, T5, BART, ...)"
    return None
