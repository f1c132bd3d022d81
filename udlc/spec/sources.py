"""Data sources: every name `data.source` may take, registered once.

A built-in set is one `SOURCES.register(...)` here, holding what `udlc check` says about it without loading it
(sample shape, classes or regression width, the data keys it reads, its default noise), and one generator in
udlc.data.builtin_sets under the same name. tests/test_sources_registry.py loads every registered set and holds
this signature to what it loads.

A file kind is registered here by suffix with the data keys it reads; how it is read (its loader, and its
header reader for `udlc check`) is its entry in udlc.data.file_kinds under the same suffix.

This module is configuration only: no numpy, no scikit-learn, no loaders.
"""

from dataclasses import dataclass
from typing import Iterator


@dataclass(frozen=True, kw_only=True)
class BuiltinSet:
    name: str
    shape: tuple[int, ...]  # one sample as loaded; peek's sample size and input hint
    classes: tuple[str, ...] | None  # class names in label order; None for a regression set
    target_width: int = 1  # values per target sample when read as regression
    noise: float | None = None  # default noise of a generated set; None: a fixed set that reads no samples/noise
    series: bool = False  # x is a window of one series' past values (context, 1), y its next target_width ones
    count: int | None = None  # a fixed set's samples (check counts its training split for data.limit); None: generated

    @property
    def generated(self) -> bool:
        return self.noise is not None

    @property
    def keys(self) -> frozenset[str]:
        """The data keys this source reads beyond the common ones (split, normalize, task, augment)."""
        return frozenset({"samples", "noise"}) if self.generated else frozenset()


@dataclass(frozen=True, kw_only=True)
class TextSet:
    """A built-in text corpus, for tasks that read text (language_model): tokenized, not loaded as arrays."""

    name: str
    description: str
    keys: frozenset[str] = frozenset({"tokenizer", "max_chars", "vocab_size"})
    text: bool = True


@dataclass(frozen=True, kw_only=True)
class SequenceSet:
    """A generated set of (source, target) token sequences of varying lengths, for task: seq2seq."""

    name: str
    alphabet: str  # the characters sources and targets are written in; their ids follow the special tokens
    description: str
    aligned: bool = True  # each target as long as its source: a label per position (task token_classification)
    keys: frozenset[str] = frozenset({"samples"})

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Every token: padding, begin and end of a sequence, then the alphabet's characters."""
        return SPECIAL_TOKENS + tuple(self.alphabet)


SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")


@dataclass(frozen=True, kw_only=True)
class NodeSet:
    """A built-in node set: one graph-shaped data set whose nodes are classified (task: node_classification,
    link_prediction): node features, an edge list and a class per node. ("Graph" alone means a network's graph
    in udlc; data shaped as nodes and edges is a node set.)"""

    name: str
    features: int  # F: the model's input is [N, F]
    classes: tuple[str, ...]
    description: str
    noise: float | None = None  # default noise of a generated graph; None: a fixed one that reads no samples/noise
    nodes: int | None = None  # default node count of a generated graph

    @property
    def keys(self) -> frozenset[str]:
        return frozenset({"samples", "noise"}) if self.noise is not None else frozenset()


@dataclass(frozen=True, kw_only=True)
class NodeSetList:
    """A built-in list of small node sets, each with one class (task: graph_classification)."""

    name: str
    features: int
    classes: tuple[str, ...]
    description: str
    keys: frozenset[str] = frozenset({"samples"})


@dataclass(frozen=True, kw_only=True)
class PictureSet:
    """A built-in set of pictures with a picture-shaped target, for the dense tasks: a class mask per picture
    (`masks`: (H, W) class ids, task segmentation) or a target picture (`pictures`: (C, H', W'), image_to_image)."""

    name: str
    shape: tuple[int, int, int]  # one input picture, (channels, height, width)
    target: str  # 'masks' or 'pictures'
    target_shape: tuple[int, ...]  # (H, W) for masks, (C, H', W') for pictures
    classes: tuple[str, ...] | None  # the masks' classes, in id order
    description: str
    noise: float | None = None  # default noise of a generated set; None: a fixed one that reads no samples/noise

    @property
    def keys(self) -> frozenset[str]:
        return frozenset({"samples", "noise"}) if self.noise is not None else frozenset()


@dataclass(frozen=True, kw_only=True)
class FileKind:
    name: str  # the suffix, lower case: ".csv"; "/" for a folder
    keys: frozenset[str]  # data keys it reads beyond the common ones
    text: bool = False  # read as text to tokenize (.txt), not as a table of samples

    @property
    def folder(self) -> bool:
        return self.name == FOLDER


FOLDER = "/"  # the file kind of a folder of pictures, one subfolder per class: written `pictures/`


Source = BuiltinSet | TextSet | SequenceSet | NodeSet | NodeSetList | PictureSet | FileKind


class SourceRegistry:
    def __init__(self) -> None:
        self._entries: dict[str, Source] = {}

    def register(self, entry: Source) -> Source:
        is_suffix = entry.name.startswith(".") or entry.name == FOLDER
        if is_suffix != isinstance(entry, FileKind) or entry.name != entry.name.lower():
            raise ValueError(f"{entry.name!r}: a file kind is a lower-case suffix ('.csv'), a built-in set a name")
        if entry.name in self._entries:
            raise ValueError(f"data source {entry.name!r} registered twice")
        if isinstance(entry, BuiltinSet) and (entry.classes is not None and len(entry.classes) < 2):
            raise ValueError(f"{entry.name}: a classification set needs two classes or more")
        self._entries[entry.name] = entry
        return entry

    def find(self, source: str) -> Source | None:
        """The entry `data.source` names: a built-in set by name, else a file kind by its suffix."""
        entry = self._entries.get(source)
        if isinstance(entry, (BuiltinSet, TextSet, SequenceSet, NodeSet, NodeSetList, PictureSet)):
            return entry
        if is_folder(source):
            return self._entries.get(FOLDER)
        _, dot, suffix = source.rpartition(".")
        entry = self._entries.get("." + suffix.lower()) if dot else None
        return entry if isinstance(entry, FileKind) else None

    def __iter__(self) -> Iterator[Source]:
        return iter(self._entries.values())

    def builtin(self) -> list[BuiltinSet]:
        return [e for e in self._entries.values() if isinstance(e, BuiltinSet)]

    def corpora(self) -> list[TextSet]:
        return [e for e in self._entries.values() if isinstance(e, TextSet)]

    def sequence_sets(self) -> list[SequenceSet]:
        return [e for e in self._entries.values() if isinstance(e, SequenceSet)]

    def node_sets(self) -> list[NodeSet | NodeSetList]:
        return [e for e in self._entries.values() if isinstance(e, (NodeSet, NodeSetList))]

    def picture_sets(self) -> list[PictureSet]:
        return [e for e in self._entries.values() if isinstance(e, PictureSet)]

    def is_text(self, source: str) -> bool:
        """Does `data.source` name text to tokenize (a corpus or a .txt file) rather than samples?"""
        return getattr(self.find(source), "text", False)

    def files(self) -> list[FileKind]:
        return [e for e in self._entries.values() if isinstance(e, FileKind)]


SOURCES = SourceRegistry()


def is_folder(source: str) -> bool:
    """`pictures/`, or a path whose last part has no suffix (`data/pictures`): a folder, not a file or a set."""
    head, slash, last = source.rstrip("/").rpartition("/")
    return source.endswith("/") or (bool(slash) and "." not in last and bool(head or last))


# ---- scikit-learn's bundled sets ----------------------------------------------------------------------

SOURCES.register(BuiltinSet(name="digits", shape=(64,), classes=tuple(str(i) for i in range(10)), count=1797))
SOURCES.register(BuiltinSet(name="iris", shape=(4,), classes=("setosa", "versicolor", "virginica"), count=150))
SOURCES.register(BuiltinSet(name="wine", shape=(13,), classes=("class_0", "class_1", "class_2"), count=178))
SOURCES.register(BuiltinSet(name="breast_cancer", shape=(30,), classes=("malignant", "benign"), count=569))
SOURCES.register(BuiltinSet(name="diabetes", shape=(10,), classes=None, count=442))

# ---- generated sets ----------------------------------------------------------------------------------

GENERATED_SAMPLES = 1000  # what a generated set makes when `samples` is left out (udlc.data.layout makes them)

SOURCES.register(BuiltinSet(name="moons", shape=(2,), classes=("0", "1"), noise=0.1))
SOURCES.register(BuiltinSet(name="circles", shape=(2,), classes=("0", "1"), noise=0.05))
SOURCES.register(BuiltinSet(name="spirals", shape=(2,), classes=("0", "1", "2"), noise=0.2))
SOURCES.register(BuiltinSet(name="blobs", shape=(2,), classes=("0", "1", "2"), noise=1.0))
SOURCES.register(BuiltinSet(name="xor", shape=(2,), classes=("0", "1"), noise=0.05))
SOURCES.register(BuiltinSet(name="sine", shape=(1,), classes=None, noise=0.1))

# A series set for task: forecasting. The window is fixed here, so `udlc check` knows the input and the
# horizon from the registry alone, as for every other set.
SERIES_CONTEXT, SERIES_HORIZON = 32, 8
SOURCES.register(BuiltinSet(name="sine_mixture", shape=(SERIES_CONTEXT, 1), classes=None,
                            target_width=SERIES_HORIZON, noise=0.1, series=True))

# ---- files, by suffix --------------------------------------------------------------------------------

# What sound clips are read with: a folder of them (clips/<class>/), or a CSV whose `audio` column names them.
SOUND_KEYS = frozenset({"sample_rate", "duration", "crop", "audio"})

SOURCES.register(FileKind(name=".csv", keys=frozenset({"target", "features", "categorical", "missing", "text",
                                                        "tokenizer", "vocab_size", "nodes", *SOUND_KEYS})))
SOURCES.register(FileKind(name=".npz", keys=frozenset({"target", "features"})))  # the arrays' keys
SOURCES.register(FileKind(name=".npy", keys=frozenset({"target"})))  # a column index: an array has no names
SOURCES.register(FileKind(name=".txt", keys=TextSet.keys, text=True))  # UTF-8 text, for language_model
# pictures/<class>/, or pictures with a parallel folder of `targets` (masks, target pictures); or sound clips/<class>/
# (WAV, FLAC, OGG) read at `sample_rate` (udlc.data.audio)
SOURCES.register(FileKind(name=FOLDER, keys=frozenset({"image_size", "channels", "resize", "targets",
                                                       *SOUND_KEYS} - {"audio"})))

# ---- text corpora ------------------------------------------------------------------------------------

SOURCES.register(TextSet(name="stdlib",
                         description="the text of the Python standard library's top-level modules (~4.7 MB)"))

# ---- generated sequence tasks, for task: seq2seq --------------------------------------------------------

SEQ_MIN, SEQ_MAX = 3, 10  # digits per source sequence
for _name, _what in (("copy", "the digits again"), ("reverse", "reversed"), ("sort", "in ascending order")):
    SOURCES.register(SequenceSet(name=_name, alphabet="0123456789",
                                 description=f"{SEQ_MIN} to {SEQ_MAX} random digits → {_what}"))
SOURCES.register(SequenceSet(name="add", alphabet="0123456789+", aligned=False,
                             description="two numbers of 1 to 5 digits, 'a+b' → their sum"))

# ---- node sets: a graph's nodes, or many small graphs ---------------------------------------------------

KARATE_MEMBERS = 34
SBM_BLOCKS, SBM_FEATURES = 4, 8
DEGREE_FEATURES = 5  # one-hot degree 0, 1, 2, 3, 4 or more
SOURCES.register(NodeSet(name="karate", features=KARATE_MEMBERS, classes=("mr_hi", "officer"),
                          description="Zachary's karate club: 34 nodes, one-hot features, the club's two sides"))
SOURCES.register(NodeSet(name="sbm", features=SBM_FEATURES,
                          classes=tuple(f"block_{i}" for i in range(SBM_BLOCKS)), noise=2.0, nodes=800,
                          description="a stochastic block model: 4 communities, noisy community features"))
SOURCES.register(NodeSetList(name="trees_cycles", features=DEGREE_FEATURES, classes=("tree", "cycle"),
                              description="random trees of 6-20 nodes, half with one cycle; degree features"))

# ---- pictures with picture-shaped targets, for task segmentation and image_to_image ------------------------

SHAPES_SIZE = 32  # the side of a `shape_masks` picture
SOURCES.register(PictureSet(name="shape_masks", shape=(1, SHAPES_SIZE, SHAPES_SIZE), target="masks",
                            target_shape=(SHAPES_SIZE, SHAPES_SIZE), noise=0.3,
                            classes=("background", "circle", "square", "triangle"),
                            description="1 to 3 filled circles, squares and triangles on noise (grey 0..255), "
                                        "a class per pixel"))
SOURCES.register(PictureSet(name="digits_2x", shape=(1, 4, 4), target="pictures", target_shape=(1, 8, 8),
                            classes=None, description="scikit-learn's 8×8 digits (grey 0..255) averaged over 2×2 "
                                                      "blocks to 4×4: the input; the 8×8 picture: the target"))
