"""Synonym replacement and insertion find a word with punctuation at its ends ("good," is the synonyms file's good),
and keep that punctuation around the synonym; words the file does not name stay as written."""

from __future__ import annotations

import numpy as np

from udlc.objectives.text_augments import TEXT_APPLY
from udlc.spec.text_augments import RandomInsertion, SynonymReplacement

SYNONYMS = {"good": ["fine"], "movie": ["film"]}


def test_punctuated_words_are_replaced_and_keep_their_punctuation() -> None:
    words = "A good, (movie). Really Good!".split()
    out = TEXT_APPLY["synonym_replacement"](words, SynonymReplacement(synonyms="s.csv", n=3),
                                            np.random.default_rng(0), SYNONYMS)
    assert out == ["A", "fine,", "(film).", "Really", "fine!"]


def test_insertion_finds_a_punctuated_word_and_inserts_its_bare_synonym() -> None:
    out = TEXT_APPLY["random_insertion"](["well,", "good."], RandomInsertion(synonyms="s.csv", n=1),
                                         np.random.default_rng(0), SYNONYMS)
    assert len(out) == 3 and "fine" in out and {"well,", "good."} <= set(out)


def test_a_word_without_synonyms_is_left_alone() -> None:
    words = ["plain", "words,", "only."]
    assert TEXT_APPLY["synonym_replacement"](words, SynonymReplacement(synonyms="s.csv", n=2),
                                             np.random.default_rng(0), SYNONYMS) == words
