"""Text from an exported language model, with onnxruntime and numpy only (no torch).

The model file carries its tokenizer and its training context (udlc.exporter.onnx writes them into the
metadata), so a prompt is encoded, continued one token at a time (`LanguageModelFile.tokens`, the iterator
`udlc generate` and `udlc serve`'s stream both consume) and decoded here. Each step runs the
model on the last `context` tokens, or, where the file carries a key/value cache (udlc.exporter.decoding),
on the one new token after the cached ones; the next token is drawn from the last position's logits:
greedy at temperature 0, else from softmax(logits / temperature), optionally among the top k only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from udlc.errors import UdlcError
from udlc.runtime.files import Opened, damaged, opened
from udlc.tasks.served import DECODED_TEXT, NEXT_TOKEN, TOKEN_LABELS


@dataclass(frozen=True)
class Asked:
    """What `udlc generate` was asked, for whichever reader the file has: a language model samples (or is
    greedy at temperature 0), an encoder–decoder searches `beam` hypotheses, a token labeller labels."""

    max_new_tokens: int = 200
    temperature: float = 1.0
    top_k: int | None = None
    seed: int = 0
    beam: int = 1
    use_cache: bool = True


@dataclass(frozen=True)
class Reply:
    text: str  # what the command prints
    stats: str | None = None  # how fast, for --stats


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
    serves = (NEXT_TOKEN,)
    reads = "a language model"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        from udlc.data.text import tokenizer_from_json

        file = opened(path, device, self)
        path, self.session, meta = file.path, file.session, file.meta
        try:
            self.context = int(meta["context"])
            spec = json.loads(meta["tokenizer"])
        except (KeyError, ValueError) as e:
            raise damaged(path, e) from None
        try:
            self.tokenizer = tokenizer_from_json(spec)
        except ImportError:
            raise UdlcError(f"{path} uses a BPE tokenizer, which needs the `tokenizers` package: "
                            "pip install tokenizers") from None
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        # Files with a cache take each attention layer's past keys and values: (batch, kv_heads, P, head_dim).
        self.past = {i.name: i.shape for i in inputs[1:]}
        self.cached = bool(self.past)

    def answer(self, prompt: str, asked: Asked) -> Reply:
        """`udlc generate`: the prompt and its continuation."""
        self._check(asked)
        out = self.generate(prompt, asked.max_new_tokens, asked.temperature, asked.top_k, asked.seed,
                            use_cache=asked.use_cache)
        return Reply(out.prompt + out.text,
                     f"{out.tokens} tokens in {out.seconds:.2f}s: {out.tokens_per_second:.1f} tokens/s")

    def stream(self, prompt: str, asked: Asked) -> Iterator[str]:
        """The continuation's text piece by piece, one piece per new token (`udlc serve` sends each as it comes).
        What is wrong in the prompt or `asked` is raised here, before the first token is made."""
        self._check(asked)
        return self._pieces(self.tokens(self.encode(prompt), asked))

    def _check(self, asked: Asked) -> None:
        if asked.beam != 1:
            raise UdlcError("--beam decodes encoder–decoder (seq2seq) models; a language model samples or is greedy")

    def encode(self, prompt: str) -> list[int]:
        if not prompt:
            raise UdlcError("the prompt is empty: a model continues text, so give it some (--prompt TEXT)")
        try:
            return self.tokenizer.encode(prompt).tolist()
        except ValueError as e:
            raise UdlcError(f"the prompt cannot be encoded: {e}") from None

    def run(self, window: list[int], past: list[np.ndarray] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """The last position's logits for the new tokens `window` after the cached `past` (none: from scratch),
        over the tokenizer's ids, and the keys and values of every position so far."""
        feed = {self.input_name: np.asarray([window], dtype=np.int64)}
        if self.cached:
            past = past or [np.zeros((1, shape[1], 0, shape[3]), np.float32) for shape in self.past.values()]
            feed.update(zip(self.past, past))
        logits, *present = self.session.run(None, feed)
        # only ids the tokenizer has: a network padded past a BPE's learned vocabulary (pad_vocab) never draws one
        return logits[0, -1, :self.tokenizer.vocab_size].astype(np.float64), present

    def generate(self, prompt: str, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int = 0, use_cache: bool = True) -> Generated:
        """The continuation of `prompt` (see `tokens`)."""
        ids = self.encode(prompt)
        start = time.perf_counter()
        made = list(self.tokens(ids, Asked(max_new_tokens, temperature, top_k, seed, use_cache=use_cache)))
        seconds = time.perf_counter() - start
        return Generated(prompt, self.tokenizer.continuation(made), len(made), seconds)

    def tokens(self, ids: list[int], asked: Asked) -> Iterator[int]:
        """Each new token after the prompt's `ids`, as it is drawn: what `udlc generate` and `udlc serve` both
        consume. Without the cache (or a file without one) each token runs the whole window of the last
        `context` tokens. With it, the prompt's window runs once and then each token one step; when the context
        is full, the window restarts from the last half of it (so past `context` tokens, cached and uncached
        text may differ: they see different windows). A token is handed out before the next one's step runs."""
        rng = np.random.default_rng(asked.seed)
        made: list[int] = []
        cache = asked.use_cache and self.cached
        logits, past = self.run(ids[-self.context:])
        length = min(len(ids), self.context)  # positions the cache holds
        for step in range(asked.max_new_tokens):
            token = pick(logits, asked.temperature, asked.top_k, rng)
            made.append(token)
            yield token
            if step == asked.max_new_tokens - 1:
                break
            if not cache:
                logits, _ = self.run((ids + made)[-self.context:])
            elif length < self.context:
                logits, past = self.run([token], past)
                length += 1
            else:
                length = self.context // 2 + 1
                logits, past = self.run((ids + made)[-length:])

    def _pieces(self, tokens: Iterator[int]) -> Iterator[str]:
        """The text each token adds: the decoded text so far less what was handed out. A byte token may end in
        half a character (decoded as U+FFFD): its text waits for the rest, so its piece is empty. The pieces
        join to the decoded continuation for tokenizers whose text of a prefix is a prefix of the text (bytes,
        characters, byte-level BPE, words: each after a space); decoding the whole prefix each time keeps them
        so across BPE merges."""
        made: list[int] = []
        sent = ""
        splits = self.tokenizer.kind != "char"  # a character token is whole (its U+FFFD: the unknown character)
        for token in tokens:
            made.append(token)
            text = self.tokenizer.continuation(made)
            if splits and text.endswith("\ufffd") or not text.startswith(sent):
                yield ""
                continue
            yield text[len(sent):]
            sent = text
        text = self.tokenizer.continuation(made)
        if len(text) > len(sent) and text.startswith(sent):  # a last half character, shown as U+FFFD
            yield text[len(sent):]


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


class Seq2SeqFile:
    """An exported encoder–decoder: a source text in, its target text out, greedy or by beam search."""

    serves = (DECODED_TEXT,)
    reads = "an encoder–decoder model"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        self.session, meta = file.session, file.meta
        try:
            self.vocabulary = json.loads(meta["vocabulary"])
            self.max_length = int(meta["max_target_length"])
            tokenizer = json.loads(meta["tokenizer"]) if "tokenizer" in meta else None
        except (KeyError, ValueError) as e:
            raise damaged(file.path, e) from None
        self.tokenizer = None
        if tokenizer is not None:  # text to text (a CSV's columns, span corruption): <bos>, <eos> are specials
            from udlc.data.text import tokenizer_from_json

            self.tokenizer = tokenizer_from_json(tokenizer)
        self.index = {t: i for i, t in enumerate(self.vocabulary)}
        self.inputs = [i.name for i in self.session.get_inputs()]

    def answer(self, prompt: str, asked: Asked) -> Reply:
        """`udlc generate`: the prompt's target text (greedy, or the best of --beam hypotheses)."""
        return Reply(self.translate(prompt, asked.beam))

    def encode(self, text: str) -> tuple[np.ndarray, int, int]:
        """A source text's ids, and the ids of <bos> and <eos>."""
        if self.tokenizer is not None:
            if not text:
                raise UdlcError("the source '' cannot be encoded: it is empty")
            eos = self.tokenizer.id("<eos>")
            return np.append(self.tokenizer.encode(text), eos), self.tokenizer.id("<bos>"), eos
        unknown = sorted(set(text) - self.index.keys())
        if unknown or not text:
            raise UdlcError(f"the source {text!r} cannot be encoded: " + (
                f"{''.join(unknown)!r} is not in the vocabulary ({' '.join(self.vocabulary[3:])})" if unknown
                else "it is empty"))
        return np.array([self.index[c] for c in text], dtype=np.int64), self.index["<bos>"], self.index["<eos>"]

    def logprobs(self, source: np.ndarray, decoded: np.ndarray) -> np.ndarray:
        """log p(next token) for each row of `decoded` (B, t), all reading the one source."""
        n = len(decoded)
        fields = {"source": np.repeat(source[None], n, 0), "source_mask": np.ones((n, len(source)), bool),
                  "decoder": decoded, "decoder_mask": np.ones(decoded.shape, bool)}
        (logits,) = self.session.run(["logits"], {name: fields[name] for name in self.inputs})
        z = logits[:, -1].astype(np.float64)
        if self.tokenizer is not None:  # only ids the tokenizer has: a padded BPE's width past them is never drawn
            z = z[:, :self.tokenizer.vocab_size]
        z -= z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    def translate(self, text: str, beam: int = 1) -> str:
        """The most likely target: greedy (beam 1), or the best of `beam` hypotheses kept at each step, by
        total log-probability; a hypothesis ends at <eos>, and none runs past twice the longest target."""
        source, bos, eos = self.encode(text)
        live, done = [(0.0, [bos])], []
        for _ in range(2 * self.max_length):
            scores = self.logprobs(source, np.array([seq for _, seq in live], dtype=np.int64))
            grown = [(score + scores[i, t], seq + [int(t)]) for i, (score, seq) in enumerate(live)
                     for t in np.argsort(-scores[i])[:beam]]
            grown.sort(key=lambda h: -h[0])
            live = []
            for score, seq in grown[:beam]:
                (done if seq[-1] == eos else live).append((score, seq))
            if not live or (done and max(s for s, _ in done) >= live[0][0]):
                break  # log-probabilities only fall: no live hypothesis can overtake the best finished one
        best = max(done or live, key=lambda h: h[0])[1]
        if self.tokenizer is not None:
            return self.tokenizer.decode([t for t in best[1:] if t != eos])
        return "".join(self.vocabulary[t] for t in best[1:] if t != eos)


class TokenLabeller:
    """An exported token classifier: each position of a text gets the label with the highest logit."""

    serves = (TOKEN_LABELS,)
    reads = "a token labeller"

    def __init__(self, path: str | Path | Opened, device: str = "cpu"):
        file = opened(path, device, self)
        self.session, meta = file.session, file.meta
        try:
            self.vocabulary = json.loads(meta["vocabulary"])
        except (KeyError, ValueError) as e:
            raise damaged(file.path, e) from None
        self.index = {t: i for i, t in enumerate(self.vocabulary)}
        self.inputs = [i.name for i in self.session.get_inputs()]

    def answer(self, prompt: str, asked: Asked) -> Reply:
        """`udlc generate`: the label of each of the prompt's positions."""
        return Reply(self.label(prompt))

    def label(self, text: str) -> str:
        unknown = sorted(set(text) - self.index.keys())
        if unknown or not text:
            raise UdlcError(f"{text!r} cannot be encoded: " + (
                f"{''.join(unknown)!r} is not in the vocabulary ({' '.join(self.vocabulary[3:])})" if unknown
                else "it is empty"))
        tokens = np.array([[self.index[c] for c in text]], dtype=np.int64)
        fields = {"tokens": tokens, "tokens_mask": np.ones(tokens.shape, bool)}
        (logits,) = self.session.run(["logits"], {name: fields[name] for name in self.inputs})
        return "".join(self.vocabulary[int(i)] if int(i) >= 3 else "?" for i in logits[0].argmax(-1))
