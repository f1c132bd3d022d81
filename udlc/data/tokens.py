"""What every tokenizer of udlc.data.text and udlc.data.words answers: ids from text and back, its JSON (which
udlc.data.text.tokenizer_from_json rebuilds it from), and the text of a continuation. A module of its own so
that both files build on it without importing each other. Here too: the special tokens a base tokenizer's ids
are followed by (BERT's [MASK], T5's sentinels; fitted in udlc.data.specials)."""

from __future__ import annotations

import re

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class Tokenizer:
    kind: str
    vocab_size: int

    def encode(self, text: str) -> np.ndarray:
        raise NotImplementedError

    def decode(self, ids: Any) -> str:
        raise NotImplementedError

    def to_json(self) -> dict:
        raise NotImplementedError

    def continuation(self, ids: Any) -> str:
        """The text of tokens that follow a prompt: what `udlc generate` appends to it."""
        return self.decode(ids)


class SpecialTokenizer(Tokenizer):
    """`base`'s ids, then one id per special token."""

    def __init__(self, base: Tokenizer, specials: tuple[str, ...]):
        self.base, self.specials = base, tuple(specials)
        self.kind = base.kind
        self.vocab_size = base.vocab_size + len(self.specials)
        self.ids = {s: base.vocab_size + i for i, s in enumerate(self.specials)}
        # longest first: one special's literal may begin another's (<extra_id_1> and <extra_id_10>)
        self.pattern = re.compile("|".join(re.escape(s) for s in sorted(self.specials, key=len, reverse=True)))

    def id(self, special: str) -> int:
        return self.ids[special]

    def encode(self, text: str) -> np.ndarray:
        import numpy as np

        parts, at = [], 0
        for m in self.pattern.finditer(text):
            parts += [self.base.encode(text[at:m.start()]), np.array([self.ids[m.group()]], np.int64)]
            at = m.end()
        parts.append(self.base.encode(text[at:]))
        return np.concatenate([np.asarray(p, np.int64) for p in parts])

    def decode(self, ids: Any) -> str:
        return self._join(ids, self.base.decode)

    def continuation(self, ids: Any) -> str:
        return self._join(ids, self.base.continuation)

    def _join(self, ids: Any, decode: Any) -> str:
        """Runs of base ids decoded together (a character split over byte ids stays whole), specials as their
        literals; an id past the specials (a padded width's) is never made, and stands for nothing."""
        out, run = [], []
        for i in map(int, ids):
            if i < self.base.vocab_size:
                run.append(i)
                continue
            if run:
                out.append(decode(run))
                run = []
            if i < self.vocab_size:
                out.append(self.specials[i - self.base.vocab_size])
        if run:
            out.append(decode(run))
        return "".join(out)

    def to_json(self) -> dict:
        return {"type": "special", "base": self.base.to_json(), "specials": list(self.specials)}
