"""What every tokenizer of udlc.data.text and udlc.data.words answers: ids from text and back, its JSON (which
udlc.data.text.tokenizer_from_json rebuilds it from), and the text of a continuation. A module of its own so
that both files build on it without importing each other."""

from __future__ import annotations

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
