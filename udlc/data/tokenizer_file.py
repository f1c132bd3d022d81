"""`data.tokenizer_file`: a Hugging Face `tokenizer.json` (a published model's own BPE) as a language model's
tokenizer, so that the network reads, and `udlc generate` encodes a prompt in, the ids the model was trained on.

Nothing is learned: the file is the tokenizer, used as `tokenizers` uses it (its normalizer, pre-tokenizer and
post-processor included, so a LLaMA file's <s> starts a prompt as it does in transformers), and it travels into the
ONNX metadata as a learned BPE does (udlc.data.text.BpeTokenizer). `udlc check` reads the file as JSON only (no
`tokenizers`, no numpy): that it is a tokenizers file of a BPE model, and its vocabulary's size, which the network's
embedding and output are checked against. Only BPE files are read: `tokenizer: bpe` says what the ids are, and the
GPT-2 and LLaMA families `udlc import` writes language models for publish BPE (BERT's WordPiece and T5's Unigram
files are refused, naming their kind)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from udlc.errors import SpecError

WHERE = "data.tokenizer_file"


def tokenizer_path(data: Any, base_dir: Path) -> Path:
    return Path(base_dir) / data.tokenizer_file


def read_tokenizer_json(path: Path, shown: str | None = None) -> dict:
    """The file as JSON, refused (SpecError at data.tokenizer_file) where it is missing, not JSON, not a
    tokenizers file, or not a BPE one."""
    shown = shown or str(path)
    if not path.is_file():
        raise SpecError(f"no file {shown} (looked in {path.parent.resolve()})", path=WHERE,
                        hint="name a Hugging Face tokenizer.json, relative to this spec (a model folder holds one)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise SpecError(f"{path.name} is not JSON: {e}", path=WHERE,
                        hint="name the tokenizer.json that transformers' save_pretrained or tokenizers' save writes") \
            from None
    model = doc.get("model") if isinstance(doc, dict) else None
    vocab = model.get("vocab") if isinstance(model, dict) else None
    if not isinstance(model, dict) or "type" not in model or not isinstance(vocab, (dict, list)):
        raise SpecError(f"{path.name} is JSON but not a Hugging Face tokenizers file (it has no `model` with a "
                        "`type` and a `vocab`)", path=WHERE,
                        hint="name the tokenizer.json of a model folder (not its config.json or tokenizer_config.json)")
    if model["type"] != "BPE":
        raise SpecError(f"{path.name} is a {model['type']} tokenizer; udlc reads BPE tokenizer files", path=WHERE,
                        hint="use a BPE model's tokenizer.json (GPT-2, LLaMA, Mistral, Qwen), or drop tokenizer_file "
                             "to learn a BPE from the corpus")
    if not isinstance(vocab, dict) or not all(isinstance(i, int) for i in vocab.values()):
        raise SpecError(f"{path.name}'s BPE vocabulary is not a mapping of tokens to ids", path=WHERE,
                        hint="name a tokenizer.json that `tokenizers` wrote")
    return doc


def json_vocab_size(doc: dict) -> int:
    """The ids' range (the highest id + 1, added tokens such as <|endoftext|> included): the rows the network needs,
    as udlc.data.text.BpeTokenizer counts them."""
    ids = list(doc["model"]["vocab"].values())
    ids += [t["id"] for t in doc.get("added_tokens") or [] if isinstance(t, dict) and isinstance(t.get("id"), int)]
    return max(ids, default=-1) + 1


def file_vocabulary(data: Any, base_dir: Path) -> tuple[int | None, Any]:
    """For `udlc check`: the network's width for the file's tokenizer (its vocabulary, or a padded `vocab_size`),
    and its description; or None and the SpecError."""
    try:
        size = json_vocab_size(read_tokenizer_json(tokenizer_path(data, base_dir), data.tokenizer_file))
    except SpecError as e:
        return None, e
    why = f"tokenizer of {data.tokenizer_file}"
    if data.pad_vocab and data.vocab_size is not None:
        if data.vocab_size < size:
            return None, SpecError(f"vocab_size {data.vocab_size} is less than the {size} ids of {data.tokenizer_file}",
                                   path="data.vocab_size", hint=f"vocab_size: {size} or more (or leave it out)")
        return data.vocab_size, f"{why} padded to vocab_size {data.vocab_size} (pad_vocab)"
    return size, why


def file_tokenizer(data: Any, base_dir: Path) -> Any:
    """The file as a `tokenizers.Tokenizer` (udlc.data.text wraps it as its BpeTokenizer), refused as
    read_tokenizer_json refuses."""
    path = tokenizer_path(data, base_dir)
    read_tokenizer_json(path, data.tokenizer_file)
    try:
        from tokenizers import Tokenizer as HF
    except ImportError:
        raise SpecError("tokenizer_file needs the `tokenizers` package", path=WHERE,
                        hint="pip install tokenizers") from None
    try:
        return HF.from_file(str(path))
    except Exception as e:  # tokenizers raises its own exception type for a file it cannot build
        raise SpecError(f"`tokenizers` cannot read {path.name}: {e}", path=WHERE,
                        hint="name a tokenizer.json written by a tokenizers version this one reads "
                             "(pip install -U tokenizers)") from None
