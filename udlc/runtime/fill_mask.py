"""Masks filled by an exported masked language model (task masked_language_model), with onnxruntime and numpy: the
file carries its tokenizer (with [MASK] among its special tokens), the mask's literal and its training context.
`udlc generate model.onnx --prompt "import [MASK]"` prints the prompt with each [MASK] replaced by its most
likely token (the tokenizer's own, never a special one); a prompt without a [MASK] is asked for the token after
it, one [MASK] appended."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, damaged, opened
from udlc.runtime.generate import Asked, Reply
from udlc.tasks.served import FILL_MASK


class FillMaskFile:
    serves = (FILL_MASK,)
    reads = "a masked language model"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        from udlc.data.text import tokenizer_from_json

        file = opened(path, device, self)
        self.session, meta = file.session, file.meta
        try:
            self.context, self.mask = int(meta["context"]), meta["mask_token"]
            spec = json.loads(meta["tokenizer"])
        except (KeyError, ValueError) as e:
            raise damaged(file.path, e) from None
        try:
            self.tokenizer = tokenizer_from_json(spec)
        except ImportError:
            raise UdlcError(f"{file.path} uses a BPE tokenizer, which needs the `tokenizers` package: "
                            "pip install tokenizers") from None
        self.inputs = [i.name for i in self.session.get_inputs()]

    def answer(self, prompt: str, asked: Asked) -> Reply:
        """`udlc generate`: the prompt with its masks filled (greedy: --temperature, --top-k and --beam are for
        models that draw tokens one after another)."""
        if asked.beam != 1:
            raise UdlcError("--beam decodes encoder–decoder (seq2seq) models; a masked language model fills its "
                            "masks at once")
        return Reply(self.fill(prompt))

    def probabilities(self, ids: np.ndarray) -> np.ndarray:
        """Each position's token probabilities (T, vocab) for one text's ids; one segment (token type 0)."""
        ids = ids[None].astype(np.int64)
        fields = {"tokens": ids, "tokens_mask": np.ones(ids.shape, bool), "token_types": np.zeros_like(ids)}
        (p,) = self.session.run(["probabilities"], {name: fields[name] for name in self.inputs})
        return p[0]

    def fill(self, prompt: str) -> str:
        if not prompt.strip():
            raise UdlcError(f"the prompt is empty: give a text with {self.mask} where a token is to be filled in")
        if self.mask not in prompt:
            prompt += self.mask
        ids = self.tokenizer.encode(prompt)
        if len(ids) > self.context:
            raise UdlcError(f"the prompt is {len(ids)} tokens; the model was trained on {self.context} at most — "
                            "give a shorter one")
        masked = ids == self.tokenizer.id(self.mask)
        p = self.probabilities(ids)[:, :self.tokenizer.base.vocab_size]  # the text's own tokens, no special one
        ids = np.where(masked, p.argmax(-1), ids)
        return self.tokenizer.decode(ids)
