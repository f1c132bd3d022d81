"""The built-in data sets' samples: every set registered in udlc.spec.sources (which holds what `udlc check`
knows of it: its shape, classes, options) is generated or loaded here, by name, in GENERATORS. The table is held
to the registry when this module loads: a registered set without a generator, or a generator for no set, fails
every run at once. numpy and scikit-learn are imported inside the generators.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from udlc.data.builtin_node_sets import karate, sbm, trees_and_cycles
from udlc.spec.sources import SEQ_MAX, SEQ_MIN, SERIES_CONTEXT, SERIES_HORIZON, SOURCES, FileKind

# ---- scikit-learn's bundled sets ----------------------------------------------------------------------


def _sklearn(name: str) -> Callable[[int, Any, Any], tuple[Any, Any]]:
    """sklearn.datasets.load_<name>: the fixed set, whatever samples, noise or seed say."""

    def load(n: int, noise: Any, rng: Any) -> tuple[Any, Any]:
        from sklearn import datasets  # imported here: `udlc check` must not need scikit-learn

        bunch = getattr(datasets, f"load_{name}")()
        return bunch.data, bunch.target

    return load



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



# ---- pictures with picture-shaped targets (spec.sources.PictureSet) ---------------------------------------


def _shapes(n: int, noise: float, rng: Any) -> tuple[Any, Any]:
    """(n, 1, S, S) pictures and their (n, S, S) masks: 1 to 3 filled shapes (class 1 circle, 2 square, 3 triangle),
    each of its own brightness in [0.5, 1] and radius 3 to S/4, on a dark background with Gaussian noise of std
    `noise` over everything, then scaled to a PNG's grey values (× 255, so that a picture file reads as these do).
    A later shape covers an earlier one, in the mask too; the shapes differ in outline only, not in brightness,
    so the network must see their form."""
    import numpy as np

    size = SOURCES.find("shape_masks").shape[-1]
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    x = np.zeros((n, 1, size, size), np.float32)
    y = np.zeros((n, size, size), np.int64)
    for i in range(n):
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(1, 4))
            r = rng.uniform(3, size / 4)
            cy, cx = rng.uniform(r, size - r, size=2)
            if kind == 1:
                inside = (rows - cy) ** 2 + (cols - cx) ** 2 <= r * r
            elif kind == 2:
                inside = (np.abs(rows - cy) <= r * 0.85) & (np.abs(cols - cx) <= r * 0.85)
            else:  # apex up: the width grows from 0 at the top to 2r at the base
                inside = (rows >= cy - r) & (rows <= cy + r) & (np.abs(cols - cx) <= (rows - (cy - r)) / 2)
            x[i, 0][inside] = rng.uniform(0.5, 1.0)
            y[i][inside] = kind
    return (x + rng.normal(0, noise, size=x.shape).astype(np.float32)) * 255, y


def _digits_2x(n: int, noise: Any, rng: Any) -> tuple[Any, Any]:
    """scikit-learn's digits as (N, 1, 8, 8) targets, their 0..16 scaled to a PNG's grey values 0..255 (so that a
    picture file reads as these do), each averaged over 2×2 blocks into its (N, 1, 4, 4) input."""
    import numpy as np
    from sklearn import datasets

    y = datasets.load_digits().data.astype(np.float32).reshape(-1, 1, 8, 8) * (255 / 16)
    return y.reshape(-1, 1, 4, 2, 4, 2).mean(axis=(3, 5)), y


# ---- text corpora ------------------------------------------------------------------------------------


def _stdlib_text() -> str:
    """The Python standard library's own top-level modules, in name order: a corpus every install has."""
    import sysconfig
    from pathlib import Path

    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    return "\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)



# ---- generated sequence tasks, for task: seq2seq --------------------------------------------------------


def _digit_strings(n: int, rng: Any) -> list[str]:
    lengths = rng.integers(SEQ_MIN, SEQ_MAX + 1, size=n)
    return ["".join(map(str, rng.integers(0, 10, size=k))) for k in lengths]


def _mapped(fn: Callable[[str], str]) -> Callable[[int, Any], list[tuple[str, str]]]:
    return lambda n, rng: [(s, fn(s)) for s in _digit_strings(n, rng)]


def _add(n: int, rng: Any) -> list[tuple[str, str]]:
    a, b = (rng.integers(0, 10 ** rng.integers(1, 6, size=n)) for _ in range(2))  # 1 to 5 digits each
    return [(f"{x}+{y}", str(x + y)) for x, y in zip(a.tolist(), b.tolist())]



# (samples, noise, numpy Generator) -> (x, y) for a table or series set; (samples, Generator) -> (source,
# target) strings for a sequence set; () -> text for a corpus; (nodes or graphs, noise, Generator) -> the
# arrays of node sets (udlc.data.builtin_node_sets says which).
GENERATORS: dict[str, Callable[..., Any]] = {
    **{name: _sklearn(name) for name in ("digits", "iris", "wine", "breast_cancer", "diabetes")},
    "moons": _moons, "circles": _circles, "spirals": _spirals, "blobs": _blobs, "xor": _xor, "sine": _sine,
    "sine_mixture": _sine_mixture,
    "stdlib": _stdlib_text,
    "copy": _mapped(lambda s: s), "reverse": _mapped(lambda s: s[::-1]),
    "sort": _mapped(lambda s: "".join(sorted(s))), "add": _add,
    "shape_masks": _shapes, "digits_2x": _digits_2x,
    "karate": karate, "sbm": sbm, "trees_cycles": trees_and_cycles,
}

_registered = {entry.name for entry in SOURCES if not isinstance(entry, FileKind)}
if _registered != set(GENERATORS):
    raise RuntimeError(f"built-in sets without a generator: {sorted(_registered - set(GENERATORS))}; "
                       f"generators of no registered set: {sorted(set(GENERATORS) - _registered)}")


def generator(name: str) -> Callable[..., Any]:
    """The generator of the built-in set `name` (a validated spec names only registered ones)."""
    return GENERATORS[name]
