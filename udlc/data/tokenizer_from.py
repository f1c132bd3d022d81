"""`data.tokenizer_from`: a CSV's text column read with the tokenizer another spec learns from its corpus, so that a
network pretrained by that spec (a language model of the same text) reads the rows in the ids it learned. The
tokenizer is learned again from the named spec's data section, as that spec learns it: learning is deterministic,
and BPE's merges are kept on disk (udlc.data.text._learned_bpe), so both runs pay once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from udlc.data.text import checked_vocabulary, fit_tokenizer, read_text, split_text, word_options
from udlc.data.tokens import Tokenizer
from udlc.errors import SpecError


def corpus_tokenizer(data: Any, base_dir: Path) -> Tokenizer:
    """The tokenizer a corpus's `data` section learns, as load_corpus learns it (from its training split), or the
    published one it reads (data.tokenizer_file)."""
    if getattr(data, "tokenizer_file", None):
        from udlc.data.text import BpeTokenizer
        from udlc.data.tokenizer_file import file_tokenizer

        return BpeTokenizer(file_tokenizer(data, base_dir))
    text = read_text(data.source, data.max_chars, base_dir)
    return fit_tokenizer(data.tokenizer, split_text(text, data.split)[0], text, data.vocab_size,
                         word_options(data) if data.tokenizer == "word" else None)


def borrowed_data(data: Any, base_dir: Path) -> tuple[Any, Path]:
    """`data.tokenizer_from`'s spec: its `data` section (validated; its errors point into its own file) and its
    folder. A SpecError at data.tokenizer_from where there is no such spec or it learns no tokenizer of a corpus,
    at data.tokenizer where it learns another kind."""
    from udlc.spec.data import DataSpec
    from udlc.spec.extends import load_spec
    from udlc.spec.sources import SOURCES
    from udlc.spec.validate import validate_model

    path, where = Path(base_dir) / data.tokenizer_from, "data.tokenizer_from"
    if not path.is_file():
        raise SpecError(f"no spec file {data.tokenizer_from} (looked in {Path(base_dir).resolve()})",
                        path=where, hint="name the spec whose tokenizer these rows are read with, relative to this one")
    doc = load_spec(path)
    section = doc.data.get("data") if isinstance(doc.data, dict) else None
    if not isinstance(section, dict):
        raise SpecError(f"{path.name} has no `data:` section to learn a tokenizer from", path=where,
                        hint="name a language model's spec (data: {source: <corpus>, tokenizer: ...})")
    other = validate_model(DataSpec, section, doc, ("data",))
    if other.text is not None or not SOURCES.is_text(other.source):
        raise SpecError(f"{path.name} reads {other.source} as rows, not as a text corpus it learns a tokenizer from",
                        path=where, hint="name a language model's spec (a built-in corpus or a .txt file)")
    if (other.tokenizer or "byte") != data.tokenizer:
        raise SpecError(f"{path.name} learns a {other.tokenizer or 'byte'} tokenizer, not {data.tokenizer}",
                        path="data.tokenizer", hint=f"write `tokenizer: {other.tokenizer or 'byte'}`")
    return other, path.parent


def borrowed_vocabulary(data: Any, base_dir: Path) -> tuple[int, str]:
    """For `udlc check`: the size of `data.tokenizer_from`'s vocabulary, and its description (SpecError as
    borrowed_data's, or where that spec's own vocabulary is refused)."""
    other, base = borrowed_data(data, base_dir)
    size, why = checked_vocabulary(other, base)
    if size is None:
        raise SpecError(f"{data.tokenizer_from}: {why.message}", path="data.tokenizer_from", hint=why.hint)
    return size, f"{why} (data.tokenizer_from: {data.tokenizer_from})"


def borrowed_tokenizer(data: Any, base_dir: Path) -> Tokenizer:
    """`data.tokenizer_from`'s tokenizer, learned as that spec learns it (the same text, split and settings)."""
    return corpus_tokenizer(*borrowed_data(data, base_dir))
