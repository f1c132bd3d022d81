"""Text augmentations' configs: for a text column (`data.text`, task sequence_classification). udlc.spec.augments
registers them with `text_only`, so `udlc check` refuses them on other data at their line; their implementations
are in udlc.objectives.text_augments, and udlc.data.text_augment applies them.

They change the training split's raw text each epoch, before it is tokenized, so a "word" is the same for every
tokenizer (byte, char, bpe): a run of characters between whitespace, punctuation included ("fast," is one word;
a synonyms file's entries match it without the punctuation at its ends, which stays around the synonym).
An augmented row's words are joined by single spaces. `token_mask` works on the token ids after tokenizing, and
`back_translation` adds one paraphrase per training row once, before training. EDA is Wei & Zou 2019; its
operations here follow nlpaug's definitions (each named below)."""

from typing import Literal

from pydantic import Field, NonNegativeInt, PositiveInt

from udlc.spec.base import StrictModel

ROWS = ("the share of training rows it changes, each row drawn anew each epoch (default 1: every row); the "
        "others are trained on as written")
SYNONYMS = ("a CSV (each line `word,synonym,synonym,...`) or YAML (`word: [synonym, ...]`) file of synonyms, "
            "relative to the spec; words are matched ignoring case")


class RandomSwap(StrictModel):
    """EDA's random swap: `n` times, two words at distinct random positions change places (the words kept, their
    order changed). A text of one word is left as it is."""

    type: Literal["random_swap"] = "random_swap"
    n: PositiveInt = Field(1, le=1000, description="how many pairs to swap")
    rows: float = Field(1.0, ge=0, le=1, description=ROWS)


class RandomDeletion(StrictModel):
    """EDA's random deletion: each word is dropped with probability `p`; a text that would lose every word keeps
    one of them, drawn at random (never empty)."""

    type: Literal["random_deletion"] = "random_deletion"
    p: float = Field(0.1, ge=0, le=1, description="each word's probability of being dropped")
    rows: float = Field(1.0, ge=0, le=1, description=ROWS)


class RandomInsertion(StrictModel):
    """EDA's random insertion: `n` times, a synonym of a random word of the text (one that has synonyms) is
    inserted at a random position; a text without such a word is left as it is."""

    type: Literal["random_insertion"] = "random_insertion"
    synonyms: str = Field(description=SYNONYMS)
    n: PositiveInt = Field(1, le=1000, description="how many words to insert")
    rows: float = Field(1.0, ge=0, le=1, description=ROWS)


class SynonymReplacement(StrictModel):
    """EDA's synonym replacement (nlpaug's SynonymAug, with the user's synonyms instead of WordNet): up to `n`
    words that have synonyms, at distinct random positions, each replaced by one of its synonyms."""

    type: Literal["synonym_replacement"] = "synonym_replacement"
    synonyms: str = Field(description=SYNONYMS)
    n: PositiveInt = Field(1, le=1000, description="how many words to replace at most")
    rows: float = Field(1.0, ge=0, le=1, description=ROWS)


class TokenMask(StrictModel):
    """Each token id replaced by the mask id with probability `p`, after tokenizing: the char tokenizer's unknown
    id by default; byte and bpe tokenizers have none, so give `id`."""

    type: Literal["token_mask"] = "token_mask"
    p: float = Field(0.1, ge=0, le=1, description="each token's probability of being masked")
    id: NonNegativeInt | None = Field(None, description="the id that replaces a masked token (default: the "
                                      "tokenizer's unknown id); below the vocabulary size")


class BackTranslation(StrictModel):
    """Once, before training: every training row translated by the Hugging Face seq2seq model in `model` (and
    back by the one in `back`, when given), greedily, and the result added as a new training row with the same
    label. The paraphrases are cached (udlc's cache folder, by a hash of the models, the settings and the rows)
    and the run's info names the file, so a resume or a second run reuses them. Needs `transformers`."""

    type: Literal["back_translation"] = "back_translation"
    model: str = Field(description="a folder holding a seq2seq model and its tokenizer (Marian, T5, ...: "
                       "save_pretrained's), relative to the spec")
    back: str | None = Field(None, description="a second such folder, translating the first one's output back "
                             "(e.g. model: en-de, back: de-en); without it the first model's output is the paraphrase")
    prefix: str = Field("", description="written before each text for `model` (T5: 'translate English to German: ')")
    back_prefix: str = Field("", description="written before each text for `back`")
    max_length: PositiveInt = Field(128, le=4096, description="the most tokens a translation may have")
    batch_size: PositiveInt = Field(16, le=4096, description="rows translated at once")


# (config, main_arg, examples) of each, in the order udlc.spec.augments registers them.
TEXT_CONFIGS = (
    (RandomSwap, "n", ("random_swap", {"random_swap": 2}, {"random_swap": {"n": 1, "rows": 0.5}})),
    (RandomDeletion, "p", ("random_deletion", {"random_deletion": 0.2})),
    (RandomInsertion, "synonyms", ({"random_insertion": "synonyms.csv"},
                                   {"random_insertion": {"synonyms": "synonyms.yaml", "n": 2}})),
    (SynonymReplacement, "synonyms", ({"synonym_replacement": "synonyms.csv"},
                                      {"synonym_replacement": {"synonyms": "synonyms.yaml", "n": 3}})),
    (TokenMask, "p", ("token_mask", {"token_mask": 0.15}, {"token_mask": {"p": 0.1, "id": 0}})),
    (BackTranslation, "model", ({"back_translation": "en-de/"},
                                {"back_translation": {"model": "en-de/", "back": "de-en/"}})),
)
# Those that change the raw text each epoch (the others: token_mask works on ids, back_translation runs once).
WORD_AUGMENTS = frozenset({"random_swap", "random_deletion", "random_insertion", "synonym_replacement"})
