"""Text for language models: read a corpus, turn it into token ids and back, cut it into windows.

Four tokenizers, each a plain-JSON description so that a run folder and an ONNX file carry it and
`udlc generate` rebuilds it with numpy alone (BPE also needs the `tokenizers` package):

    byte  the UTF-8 bytes, 256 ids: any text, nothing learned; bits per byte is the loss in bits
    char  the distinct characters of the corpus, in code-point order, then one id for a character it never
          held (a prompt's or a new text's), which decodes as U+FFFD
    bpe   byte-level BPE (Hugging Face `tokenizers`) trained on the training split only; a vocab_size the
          split cannot fill (no pairs left to merge) is refused, naming the size it can learn
    word  the classic word language model's: words of the training split (split at whitespace, or words and
          punctuation apart), the most frequent first, `<unk>` for every other word and `<eos>` at each line
          end; decoded as words joined by spaces

A corpus is split into train, validation and test as contiguous stretches in that order (windows
overlapping a boundary would let a model see its test text in training), then each stretch is cut into
non-overlapping windows of `context + 1` tokens: the first `context` are the input, the last `context`
(shifted by one) the next-token targets. Each training window is moved by an offset drawn anew each
epoch, so a text's every position meets every position of the window (with fixed cuts, a text whose
period shares a factor with the context would only ever be seen in some phases).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from udlc.data.tokens import Tokenizer
from udlc.errors import SpecError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BPE_VOCAB = 1024


def read_text(source: str, max_chars: int | None, base_dir: Path) -> str:
    """The text `data.source` names: a built-in corpus or a UTF-8 file; its first `max_chars` characters."""
    from udlc.data.builtin_sets import generator
    from udlc.spec.sources import SOURCES, TextSet

    entry = SOURCES.find(source)
    if isinstance(entry, TextSet):
        text = generator(entry.name)()
    else:
        path = Path(base_dir) / source
        if not path.is_file():
            raise SpecError(f"no file {source} (looked in {Path(base_dir).resolve()})", path="data.source",
                            hint="paths are relative to the spec's folder")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise SpecError(f"{path.name} is not UTF-8 text (byte {e.start} cannot be decoded)", path="data.source",
                            hint="save it as UTF-8") from None
    text = text[:max_chars] if max_chars else text
    if not text:
        raise SpecError(f"{source} holds no text", path="data.source")
    return text


class ByteTokenizer(Tokenizer):
    kind, vocab_size = "byte", 256

    def encode(self, text: str) -> np.ndarray:
        import numpy as np  # here, not at the top: `udlc check` reads vocabularies without numpy

        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Any) -> str:
        # a sampled model may write invalid UTF-8 (half a character): show it as U+FFFD, do not fail
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")

    def to_json(self) -> dict:
        return {"type": "byte"}


UNKNOWN_CHAR = "\ufffd"  # what the unknown id decodes to: Unicode's replacement character


class CharTokenizer(Tokenizer):
    """`unknown`: the id after the characters stands for every other character. Files exported before it
    existed have none (their JSON says nothing of it): for them an unseen character stays an error."""

    kind = "char"

    def __init__(self, chars: str, unknown: bool = False):
        self.chars, self.unknown = chars, unknown
        self.vocab_size = len(chars) + unknown
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def fit(cls, text: str) -> CharTokenizer:
        return cls("".join(sorted(set(text))), unknown=True)

    def encode(self, text: str) -> np.ndarray:
        if not self.unknown:
            unseen = sorted(set(text) - self.index.keys())
            if unseen:
                raise ValueError(f"characters the tokenizer has never seen: {''.join(unseen[:20])!r}")
        other = len(self.chars)  # the unknown id
        import numpy as np

        return np.fromiter((self.index.get(c, other) for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids: Any) -> str:
        return "".join(self.chars[int(i)] if int(i) < len(self.chars) else UNKNOWN_CHAR for i in ids)

    def to_json(self) -> dict:
        return {"type": "char", "chars": self.chars, **({"unknown": True} if self.unknown else {})}


class BpeTokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        # the ids' range, not their count: a published tokenizer.json (data.tokenizer_file) may leave ids unused
        self.vocab_size = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    @classmethod
    def fit(cls, text: str, vocab_size: int) -> BpeTokenizer:
        return cls(_learned_bpe(text, vocab_size))

    def encode(self, text: str) -> np.ndarray:
        ids = [i for chunk in _chunks(text) for i in self.tokenizer.encode(chunk).ids]
        import numpy as np

        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids: Any) -> str:
        return self.tokenizer.decode([int(i) for i in ids])

    def to_json(self) -> dict:
        return {"type": "bpe", "tokenizer": json.loads(self.tokenizer.to_str())}


@functools.lru_cache(maxsize=4)
def _learned_bpe(text: str, vocab_size: int) -> Any:
    """BPE's merges learned from `text`, kept: `udlc train` learns them once for its check and its run, and they are
    kept on disk (the user's cache folder, keyed by the text, the size and the tokenizers version: learning is
    deterministic), so that `udlc check` does not learn a corpus again on every run."""
    import tokenizers
    from tokenizers import Tokenizer as HF

    key = hashlib.sha256(f"{vocab_size}\0{tokenizers.__version__}\0".encode() + text.encode()).hexdigest()[:32]
    cached = cache_folder() / f"bpe-{key}.json"
    try:
        return HF.from_str(cached.read_text(encoding="utf-8"))
    except Exception:  # none yet, or unreadable (tokenizers raises its own error for a broken file): learn again
        pass
    tok = _learn_bpe(text, vocab_size)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_name(f".{cached.name}.{os.getpid()}")
        part.write_text(tok.to_str(), encoding="utf-8")
        os.replace(part, cached)  # whole or not at all, whoever else writes it
    except OSError:  # a read-only home: learning each time is only slower
        pass
    return tok


def cache_folder() -> Path:
    """Where udlc keeps what it can learn again (XDG_CACHE_HOME, else ~/.cache, then udlc/)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "udlc"


def _learn_bpe(text: str, vocab_size: int) -> Any:
    from tokenizers import Tokenizer as HF, decoders, models, pre_tokenizers, trainers

    tok = HF(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    # every byte is in the initial alphabet, so any text encodes, whatever the training text held
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_chunks(text), trainer=trainer)
    return tok


def _chunks(text: str, size: int = 1 << 16) -> list[str]:
    """Lines grouped into pieces of about `size` characters: the tokenizer's batches; no piece splits a line."""
    pieces, current, n = [], [], 0
    for line in text.splitlines(keepends=True):
        current.append(line)
        n += len(line)
        if n >= size:
            pieces.append("".join(current))
            current, n = [], 0
    if current:
        pieces.append("".join(current))
    return pieces


def fit_tokenizer(kind: str | None, train_text: str, whole_text: str, vocab_size: int | None,
                  words: dict | None = None) -> Tokenizer:
    """byte needs nothing; char takes every character of the corpus (so that the vocabulary `check` counts
    from the whole text is the one trained; a later text's new characters take the unknown id); bpe learns
    its merges, and word its words (`words`: WordTokenizer.fit's options), from the training split alone."""
    if kind in (None, "byte"):
        return ByteTokenizer()
    if kind == "char":
        return CharTokenizer.fit(whole_text)
    if kind == "word":
        from udlc.data.words import WordTokenizer

        return WordTokenizer.fit(train_text, **(words or {}))
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        raise SpecError("tokenizer: bpe needs the `tokenizers` package", path="data.tokenizer",
                        hint="pip install tokenizers, or use tokenizer: byte or char") from None
    return BpeTokenizer.fit(train_text, vocab_size or DEFAULT_BPE_VOCAB)


def tokenizer_from_json(d: dict) -> Tokenizer:
    if d["type"] == "byte":
        return ByteTokenizer()
    if d["type"] == "char":
        return CharTokenizer(d["chars"], unknown=bool(d.get("unknown", False)))
    if d["type"] == "bpe":
        from tokenizers import Tokenizer as HF

        return BpeTokenizer(HF.from_str(json.dumps(d["tokenizer"])))
    if d["type"] == "word":
        from udlc.data.words import WordTokenizer

        return WordTokenizer(d["words"], lowercase=bool(d["lowercase"]), split=d["split"])
    if d["type"] == "special":  # a base tokenizer's ids, then [MASK], <eos>, ... (udlc.data.specials)
        from udlc.data.tokens import SpecialTokenizer

        return SpecialTokenizer(tokenizer_from_json(d["base"]), tuple(d["specials"]))
    raise ValueError(f"unknown tokenizer {d['type']!r}")


def split_text(text: str, fractions: list[float]) -> tuple[str, str, str]:
    """Contiguous train, validation and test stretches, cut at line ends near the fractions."""
    cuts, start = [], 0
    for f in (fractions[0], fractions[0] + fractions[1]):
        at = int(len(text) * f)
        newline = text.find("\n", at)
        at = newline + 1 if 0 <= newline < at + 1000 else at  # a line end close by, else where it falls
        cuts.append(max(at, start))
        start = cuts[-1]
    return text[:cuts[0]], text[cuts[0]:cuts[1]], text[cuts[1]:]


class WindowBatches:
    """A split's windows as batches of {input name: ids, "target": next ids}, the split on the device.
    Shuffled, each epoch draws its windows' offsets and order from the generator; every epoch has the same
    number of windows (those that fit at any offset), so the schedule's steps per epoch hold."""

    def __init__(self, ids: np.ndarray, context: int, name: str, split: str, batch_size: int, shuffle: bool,
                 device: Any = "cpu"):
        import torch

        self.ids = torch.as_tensor(ids).to(device)
        self.context, self.name, self.split = context, name, split
        self.batch_size, self.shuffle = batch_size, shuffle
        self.n = max(len(ids) - 1 - (context - 1 if shuffle else 0), 0) // context
        self.positions = torch.arange(context, device=device)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def epoch_batches(self, generator: Any = None) -> Any:
        import torch

        from udlc.data.batches import epoch_order

        starts = torch.arange(self.n) * self.context
        if self.shuffle:  # each window moved by its own offset: every phase of the text at every position
            starts += torch.randint(self.context, (self.n,), generator=generator, device=generator.device).cpu()
        starts = starts.to(self.ids.device)
        order = epoch_order(self.n, self.shuffle, generator).to(self.ids.device)
        for start in range(0, self.n, self.batch_size):
            at = starts[order[start:start + self.batch_size]][:, None] + self.positions
            yield {self.name: self.ids[at], "target": self.ids[at + 1]}


@dataclass
class TextData:
    """A tokenized corpus, split; what the language_model task trains and evaluates on."""

    tokenizer: Tokenizer
    ids: dict[str, np.ndarray]  # split -> token ids
    bytes: dict[str, int]  # split -> UTF-8 bytes of its text, for bits per byte

    def windows(self, split: str, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, targets), each (n, context): non-overlapping windows, the targets shifted by one."""
        ids = self.ids[split]
        n = max(len(ids) - 1, 0) // context
        return ids[:n * context].reshape(n, context), ids[1:n * context + 1].reshape(n, context)


def word_options(data: Any) -> dict:
    """WordTokenizer.fit's options from the `data` section."""
    return {"min_freq": data.min_freq or 1, "max_size": data.max_size, "lowercase": bool(data.lowercase),
            "split": data.word_split or "whitespace"}


def bpe_shortfall(tok: Tokenizer, vocab_size: int | None, pad: bool = False) -> SpecError | None:
    """BPE's vocab_size is the size it stops at, not one it reaches: a training split with no pairs left to
    merge learns fewer. The network's embedding rows and output width are written in the spec, so the
    difference would be outputs no token ever takes (a softmax over ids that cannot occur): refused, with
    the size this text gives — unless the spec pads (`pad_vocab: true`, for a width fixed by pretrained
    weights), where the unlearned ids are never targets and `udlc generate` never draws them."""
    asked = vocab_size or DEFAULT_BPE_VOCAB
    if not isinstance(tok, BpeTokenizer) or tok.vocab_size >= asked or pad:
        return None
    n = tok.vocab_size
    said = f"vocab_size {asked}" if vocab_size else f"the default vocab_size {asked}"
    return SpecError(f"BPE learns {n} tokens from the training split, fewer than {said}: the text has no more "
                     "pairs to merge", path="data.vocab_size" if vocab_size else "data.tokenizer",
                     hint=f"write `vocab_size: {n}` and size the embedding and the output to {n} (or give more text; "
                          "or `pad_vocab: true` where pretrained weights fix the width)")


def checked_vocabulary(data: Any, base_dir: Path) -> tuple[int | None, Any]:
    """For `udlc check`: the size of a word or BPE vocabulary as training will learn it (from the training
    split, as training does: without numpy, and learned once per process, so `udlc train` pays once), and
    its description; or None and the SpecError. A padded BPE is as wide as asked, whatever it learns: nothing
    to learn here (the zoo's GPT-2 checks without learning 4.7 MB of merges)."""
    if getattr(data, "tokenizer_file", None) is not None:  # a published tokenizer: nothing learned, its size read
        from udlc.data.tokenizer_file import file_vocabulary

        return file_vocabulary(data, base_dir)
    if data.tokenizer == "bpe" and data.pad_vocab:
        asked = data.vocab_size or DEFAULT_BPE_VOCAB
        return asked, f"bpe tokenizer padded to vocab_size {asked} (pad_vocab)"
    try:
        text = read_text(data.source, data.max_chars, base_dir)
        tok = fit_tokenizer(data.tokenizer, split_text(text, data.split)[0], text, data.vocab_size,
                            word_options(data) if data.tokenizer == "word" else None)
    except SpecError as e:
        return None, e
    shortfall = bpe_shortfall(tok, data.vocab_size)
    if shortfall is not None:
        return None, shortfall
    return tok.vocab_size, f"{data.tokenizer} tokenizer learned from the training split of {data.source}"


def load_corpus(data: Any, base_dir: Path) -> TextData:
    """The `data` section's corpus, split and tokenized (load_text_data with the section's options)."""
    given = None
    if getattr(data, "tokenizer_file", None) is not None:  # a published tokenizer, read: nothing learned
        from udlc.data.tokenizer_file import file_tokenizer

        given = BpeTokenizer(file_tokenizer(data, base_dir))
    return load_text_data(data.source, data.max_chars, data.tokenizer, data.vocab_size, data.split, base_dir,
                          word_options(data) if data.tokenizer == "word" else None, bool(data.pad_vocab), given)


def load_text_data(source: str, max_chars: int | None, tokenizer: str | None, vocab_size: int | None,
                   fractions: list[float], base_dir: Path, words: dict | None = None, pad: bool = False,
                   given: Tokenizer | None = None) -> TextData:
    """`given`: a tokenizer to read the text with (data.tokenizer_file's), where none is learned."""
    text = read_text(source, max_chars, base_dir)
    parts = dict(zip(("train", "val", "test"), split_text(text, fractions)))
    tok = given or fit_tokenizer(tokenizer, parts["train"], text, vocab_size, words)
    shortfall = None if given else bpe_shortfall(tok, vocab_size, pad)
    if shortfall is not None:
        raise shortfall
    return TextData(tok, {k: tok.encode(v) for k, v in parts.items()},
                    {k: len(v.encode("utf-8")) for k, v in parts.items()})


def read_text_csv(path: Path, text: str, target: str | int | None) -> tuple[list[str], list[str]]:
    """A CSV's text column and its label column (by name; the target defaults to the last column). A
    missing column or an empty cell is a SpecError naming the column, or the file's line."""
    from udlc.data.csv_table import csv_table
    from udlc.errors import did_you_mean

    header, body = csv_table(path)
    columns = []
    for key, name in (("text", text), ("target", header[-1] if target is None else target)):
        if isinstance(name, int) or name not in header:
            raise SpecError(f"{path.name} has no column '{name}'", path=f"data.{key}",
                            hint=did_you_mean(str(name), header) or f"its columns: {', '.join(header)}")
        columns.append(header.index(name))
    texts, labels = [], []
    for line, row in body:
        cells = [row[c] if c < len(row) else "" for c in columns]
        for cell, name in zip(cells, (text, header[columns[1]])):
            if not cell.strip():
                raise SpecError(f"{path.name} line {line}: column '{name}' is empty", path="data.source",
                                hint="fill it in, or drop the row")
        texts.append(cells[0])
        labels.append(cells[1].strip())
    return texts, labels
