"""The data pipeline: sources -> (reshape, split, normalize) Dataset -> minibatches -> augmentation;
and peek, what a source will give the model read from its header, for `udlc check`.

Importing this package imports nothing else: `udlc check` reads data.peek and data.layout (the standard
library alone), and each name below loads its module (numpy; torch and scikit-learn only inside functions)
when it is first used. `peek` and `collate` share their modules' names, which the package's attributes
become once those modules load: import them from udlc.data.peek and udlc.data.collate.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "IMAGE_ONLY": "augment", "augment_batch": "augment", "mix_batch": "augment",
    "InMemoryBatches": "batches", "LoaderBatches": "batches", "make_batches": "batches",
    "PaddedBatches": "collate",
    "Dataset": "dataset", "Normalization": "dataset", "prepare": "dataset",
    "DataSignature": "peek", "Mismatch": "peek", "mismatches": "peek",
    "Arrays": "sources", "load_arrays": "sources",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'udlc.data' has no attribute {name!r}")
    return getattr(import_module(f"udlc.data.{_HOMES[name]}"), name)
