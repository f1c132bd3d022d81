"""The text augmentations' implementations, by the names udlc.spec.text_augments registers.

The word operations take a text's words (a list of str), the entry's config, a numpy Generator and the synonyms
(lowercased word -> its synonyms; {} for those that need none) and return new words; udlc.data.text_augment
draws the Generator from the run's generator each epoch, so a resume draws the same. `token_mask` takes a
text's token ids and the mask id; `back_translation` takes the texts and the model folders and returns one
translation per text. numpy, torch and transformers are imported only when one runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from udlc.spec.text_augments import (
    BackTranslation,
    RandomDeletion,
    RandomInsertion,
    RandomSwap,
    SynonymReplacement,
    TokenMask,
)

Synonyms = dict[str, list[str]]
# A word as the text splits it: its leading punctuation, the word a synonyms file names, its trailing punctuation.
_EDGES = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


def _key(word: str) -> str:
    """What a word is looked up by in the synonyms: lowercased, without punctuation at its ends ("Good," -> good)."""
    return _EDGES.match(word).group(2).lower()  # type: ignore[union-attr]


def _random_swap(words: list[str], aug: RandomSwap, rng: Any, synonyms: Synonyms) -> list[str]:
    """EDA's swap_word, n times: two distinct positions drawn uniformly, their words exchanged."""
    words = list(words)
    if len(words) < 2:
        return words
    for _ in range(aug.n):
        i, j = (int(k) for k in rng.choice(len(words), size=2, replace=False))
        words[i], words[j] = words[j], words[i]
    return words


def _random_deletion(words: list[str], aug: RandomDeletion, rng: Any, synonyms: Synonyms) -> list[str]:
    """EDA's random_deletion: each word kept with probability 1 - p; if none is left, one drawn at random."""
    if not words:
        return []
    kept = [w for w, draw in zip(words, rng.random(len(words))) if draw >= aug.p]
    return kept or [words[int(rng.integers(len(words)))]]


def _random_insertion(words: list[str], aug: RandomInsertion, rng: Any, synonyms: Synonyms) -> list[str]:
    """EDA's random_insertion, n times: a word with synonyms drawn among the text's (those inserted before
    included, as EDA's add_word picks from the growing text), one of its synonyms inserted at any of the
    len + 1 gaps."""
    words = list(words)
    for _ in range(aug.n):
        having = [w for w in words if _key(w) in synonyms]
        if not having:
            break
        choices = synonyms[_key(having[int(rng.integers(len(having)))])]
        words.insert(int(rng.integers(len(words) + 1)), choices[int(rng.integers(len(choices)))])
    return words


def _synonym_replacement(words: list[str], aug: SynonymReplacement, rng: Any, synonyms: Synonyms) -> list[str]:
    """nlpaug's SynonymAug: up to n positions whose words have synonyms, drawn without repeats, each word
    replaced by one of its synonyms drawn uniformly; punctuation at the word's ends stays ("good," -> "fine,")."""
    words = list(words)
    having = [i for i, w in enumerate(words) if _key(w) in synonyms]
    for i in rng.permutation(len(having))[:aug.n]:
        at = having[int(i)]
        lead, word, trail = _EDGES.match(words[at]).groups()  # type: ignore[union-attr]
        choices = synonyms[word.lower()]
        words[at] = lead + choices[int(rng.integers(len(choices)))] + trail
    return words


def _token_mask(ids: Any, aug: TokenMask, rng: Any, mask_id: int) -> Any:
    """Each id replaced by mask_id with probability p."""
    import numpy as np

    return np.where(rng.random(len(ids)) < aug.p, np.int64(mask_id), ids).astype(np.int64)


def _back_translation(texts: list[str], aug: BackTranslation, base_dir: Path) -> list[str]:
    """Each text through `model` (then `back`), greedy decoding: deterministic, so the cache holds what a
    second run would make."""
    out = _translate(texts, base_dir / aug.model, aug.prefix, aug.max_length, aug.batch_size)
    if aug.back is not None:
        out = _translate(out, base_dir / aug.back, aug.back_prefix, aug.max_length, aug.batch_size)
    return out


def _translate(texts: list[str], folder: Path, prefix: str, max_length: int, batch_size: int) -> list[str]:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer([prefix + t for t in texts[start:start + batch_size]], return_tensors="pt",
                              padding=True, truncation=True, max_length=max_length)
            ids = model.generate(**batch, max_length=max_length, num_beams=1, do_sample=False)
            out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]
    return out


# By name; udlc.objectives.augments joins this into its APPLY table (every registered name has one).
TEXT_APPLY: dict[str, Callable[..., Any]] = {
    "random_swap": _random_swap,
    "random_deletion": _random_deletion,
    "random_insertion": _random_insertion,
    "synonym_replacement": _synonym_replacement,
    "token_mask": _token_mask,
    "back_translation": _back_translation,
}
