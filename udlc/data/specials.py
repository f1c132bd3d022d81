"""Special tokens after a tokenizer's own ids: BERT's [CLS], [SEP] and [MASK], a seq2seq's <bos> and <eos>, T5's
sentinels <extra_id_N>. The tokenizer (udlc.data.tokens.SpecialTokenizer) wraps another rather than changing each:
byte, char, bpe and word keep their ids (a byte is still its id), and the specials take the ids after them, in
the order given, so one rule holds for every base. T5 puts its sentinels last, <extra_id_0> on the very last id,
and so does SPAN_SPECIALS here.

A text that holds a special's literal (`[MASK]` in a fill-mask prompt) encodes it as the special's id, as BERT's
and T5's tokenizers do; the pieces between are the base's. Its JSON names the base's, so a model file carries
both and `udlc.data.text.tokenizer_from_json` rebuilds it with numpy alone.

With `tokenizer: bpe` the specials share `vocab_size`: BPE learns `vocab_size` less the specials, so that the
network's width written in the spec is the whole vocabulary (GPT-2's and BERT's widths hold their specials too).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from udlc.data.tokens import SpecialTokenizer
from udlc.errors import SpecError

BERT_SPECIALS = ("[CLS]", "[SEP]", "[MASK]")  # a masked language model's and a sentence pair's
SEQ2SEQ_SPECIALS = ("<bos>", "<eos>")  # a text-to-text model's decoder start and end
SENTINELS = 100  # T5's extra_ids: the most noise spans a span-corrupted text may have
SPAN_SPECIALS = SEQ2SEQ_SPECIALS + tuple(f"<extra_id_{i}>" for i in reversed(range(SENTINELS)))


def fit_with_specials(data: Any, train_text: str, whole_text: str, specials: tuple[str, ...]) -> SpecialTokenizer:
    """The `data` section's tokenizer fitted as udlc.data.text.fit_tokenizer fits it, with room for the specials in
    a BPE's vocab_size; a BPE that cannot learn its share is refused (unless padded), naming the size it can."""
    from udlc.data.text import DEFAULT_BPE_VOCAB, fit_tokenizer, word_options

    asked = data.vocab_size or DEFAULT_BPE_VOCAB
    room = asked - len(specials)
    if data.tokenizer == "bpe" and room < 257:  # byte-level BPE starts from the 256 bytes
        raise SpecError(f"vocab_size {asked} leaves {room} ids beside the {len(specials)} special tokens; byte-level "
                        "BPE needs at least 257", path="data.vocab_size" if data.vocab_size else "data.tokenizer",
                        hint=f"vocab_size: {257 + len(specials)} or more")
    base = fit_tokenizer(data.tokenizer, train_text, whole_text, room if data.tokenizer == "bpe" else None,
                         word_options(data) if data.tokenizer == "word" else None)
    tok = SpecialTokenizer(base, specials)
    if data.tokenizer == "bpe" and tok.vocab_size < asked and not data.pad_vocab:
        n = tok.vocab_size
        raise SpecError(f"BPE learns {base.vocab_size} tokens from the training text, which with the "
                        f"{len(specials)} special tokens make {n}, fewer than vocab_size {asked}: the text has no more "
                        "pairs to merge", path="data.vocab_size" if data.vocab_size else "data.tokenizer",
                        hint=f"write `vocab_size: {n}` and size the embedding and the output to {n} (or give more "
                             "text; or `pad_vocab: true` where pretrained weights fix the width)")
    return tok


def width(data: Any, tok: SpecialTokenizer) -> int:
    """The network's vocabulary width for `tok`: a padded BPE's vocab_size, else the tokenizer's own."""
    from udlc.data.text import DEFAULT_BPE_VOCAB

    if data.tokenizer == "bpe" and data.pad_vocab:
        return max(tok.vocab_size, data.vocab_size or DEFAULT_BPE_VOCAB)
    return tok.vocab_size


def corpus_vocabulary(data: Any, base_dir: Path, specials: tuple[str, ...]) -> tuple[int | None, Any]:
    """For `udlc check`: a text source's vocabulary with the specials as training will fit it (and its
    description), or None and the SpecError. A padded BPE is as wide as asked, learned or not."""
    from udlc.data.text import DEFAULT_BPE_VOCAB, read_text, split_text

    if data.tokenizer == "bpe" and data.pad_vocab:
        asked = data.vocab_size or DEFAULT_BPE_VOCAB
        return asked, f"bpe tokenizer padded to vocab_size {asked} (pad_vocab), its special tokens included"
    try:
        text = read_text(data.source, data.max_chars, base_dir)
        tok = fit_with_specials(data, split_text(text, data.split)[0], text, specials)
    except SpecError as e:
        return None, e
    return tok.vocab_size, (f"{data.tokenizer or 'byte'} tokenizer of {data.source} with "
                            f"{len(specials)} special tokens")


def texts_vocabulary(data: Any, texts: list[str], specials: tuple[str, ...]) -> tuple[int, str]:
    """For `udlc check`: the vocabulary with the specials of a CSV's text columns (a BPE's asked size: learning it
    is the run's), and its description."""
    from udlc.data.text import DEFAULT_BPE_VOCAB, CharTokenizer

    kind = data.tokenizer or "byte"
    if kind == "bpe":
        return data.vocab_size or DEFAULT_BPE_VOCAB, "bpe tokenizer (data.vocab_size, special tokens included)"
    base = 256 if kind == "byte" else CharTokenizer.fit("\n".join(texts)).vocab_size
    return base + len(specials), f"{kind} tokenizer of {data.source} with {len(specials)} special tokens"


def load_special_corpus(data: Any, base_dir: Path, specials: tuple[str, ...]) -> Any:
    """The `data` section's text, split as a language model's (udlc.data.text.load_text_data) and tokenized with
    the specials after the base's ids: a TextData whose tokenizer is a SpecialTokenizer."""
    from udlc.data.text import TextData, read_text, split_text

    text = read_text(data.source, data.max_chars, base_dir)
    parts = dict(zip(("train", "val", "test"), split_text(text, data.split)))
    tok = fit_with_specials(data, parts["train"], text, specials)
    return TextData(tok, {k: tok.encode(v) for k, v in parts.items()},
                    {k: len(v.encode("utf-8")) for k, v in parts.items()})
