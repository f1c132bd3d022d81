"""What `udlc import`'s writers share (udlc.weights.hf_import, hf_encoders): config.json read key by key with refusals
that name the key, the activations udlc has, a map rule as YAML text, and a text task's stand-in data. json and the
standard library only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from udlc.errors import UdlcError


class ImportRefused(UdlcError):
    """An architecture, or a config value, that udlc cannot express."""


class Config:
    """config.json, read key by key: every refusal names the key and the file."""

    tokenizer_file: str | None = None  # the folder's tokenizer.json as the spec names it (set by udlc import)

    def __init__(self, folder: Path):
        self.path = folder / "config.json"
        if not folder.is_dir():
            raise UdlcError(f"{folder} is not a folder: `udlc import` reads a Hugging Face model folder "
                            "(config.json beside model.safetensors)")
        if not self.path.is_file():
            raise UdlcError(f"{folder} has no config.json: `udlc import` reads a Hugging Face model folder, as "
                            "transformers' save_pretrained writes it")
        try:
            self.data = json.loads(self.path.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise UdlcError(f"{self.path} is not valid JSON: {e}") from None
        if not isinstance(self.data, dict):
            raise UdlcError(f"{self.path} holds no JSON object")

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def int(self, key: str, default: int | None = None) -> int:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise UdlcError(f"{self.path}: `{key}` must be a positive whole number (got {v!r})")
        return v

    def float(self, key: str, default: float | None = None) -> float:
        v = self.data.get(key, default)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise UdlcError(f"{self.path}: `{key}` must be a positive number (got {v!r})")
        return float(v)

    def refuse(self, key: str, why: str, hint: str = "") -> ImportRefused:
        return ImportRefused(f"{self.path}: `{key}` is {self.data.get(key)!r}: {why}" + (f" — {hint}" if hint else ""))

    def only(self, key: str, allowed: tuple, why: str) -> None:
        """Refuse `key` unless it is absent or one of `allowed`."""
        if key in self.data and self.data[key] not in allowed:
            raise self.refuse(key, why)


# The activations of Hugging Face's ACT2FN that udlc has, as a spec writes them.
ACTIVATIONS = {"gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu", "gelu_new": "gelu_tanh",
               "gelu_pytorch_tanh": "gelu_tanh", "tanh": "tanh"}
GELU_TANH = "  blocks:\n    gelu_tanh: {layers: [{gelu: tanh}]}   # Hugging Face's gelu_new: the tanh approximation\n"


def activation(cfg: Config, key: str, default: str) -> str:
    name = cfg.get(key, default)
    if name not in ACTIVATIONS:
        raise cfg.refuse(key, "udlc has no such activation", f"udlc imports {', '.join(sorted(ACTIVATIONS))}")
    return ACTIVATIONS[name]


def rule(src: str, to: str | list[str] | None = None, **options: Any) -> str:
    """One map rule as a YAML flow mapping; `to` None: dropped (known, deliberately unused)."""
    parts = [f"from: {json.dumps(src)}"]
    if to is None:
        parts.append("drop: true")
    else:
        parts.append(f"to: {json.dumps(to)}")
    parts += [f"{k}: {json.dumps(v)}" for k, v in options.items()]
    return "{" + ", ".join(parts) + "}"


def language_data(vocab: int, specials: int = 0, cfg: Config | None = None) -> tuple[str, list[str]]:
    """A text task's data: the folder's own tokenizer.json where it is a BPE that fits the vocabulary and the task
    adds no `specials` (data.tokenizer_file, udlc.data.tokenizer_file); else a stand-in that fits the vocabulary:
    bytes where the ids are 256 and the task's `specials` (udlc.data.specials), else a BPE of that size learned from
    the standard library's source (pad_vocab: ids past what it learns are never drawn)."""
    own, notes = folder_tokenizer(cfg, vocab) if cfg is not None and not specials else (None, [])
    if own is not None:
        return own, notes
    if vocab - specials == 256:
        return "data: {source: stdlib, tokenizer: byte, max_chars: 200000}\n", notes
    note = (f"the data section is a stand-in: a BPE of {vocab} ids learned on the Python standard library; "
            "udlc reads a folder's tokenizer.json only where it is a language model's BPE (data.tokenizer_file), so "
            "`udlc generate` on the export tokenizes differently from the published model")
    return (f"data: {{source: stdlib, tokenizer: bpe, vocab_size: {vocab}, pad_vocab: true}}   # a stand-in tokenizer\n",
            notes + [note])


def folder_tokenizer(cfg: Config, vocab: int) -> tuple[str | None, list[str]]:
    """The data line reading the folder's tokenizer.json (at cfg.tokenizer_file, relative to the spec), or None and
    why not where the folder has one udlc cannot use (not a BPE, more ids than the embedding has rows)."""
    from udlc.data.tokenizer_file import json_vocab_size, read_tokenizer_json
    from udlc.errors import SpecError

    path = cfg.path.parent / "tokenizer.json"
    if cfg.tokenizer_file is None or not path.is_file():
        return None, []
    try:
        size = json_vocab_size(read_tokenizer_json(path))
    except SpecError as e:
        return None, [f"the folder's tokenizer.json is not used: {e.message}"]
    if size > vocab:
        return None, [f"the folder's tokenizer.json has {size} ids, more than the {vocab} rows of the embedding"]
    pad = f", vocab_size: {vocab}, pad_vocab: true" if size < vocab else ""  # a network wider than the file's ids
    return (f"data: {{source: stdlib, tokenizer: bpe, tokenizer_file: {json.dumps(cfg.tokenizer_file)}{pad}}}"
            "   # the folder's own tokenizer\n"), []


def tied(cfg: Config, default: bool) -> bool:
    v = cfg.get("tie_word_embeddings", default)
    return bool(v)


def present(names: set[str] | None, name: str) -> bool:
    return names is not None and name in names


def lm_head(tie: bool, theirs: str, ours: str) -> list[str]:
    """The LM head: loaded where untied; where tied, a copy of the embedding some files hold is dropped (a drop rule
    may match nothing)."""
    return [rule(theirs, ours if not tie else None)]
