"""The `data` section: where samples come from, how they are split, normalized and augmented."""

from typing import Literal

from pydantic import (Field, NonNegativeFloat, PositiveFloat, PositiveInt, PrivateAttr, ValidationInfo,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from udlc.spec.augments import IMAGE_AUGMENTS, Augment
from udlc.spec.base import StrictModel
from udlc.spec.sound import sound_field, sound_settings
from udlc.spec.sources import GENERATED_SAMPLES, SOURCES, BuiltinSet, FileKind, is_folder

# Derived from the registries (spec/sources.py, spec/augments.py), for the code that only needs the names.
BUILTIN_SOURCES = tuple(e.name for e in SOURCES.builtin())
TEXT_SOURCES = tuple(e.name for e in SOURCES.corpora())
SEQUENCE_SOURCES = tuple(e.name for e in SOURCES.sequence_sets())
NODE_SET_SOURCES = tuple(e.name for e in SOURCES.node_sets())
PICTURE_SOURCES = tuple(e.name for e in SOURCES.picture_sets())
FILE_SUFFIXES = tuple(e.name for e in SOURCES.files() if not e.folder)
__all__ = ["BUILTIN_SOURCES", "FILE_SUFFIXES", "SEQUENCE_SOURCES", "TEXT_SOURCES", "IMAGE_AUGMENTS", "Augment", "DataSpec"]




def split_sizes(n: int, fractions: list[float] | tuple[float, ...]) -> tuple[int, int, int]:
    """How many of n samples go to train, validation and test: a nonzero fraction gets at least one."""
    val, test = (round(n * f) if f == 0 else max(1, round(n * f)) for f in fractions[1:])
    return n - val - test, val, test


class DataSpec(StrictModel):
    source: str = Field(
        description=f"a built-in set ({', '.join(BUILTIN_SOURCES)}), a built-in text ({', '.join(TEXT_SOURCES)}), "
        f"a generated sequence task ({', '.join(SEQUENCE_SOURCES)}), a graph ({', '.join(NODE_SET_SOURCES)}), pictures "
        f"with picture-shaped targets ({', '.join(PICTURE_SOURCES)}) or a file ({', '.join(FILE_SUFFIXES)}) or a "
        "folder of pictures with a subfolder per class (`pictures/`), "
        "relative to the spec"
    )
    # CSV: the target column (name or index; default the last); NPZ: the arrays' keys.
    target: str | int | None = None
    features: list[str] | None = None
    categorical: list[str] = Field(
        default_factory=list,
        description="CSV feature columns holding category names; each becomes one 0/1 column per category "
        "(the sorted distinct values of the column over the whole file)",
    )
    missing: Literal["error", "drop", "mean"] = Field(
        "error",
        description="empty CSV cells: error; drop the row; or fill a numeric feature with its training-split mean",
    )
    task: Literal["classification", "regression"] | None = Field(
        None, description="inferred from the source and the loss when left out"
    )
    split: list[float] = Field([0.8, 0.1, 0.1], min_length=3, max_length=3,
                               description="train, validation, test fractions")
    samples: PositiveInt | None = Field(None, description="how many samples a generated source makes (default 1000)")
    noise: NonNegativeFloat | None = Field(None, description="noise level of a generated source")
    tokenizer: Literal["byte", "char", "bpe", "word"] | None = Field(
        None, description="text sources: byte (256 ids, UTF-8 bytes), char (the text's characters) or bpe "
        "(byte-level BPE trained on the training split; needs the `tokenizers` package) or word (the training "
        "split's words, `<unk>` for others, `<eos>` at line ends; text sources and CSV text columns); default byte")
    vocab_size: PositiveInt | None = Field(None, description="tokenizer: bpe — its vocabulary size (default 1024); "
                                           "a size the training split cannot fill is refused with the size it can")
    pad_vocab: bool | None = Field(None, description="tokenizer: bpe — keep vocab_size as the network's width "
                                   "even where the training split learns fewer tokens (an architecture fixed by "
                                   "pretrained weights): the ids past the learned ones are never targets, and "
                                   "generation never draws them")
    min_freq: PositiveInt | None = Field(None, description="tokenizer: word — keep words seen at least this often "
                                         "in the training split (default 1)")
    max_size: PositiveInt | None = Field(None, description="tokenizer: word — keep at most this many words, the "
                                         "most frequent, beside <unk> and <eos> (default all)")
    lowercase: bool | None = Field(None, description="tokenizer: word — lowercase the text before cutting it")
    word_split: Literal["whitespace", "punctuation"] | None = Field(
        None, description="tokenizer: word — how a line is cut: whitespace (default; pre-tokenized text such as "
        "WikiText) or punctuation (words and punctuation marks apart). Named modes, not a regex: a served model "
        "cuts every prompt, and a backtracking pattern could hang it")
    max_chars: PositiveInt | None = Field(None, description="text sources: read only the first N characters")
    text: str | list[str] | None = Field(
        None, description="CSV: the column holding text (task sequence_classification; seq2seq: the source column); "
        "two columns, [first, second], for sentence pairs: read as [CLS] first [SEP] second [SEP], token types 0 and 1")
    tokenizer_from: str | None = Field(
        None, min_length=1, description="a CSV text column: read it with the tokenizer another spec (a path relative to "
        "this one; a language model's, say) learns — from its corpus, split, tokenizer and vocab_size, as that spec "
        "learns it — so that a network pretrained by that spec reads these rows in the ids it learned; `tokenizer` "
        "names the same kind, and the vocabulary size is that spec's")
    tokenizer_file: str | None = Field(
        None, min_length=1, description="a text corpus with `tokenizer: bpe`: read it with a Hugging Face "
        "tokenizer.json (a path relative to this spec; a published model folder's own), nothing learned, so that "
        "pretrained weights read, and `udlc generate` encodes prompts in, the model's own ids; the vocabulary size is "
        "the file's (`pad_vocab: true` with `vocab_size` for a wider network)")
    nodes: str | None = Field(None, description="a graph from CSV: the node file (one row per node, in id order: "
                              "its features and `target` column) beside `source`, the edge list (source,target"
                              "[,weight] ids); relative to the spec")
    directed: bool = Field(False, description="a graph from CSV (`nodes`): true keeps each edge one-way, source "
                           "to target; by default an edge joins its nodes both ways")
    image_size: PositiveInt | tuple[PositiveInt, PositiveInt] | None = Field(
        None, description="a folder of pictures: every picture resized to this (one number: square; [height, "
                          "width]); needed")
    channels: Literal[1, 3] = Field(3, description="a folder of pictures: 1 (grey) or 3 (RGB)")
    resize: Literal["crop", "stretch"] = Field(
        "crop", description="a folder of pictures: crop (scale the shorter side to fit, cut the middle) or stretch")
    targets: str | None = Field(None, description="a folder of pictures, for task segmentation or image_to_image: "
                                "the folder of their masks (grey or palette PNGs of class ids) or target pictures, "
                                "each named as its picture (pics/a.png ↔ masks/a.png); relative to the spec")
    sample_rate: PositiveInt | None = Field(
        None, description="sound clips — a folder of WAV, FLAC or OGG files with a subfolder per class (`clips/`), "
        "or a CSV whose `audio` column names them: every clip resampled to this many samples a second and mixed "
        "to mono; the model's input is [1, sample_rate × duration]")
    duration: PositiveFloat | None = Field(None, description="sound clips: every clip cut or padded with silence "
                                           "to this many seconds; needed with sample_rate")
    crop: Literal["center", "start", "random"] | None = Field(
        None, description="sound clips: where a longer clip is cut and a shorter one padded — center (default), "
        "start, or random: each training clip at a window drawn once from the seed (validation, test and "
        "predict take the centre; `time_shift` moves clips anew at every step)")
    audio: str | None = Field(None, description="a CSV of sound clips: the column holding each clip's file path "
                              "(relative to the CSV); `target` names the label column")
    normalize: Literal["standard", "minmax", "symmetric", "none"] = Field(
        "standard", description="standard (zero mean, unit variance per feature or channel, from the training "
        "split), minmax (into [0, 1]), symmetric (into [-1, 1], a tanh generator's range; generative tasks), none")
    augment: list[Augment] = Field(default_factory=list)  # type: ignore[valid-type]
    fraction: float | None = Field(
        None, gt=0, le=1, description="train on this fraction of the training split, drawn from the seed (in "
        "proportion to each class where the targets are classes); validation and test stay whole: the guide's "
        "'scale up gradually'")
    limit: PositiveInt | None = Field(None, description="train on at most this many samples of the training split, "
                                      "drawn as for `fraction`")

    @field_validator("fraction", "limit")
    @classmethod
    def _subset_of_rows(cls, v: object, info: ValidationInfo) -> object:
        """Only the sources read as samples split three ways draw a subset of their training split: tables, arrays,
        pictures (udlc.data.prepare) and a CSV's text column (udlc.tasks.fields); the others (a corpus, graphs,
        picture pairs) split their own way."""
        source = info.data.get("source")
        if v is None or source is None:
            return v
        if info.field_name == "limit" and info.data.get("fraction") is not None:
            raise ValueError("give `fraction` or `limit`, not both — drop one")
        entry = SOURCES.find(source)
        other = next((k for k in ("nodes", "targets") if info.data.get(k) is not None), None)
        if other is not None or not isinstance(entry, (BuiltinSet, FileKind)) or getattr(entry, "text", False):
            what = f"data.{other}" if other is not None else source
            raise ValueError(f"applies to samples split into train, validation and test (tables, arrays, pictures, "
                             f"a CSV's texts); "
                             f"{what} is split its own way — leave `{info.field_name}` out")
        split = info.data.get("split")
        if info.field_name == "limit" and isinstance(entry, BuiltinSet) and entry.generated and split is not None:
            n_train = split_sizes(info.data.get("samples") or GENERATED_SAMPLES, split)[0]
            if v > n_train:
                raise ValueError(f"{v} is more than the training split's {n_train} samples — give at most {n_train}, "
                                 "or leave `limit` out to train on them all")
        return v

    @field_validator("source")
    @classmethod
    def _known_source(cls, v: str) -> str:
        if SOURCES.find(v) is not None:
            return v
        from pydantic_core import PydanticCustomError

        raise PydanticCustomError(
            "unknown_source",
            "unknown data source '{source}'",
            {"source": v, "allowed": [*BUILTIN_SOURCES, *TEXT_SOURCES, *SEQUENCE_SOURCES, *NODE_SET_SOURCES,
                                      *PICTURE_SOURCES],
             "hint": f"or a {_one_of_suffixes()} file, or a folder of pictures written with a slash "
                     "(`pictures/`)"},
        )

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, v: list[float]) -> list[float]:
        if any(f < 0 for f in v) or v[0] <= 0 or abs(sum(v) - 1) > 1e-6:
            raise ValueError(f"must be three fractions (train, val, test) with train > 0 that sum to 1, got {list(v)}")
        return v

    @field_validator("samples")
    @classmethod
    def _enough_to_split(cls, v: int | None, info: ValidationInfo) -> int | None:
        split = info.data.get("split")  # a field above this one, so validated (or defaulted) already
        if v is not None and split is not None and split_sizes(v, split)[0] < 1:
            enough = next(n for n in range(v + 1, v + 10) if split_sizes(n, split)[0] >= 1)
            raise ValueError(f"{v} samples are too few for split {list(split)}: each nonzero part takes at least "
                             f"one, and none is left to train on; make samples at least {enough}")
        return v

    @field_validator("samples", "noise")
    @classmethod
    def _generated_only(cls, v: object, info: ValidationInfo) -> object:
        source = info.data.get("source")
        if v is not None and source is not None and not _reads(source, info.field_name):
            generated = ", ".join(e.name for e in SOURCES if info.field_name in e.keys)
            raise ValueError(f"applies only to a set udlc generates ({generated}); {source} is read as it is — "
                             f"leave `{info.field_name}` out")
        return v

    @field_validator("categorical")
    @classmethod
    def _categorical_features(cls, v: list[str], info: ValidationInfo) -> list[str]:
        # Only what the spec alone decides; a name the CSV header lacks is the loader's (and peek's) error.
        source = info.data.get("source")
        if v and source is not None and not _reads(source, "categorical"):
            raise ValueError(f"applies only to CSV files: {source} has no named columns to one-hot encode")
        seen: set[str] = set()
        for name in v:
            if name in seen:
                raise ValueError(f"lists '{name}' twice")
            seen.add(name)
            if name == info.data.get("target"):
                raise ValueError(f"'{name}' is the target column; categorical lists feature columns "
                                 "(text class labels in the target need no listing)")
            features = info.data.get("features")
            if features is not None and name not in features:
                raise ValueError(f"'{name}' is not among data.features; add it there too")
        return v

    @field_validator("missing")
    @classmethod
    def _missing_needs_csv(cls, v: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        if v != "error" and source is not None and not _reads(source, "missing"):
            raise ValueError(f"'{v}' applies only to CSV files, whose empty cells are missing values")
        return v

    @field_validator("nodes")
    @classmethod
    def _nodes_need_an_edge_csv(cls, v: str | None, info: ValidationInfo) -> str | None:
        source = info.data.get("source")
        if v is not None and source is not None and not _reads(source, "nodes"):
            raise ValueError(f"applies only to a graph's edge list in CSV; {source} is none")
        return v

    @field_validator("directed")
    @classmethod
    def _directed_needs_an_edge_csv(cls, v: bool, info: ValidationInfo) -> bool:
        if v and info.data.get("nodes") is None:  # a field above this one, so validated already
            raise ValueError("applies only to a graph's edge list in CSV (with `nodes:`); a .npz graph lists "
                             "each direction it has, and a built-in graph is undirected")
        return v

    @field_validator("tokenizer", "max_chars", "vocab_size", "text")
    @classmethod
    def _text_only(cls, v: object, info: ValidationInfo) -> object:
        source = info.data.get("source")
        if v is not None and source is not None and not _reads(source, info.field_name):
            where = f"text sources ({', '.join(TEXT_SOURCES)} or a .txt file)"
            where = {"max_chars": where, "text": "CSV files"}.get(info.field_name, where + " and CSV text columns")
            raise ValueError(f"applies only to {where}; {source} has no text to read this way")
        if info.field_name == "vocab_size" and v is not None and info.data.get("tokenizer") != "bpe":
            raise ValueError("applies only to `tokenizer: bpe`; byte and char tokenizers have fixed vocabularies"
                             " (word's is sized with min_freq and max_size)")
        if info.field_name == "tokenizer" and v == "word" and source is not None and not SOURCES.is_text(source) \
                and not _reads(source, "text"):
            raise ValueError("word applies to text: a language model's corpus, or a CSV's text column")
        return v

    @field_validator("text")
    @classmethod
    def _one_or_two_columns(cls, v: object) -> object:
        if isinstance(v, list) and (len(v) != 2 or v[0] == v[1]):
            raise ValueError(f"names one text column, or two for sentence pairs ([first, second]), not {v}")
        return v

    @field_validator("tokenizer_from")
    @classmethod
    def _one_text_column(cls, v: object, info: ValidationInfo) -> object:
        """Another spec's vocabulary, for one CSV text column; what that spec holds is checked with the files
        (udlc.data.text.borrowed_data)."""
        if v is None:
            return v
        text = info.data.get("text")
        if text is None or isinstance(text, list):
            raise ValueError("applies to one CSV text column (`text: <column>`), read with another spec's tokenizer; "
                             "sentence pairs add [CLS] and [SEP] ids of their own — leave it out")
        if info.data.get("tokenizer") is None:
            raise ValueError("give `tokenizer:` too, the kind the spec it names learns (e.g. `tokenizer: bpe`)")
        if info.data.get("vocab_size") is not None:
            raise ValueError("the vocabulary is the named spec's, vocab_size and all — drop `vocab_size` here")
        return v

    @field_validator("tokenizer_file")
    @classmethod
    def _a_corpus_bpe(cls, v: object, info: ValidationInfo) -> object:
        """A published BPE for a language model's corpus; the file itself is checked with the files
        (udlc.data.tokenizer_file)."""
        if v is None:
            return v
        source = info.data.get("source")
        if source is not None and not SOURCES.is_text(source):
            raise ValueError(f"applies to a text corpus (a built-in one or a .txt file) read by a language model; "
                             f"{source} is none")
        if info.data.get("tokenizer") != "bpe":
            raise ValueError("give `tokenizer: bpe` too: the file's BPE is the tokenizer")
        if info.data.get("tokenizer_from") is not None:
            raise ValueError("the tokenizer is the file's; drop `tokenizer_from` (or this)")
        if info.data.get("vocab_size") is not None and not info.data.get("pad_vocab"):
            raise ValueError("the vocabulary is the file's — drop `vocab_size` (or add `pad_vocab: true` for a "
                             "network wider than the file)")
        return v

    @field_validator("pad_vocab")
    @classmethod
    def _bpe_only(cls, v: object, info: ValidationInfo) -> object:
        if v is not None and info.data.get("tokenizer") != "bpe":
            raise ValueError("applies only to `tokenizer: bpe`, whose vocab_size may be more than the text can "
                             "learn")
        return v

    @field_validator("min_freq", "max_size", "lowercase", "word_split")
    @classmethod
    def _word_only(cls, v: object, info: ValidationInfo) -> object:
        if v is not None and info.data.get("tokenizer") != "word":
            raise ValueError("applies only to `tokenizer: word`")
        return v

    @field_validator("image_size", "channels", "resize", "targets")
    @classmethod
    def _pictures_only(cls, v: object, info: ValidationInfo) -> object:
        source = info.data.get("source")
        default = cls.model_fields[info.field_name].default
        if v != default and source is not None and not _reads(source, info.field_name):
            raise ValueError(f"applies only to a folder of pictures (`pictures/`); {source} is none")
        return v

    @field_validator("normalize")
    @classmethod
    def _symmetric_scales_samples(cls, v: str, info: ValidationInfo) -> str:
        source = info.data.get("source")
        entry = SOURCES.find(source) if source is not None else None
        samples = isinstance(entry, FileKind) and not entry.text or isinstance(entry, BuiltinSet) and not entry.series
        if v == "symmetric" and entry is not None and (not samples or info.data.get("text") is not None):
            raise ValueError(f"symmetric scales numeric samples into [-1, 1] for a generator's tanh output; "
                             f"{source if info.data.get('text') is None else 'a text column'} has none to scale; use "
                             "`normalize: standard`")
        return v

    @field_validator("sample_rate", "duration", "crop", "audio")
    @classmethod
    def _sound_only(cls, v: object, info: ValidationInfo) -> object:
        return sound_field(v, info.field_name, info.data, _reads)

    @model_validator(mode="after")
    def _sound_settings(self) -> "DataSpec":
        sound_settings(self)
        return self

    @property
    def sound(self) -> bool:
        """Sound clips: a folder of them, or a CSV naming them (`audio`)."""
        return self.sample_rate is not None

    @model_validator(mode="after")
    def _pictures_have_a_size(self) -> "DataSpec":
        if is_folder(self.source) and self.image_size is None and self.sample_rate is None:
            raise PydanticCustomError("image_size", "a folder needs data.image_size (pictures, e.g. 32, or [height, "
                                      "width]: every picture is resized to it) or data.sample_rate and duration "
                                      "(sound clips)", {})
        return self

    # Set on the copy an unconditional generative task reads (`for_generation`): samples without labels and
    # `normalize: symmetric` are for it alone, and the data layer's check and loader refuse them to the others.
    _generation: bool = PrivateAttr(False)

    def for_generation(self) -> "DataSpec":
        copy = self.model_copy()
        copy._generation = True
        return copy

    @property
    def generation(self) -> bool:
        return self._generation

    def is_file(self) -> bool:
        return isinstance(SOURCES.find(self.source), FileKind)


def _reads(source: str, key: str) -> bool:
    """Whether the (validated) source reads this data key: `categorical` and `missing` are CSV's alone."""
    entry = SOURCES.find(source)
    return entry is not None and key in entry.keys


def _one_of_suffixes() -> str:
    """'.csv, .npz or .npy'"""
    *rest, last = [e.name for e in SOURCES.files() if not e.folder]
    return f"{', '.join(rest)} or {last}" if rest else last
