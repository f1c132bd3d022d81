"""The word tokenizer (`tokenizer: word`), the classic word language model's: the words of the training
split, the most frequent first, after `<unk>` (every other word) and `<eos>` (a line's end). Rebuilt from
its JSON by udlc.data.text.tokenizer_from_json, with numpy alone, where a model file is served."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from udlc.data.tokens import Tokenizer

if TYPE_CHECKING:
    import numpy as np

WORD_SPECIALS = ("<unk>", "<eos>")  # ids 0 and 1: every word the vocabulary lacks, and a line's end
# Named ways to cut a line into words, not a user's regex: the served model cuts every prompt the same way
# (`udlc serve` included), and a pattern with catastrophic backtracking would hang it on a crafted prompt.
# Both run in linear time.
WORD_SPLITS = {"whitespace": None, "punctuation": re.compile(r"\w+|[^\w\s]")}


class WordTokenizer(Tokenizer):
    """The classic word language model's tokenizer: `words` are the vocabulary in id order, `<unk>` and
    `<eos>` first; a line is cut into words (`split`), optionally lowercased, and each line end is `<eos>`."""

    kind = "word"

    def __init__(self, words: list[str], lowercase: bool = False, split: str = "whitespace"):
        if split not in WORD_SPLITS:
            raise ValueError(f"unknown word split {split!r}")
        self.words, self.lowercase, self.split = list(words), lowercase, split
        self.vocab_size = len(self.words)
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def fit(cls, text: str, min_freq: int = 1, max_size: int | None = None, lowercase: bool = False,
            split: str = "whitespace") -> WordTokenizer:
        """The words of `text` seen at least `min_freq` times, the `max_size` most frequent (ties in code-point
        order, so that the same text gives the same ids), after the special tokens."""
        counts = Counter(cls([], lowercase, split).tokens(text))
        for special in WORD_SPECIALS:
            counts.pop(special, None)
        kept = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls([*WORD_SPECIALS, *kept[:max_size]], lowercase, split)

    def tokens(self, text: str) -> list[str]:
        """The words of `text`, with `<eos>` where a line ends."""
        text = text.lower() if self.lowercase else text
        pattern = WORD_SPLITS[self.split]
        out: list[str] = []
        lines = text.split("\n")
        for i, line in enumerate(lines):
            out += line.split() if pattern is None else pattern.findall(line)
            if i < len(lines) - 1:
                out.append("<eos>")
        return out

    def encode(self, text: str) -> np.ndarray:
        import numpy as np

        words = self.tokens(text)
        return np.fromiter((self.index.get(w, 0) for w in words), dtype=np.int64, count=len(words))

    def decode(self, ids: Any) -> str:
        """Words joined by spaces, `<eos>` as a line end (what the text is, up to its spacing)."""
        return self.continuation(ids).removeprefix(" ")

    def continuation(self, ids: Any) -> str:
        """A space before each word that does not begin a line: the words follow a prompt's last word."""
        out = []
        for i in ids:
            word = self.words[int(i)]
            out.append("\n" if word == "<eos>" else word if out and out[-1] == "\n" else " " + word)
        return "".join(out)

    def to_json(self) -> dict:
        return {"type": "word", "words": self.words, "lowercase": self.lowercase, "split": self.split}
