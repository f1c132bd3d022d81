"""Data sources: every name `data.source` may take, registered once.

A built-in set is one function and one `SOURCES.register(BuiltinSet(...))`: the entry holds its loader and
what `udlc check` says about it without loading it (sample shape, classes or regression width), and whether
it is generated (reads `samples` and `noise`, with its default noise). tests/test_sources_registry.py loads
every registered set and holds that signature to what it loads.

A file kind is registered here by suffix with the data keys it reads; the code that reads it (the loader and
the header reader for `udlc check`) is the data layer's, kept in udlc/data/sources.py and peek.py under the
same suffix, since it shares its parsing helpers with the rest of that layer.

numpy and scikit-learn are imported inside the loaders: validating a spec needs neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True, kw_only=True)
class BuiltinSet:
    name: str
    # (samples, noise, numpy Generator) -> (x, y) numpy arrays, x of `shape` samples and y class indices or
    # values; a set that is not generated ignores all three (its noise is None)
    load: Callable[[int, Any, Any], tuple[Any, Any]]
    shape: tuple[int, ...]  # one sample as loaded; peek's sample size and input hint
    classes: tuple[str, ...] | None  # class names in label order; None for a regression set
    target_width: int = 1  # values per target sample when read as regression
    noise: float | None = None  # default noise of a generated set; None: a fixed set that reads no samples/noise
    series: bool = False  # x is a window of one series' past values (context, 1), y its next target_width ones

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
    load: Callable[[], str]
    description: str
    keys: frozenset[str] = frozenset({"tokenizer", "max_chars", "vocab_size"})
    text: bool = True


@dataclass(frozen=True, kw_only=True)
class SequenceSet:
    """A generated set of (source, target) token sequences of varying lengths, for task: seq2seq."""

    name: str
    # (samples, numpy Generator) -> list of (source, target) strings over `alphabet`
    load: Callable[[int, Any], list[tuple[str, str]]]
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
class GraphSet:
    """A built-in graph whose nodes are classified (task: node_classification): node features, an edge list
    and a class per node, from (samples, noise, numpy Generator)."""

    name: str
    # (nodes, noise, numpy Generator) -> (x (N, F) float, edges (2, E) int, y (N,) int); each undirected edge
    # listed once (the loader adds the other direction)
    load: Callable[[int, Any, Any], tuple[Any, Any, Any]]
    features: int  # F: the model's input is [N, F]
    classes: tuple[str, ...]
    description: str
    noise: float | None = None  # default noise of a generated graph; None: a fixed one that reads no samples/noise
    nodes: int | None = None  # default node count of a generated graph

    @property
    def keys(self) -> frozenset[str]:
        return frozenset({"samples", "noise"}) if self.noise is not None else frozenset()


@dataclass(frozen=True, kw_only=True)
class GraphListSet:
    """A built-in set of small graphs, each with one class (task: graph_classification)."""

    name: str
    # (graphs, noise, numpy Generator) -> (list of (x (n, F), edges (2, e)), y (G,)); undirected edges once
    load: Callable[[int, Any, Any], tuple[list[tuple[Any, Any]], Any]]
    features: int
    classes: tuple[str, ...]
    description: str
    keys: frozenset[str] = frozenset({"samples"})


@dataclass(frozen=True, kw_only=True)
class FileKind:
    name: str  # the suffix, lower case: ".csv"; "/" for a folder
    keys: frozenset[str]  # data keys it reads beyond the common ones
    text: bool = False  # read as text to tokenize (.txt), not as a table of samples

    @property
    def folder(self) -> bool:
        return self.name == FOLDER


FOLDER = "/"  # the file kind of a folder of pictures, one subfolder per class: written `pictures/`


Source = BuiltinSet | TextSet | SequenceSet | GraphSet | GraphListSet | FileKind


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
        if isinstance(entry, (BuiltinSet, TextSet, SequenceSet, GraphSet, GraphListSet)):
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

    def graph_sets(self) -> list[GraphSet | GraphListSet]:
        return [e for e in self._entries.values() if isinstance(e, (GraphSet, GraphListSet))]

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


def _sklearn(name: str) -> Callable[[int, Any, Any], tuple[Any, Any]]:
    """sklearn.datasets.load_<name>: the fixed set, whatever samples, noise or seed say."""

    def load(n: int, noise: Any, rng: Any) -> tuple[Any, Any]:
        from sklearn import datasets  # imported here: `udlc check` must not need scikit-learn

        bunch = getattr(datasets, f"load_{name}")()
        return bunch.data, bunch.target

    return load


SOURCES.register(BuiltinSet(name="digits", load=_sklearn("digits"), shape=(64,),
                            classes=tuple(str(i) for i in range(10))))
SOURCES.register(BuiltinSet(name="iris", load=_sklearn("iris"), shape=(4,),
                            classes=("setosa", "versicolor", "virginica")))
SOURCES.register(BuiltinSet(name="wine", load=_sklearn("wine"), shape=(13,),
                            classes=("class_0", "class_1", "class_2")))
SOURCES.register(BuiltinSet(name="breast_cancer", load=_sklearn("breast_cancer"), shape=(30,),
                            classes=("malignant", "benign")))
SOURCES.register(BuiltinSet(name="diabetes", load=_sklearn("diabetes"), shape=(10,), classes=None))

# ---- generated sets ----------------------------------------------------------------------------------


def _seed(rng: Any) -> int:
    """scikit-learn's generators take an int seed; draw it from ours so the set follows the spec's seed."""
    return int(rng.integers(2**31))


def _moons(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    from sklearn import datasets

    return datasets.make_moons(n, noise=noise, random_state=_seed(rng))


def _circles(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    from sklearn import datasets

    return datasets.make_circles(n, noise=noise, factor=0.5, random_state=_seed(rng))


def _spirals(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    import numpy as np

    y = np.arange(n) % 3
    t = rng.uniform(0, 1, n)
    # each arm winds 1.25 turns outward from the center, offset by a third of a turn
    theta = y * 2 * np.pi / 3 + t * 2.5 * np.pi + rng.normal(0, noise, n)
    return np.stack([t * np.cos(theta), t * np.sin(theta)], axis=1), y


def _blobs(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    from sklearn import datasets

    return datasets.make_blobs(n, centers=3, n_features=2, cluster_std=noise, random_state=_seed(rng))


def _xor(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    import numpy as np

    x = rng.uniform(-1, 1, size=(n, 2))
    y = (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int64)
    return x + rng.normal(0, noise, size=x.shape), y  # labels come from the clean points


def _sine(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    import numpy as np

    x = rng.uniform(-math.pi, math.pi, size=(n, 1))
    return x, np.sin(x) + rng.normal(0, noise, size=(n, 1))


SOURCES.register(BuiltinSet(name="moons", load=_moons, shape=(2,), classes=("0", "1"), noise=0.1))
SOURCES.register(BuiltinSet(name="circles", load=_circles, shape=(2,), classes=("0", "1"), noise=0.05))
SOURCES.register(BuiltinSet(name="spirals", load=_spirals, shape=(2,), classes=("0", "1", "2"), noise=0.2))
SOURCES.register(BuiltinSet(name="blobs", load=_blobs, shape=(2,), classes=("0", "1", "2"), noise=1.0))
SOURCES.register(BuiltinSet(name="xor", load=_xor, shape=(2,), classes=("0", "1"), noise=0.05))
SOURCES.register(BuiltinSet(name="sine", load=_sine, shape=(1,), classes=None, noise=0.1))


# A series set for task: forecasting. The window is fixed here, so `udlc check` knows the input and the
# horizon from the registry alone, as for every other set.
SERIES_CONTEXT, SERIES_HORIZON = 32, 8


def _sine_mixture(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    """Each sample a window of its own sum of 2 or 3 sines (periods 6-40 steps, random phases and amplitudes)
    plus Gaussian noise: x the first SERIES_CONTEXT values (context, 1), y the next SERIES_HORIZON."""
    import numpy as np

    t = np.arange(SERIES_CONTEXT + SERIES_HORIZON)
    period = rng.uniform(6, 40, size=(n, 3, 1))
    phase = rng.uniform(0, 2 * math.pi, size=(n, 3, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(n, 3, 1))
    amplitude[:, 2] *= rng.integers(0, 2, size=(n, 1))  # the third sine in about half the samples
    series = (amplitude * np.sin(2 * math.pi * t / period + phase)).sum(axis=1)
    series = series + rng.normal(0, noise, size=series.shape)  # drawn last: noise 0 gives the same clean waves
    return series[:, :SERIES_CONTEXT, None], series[:, SERIES_CONTEXT:]


SOURCES.register(BuiltinSet(name="sine_mixture", load=_sine_mixture, shape=(SERIES_CONTEXT, 1), classes=None,
                            target_width=SERIES_HORIZON, noise=0.1, series=True))

# ---- files, by suffix --------------------------------------------------------------------------------

SOURCES.register(FileKind(name=".csv", keys=frozenset({"target", "features", "categorical", "missing", "text",
                                                        "tokenizer", "vocab_size", "nodes"})))
SOURCES.register(FileKind(name=".npz", keys=frozenset({"target", "features"})))  # the arrays' keys
SOURCES.register(FileKind(name=".npy", keys=frozenset({"target"})))  # a column index: an array has no names
SOURCES.register(FileKind(name=".txt", keys=TextSet.keys, text=True))  # UTF-8 text, for language_model
SOURCES.register(FileKind(name=FOLDER, keys=frozenset({"image_size", "channels", "resize"})))  # pictures/<class>/

# ---- text corpora ------------------------------------------------------------------------------------


def _stdlib_text() -> str:
    """The Python standard library's own top-level modules, in name order: a corpus every install has."""
    import sysconfig
    from pathlib import Path

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)


SOURCES.register(TextSet(name="stdlib", load=_stdlib_text,
                         description="the text of the Python standard library's top-level modules (~4.7 MB)"))

# ---- generated sequence tasks, for task: seq2seq --------------------------------------------------------

SEQ_MIN, SEQ_MAX = 3, 10  # digits per source sequence


def _digit_strings(n: int, rng: Any) -> list[str]:
    lengths = rng.integers(SEQ_MIN, SEQ_MAX + 1, size=n)
    return ["".join(map(str, rng.integers(0, 10, size=k))) for k in lengths]


def _mapped(fn: Callable[[str], str]) -> Callable[[int, Any], list[tuple[str, str]]]:
    return lambda n, rng: [(s, fn(s)) for s in _digit_strings(n, rng)]


def _add(n: int, rng: Any) -> list[tuple[str, str]]:
    a, b = (rng.integers(0, 10 ** rng.integers(1, 6, size=n)) for _ in range(2))  # 1 to 5 digits each
    return [(f"{x}+{y}", str(x + y)) for x, y in zip(a.tolist(), b.tolist())]


for _name, _fn, _what in (("copy", lambda s: s, "the digits again"), ("reverse", lambda s: s[::-1], "reversed"),
                          ("sort", lambda s: "".join(sorted(s)), "in ascending order")):
    SOURCES.register(SequenceSet(name=_name, load=_mapped(_fn), alphabet="0123456789",
                                 description=f"{SEQ_MIN} to {SEQ_MAX} random digits → {_what}"))
SOURCES.register(SequenceSet(name="add", load=_add, alphabet="0123456789+", aligned=False,
                             description="two numbers of 1 to 5 digits, 'a+b' → their sum"))


# ---- graphs: udlc.spec.node_sets registers them (karate, sbm, trees_cycles) -----------------------------

from udlc.spec import node_sets  # noqa: E402,F401  (after SOURCES exists: it registers into it)
