"""The data pipeline: sources (built-in sets in builtin_sets, files by kind in file_kinds) -> (reshape, split,
normalize) Dataset -> minibatches -> augmentation; and peek, what a source will give the model read from its
header, for `udlc check`.

Importing this package imports nothing else: `udlc check` reads data.file_kinds, data.peek and data.layout
(the standard library alone), and each name below loads its module (numpy; torch and scikit-learn only inside
functions) when it is first used. `collate` shares its module's name, which the package's attribute becomes
once that module loads: import it from udlc.data.collate.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "IMAGE_ONLY": "augment", "augment_batch": "augment", "mix_batch": "augment",
    "InMemoryBatches": "batches", "LoaderBatches": "batches", "make_batches": "batches",
    "PaddedBatches": "collate",
    "Dataset": "dataset", "Normalization": "dataset", "prepare": "dataset",
    "DataSignature": "peek", "Mismatch": "peek", "mismatches": "peek",
    "Arrays": "arrays", "load_arrays": "file_kinds", "peek": "file_kinds",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'udlc.data' has no attribute {name!r}")
    return getattr(import_module(f"udlc.data.{_HOMES[name]}"), name)
