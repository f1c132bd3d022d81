"""Text from an exported language model, with onnxruntime and numpy only (no torch).

The model file carries its tokenizer and its training context (udlc.exporter.onnx writes them into the
metadata), so a prompt is encoded, continued one token at a time and decoded here. Each step runs the
model on the last `context` tokens and samples the next token from the last position's logits: greedy
at temperature 0, else from softmax(logits / temperature), optionally among the top k only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.predict import open_session


@dataclass
class Generated:
    prompt: str
    text: str  # the continuation alone
    tokens: int  # new tokens made
    seconds: float

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else float("inf")


class LanguageModelFile:
    def __init__(self, path: str | Path, device: str = "cpu"):
        from udlc.data.text import tokenizer_from_json

        path = Path(path)
        self.session, meta = open_session(path, device)
        if meta.get("task") != "language_model":
            raise UdlcError(f"{path} is not a language model (its task is {meta.get('task', 'unknown')}): "
                            "`udlc generate` continues text; use `udlc predict` for other models")
        try:
            self.context = int(meta["context"])
            spec = json.loads(meta["tokenizer"])
        except (KeyError, ValueError) as e:
            raise UdlcError(f"{path}: its udlc metadata is damaged ({type(e).__name__}: {e}) — export it again "
                            "with `udlc export RUN_FOLDER`") from None
        try:
            self.tokenizer = tokenizer_from_json(spec)
        except ImportError:
            raise UdlcError(f"{path} uses a BPE tokenizer, which needs the `tokenizers` package: "
                            "pip install tokenizers") from None
        self.input_name = self.session.get_inputs()[0].name

    def next_logits(self, ids: list[int]) -> np.ndarray:
        window = np.asarray([ids[-self.context:]], dtype=np.int64)
        (logits,) = self.session.run(["logits"], {self.input_name: window})
        return logits[0, -1].astype(np.float64)

    def generate(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0) -> Generated:
        if not prompt:
            raise UdlcError("the prompt is empty: a model continues text, so give it some (--prompt TEXT)")
        try:
            ids = self.tokenizer.encode(prompt).tolist()
        except ValueError as e:
            raise UdlcError(f"the prompt cannot be encoded: {e}") from None
        rng = np.random.default_rng(seed)
        start, made = time.perf_counter(), []
        for _ in range(max_new_tokens):
            token = pick(self.next_logits(ids + made), temperature, top_k, rng)
            made.append(token)
        seconds = time.perf_counter() - start
        return Generated(prompt, self.tokenizer.decode(made), len(made), seconds)


def pick(logits: np.ndarray, temperature: float, top_k: int | None, rng: np.random.Generator) -> int:
    """The next token: the most likely at temperature 0, else drawn from the tempered (top-k) distribution."""
    if temperature == 0:
        return int(np.argmax(logits))
    if top_k is not None and top_k < len(logits):
        cutoff = np.partition(logits, -top_k)[-top_k]
        logits = np.where(logits >= cutoff, logits, -np.inf)
    z = logits / temperature
    p = np.exp(z - z.max())
    return int(rng.choice(len(p), p=p / p.sum()))
