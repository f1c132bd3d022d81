"""The data pipeline: sources -> (reshape, split, normalize) Dataset -> minibatches -> augmentation;
and peek, what a source will give the model read from its header, for `udlc check`.

Importing this package needs only numpy; torch and scikit-learn load when a function needs them.
"""

from udlc.data.augment import IMAGE_ONLY, augment_batch, mix_batch
from udlc.data.batches import InMemoryBatches, LoaderBatches, make_batches
from udlc.data.collate import PaddedBatches, collate
from udlc.data.dataset import Dataset, Normalization, prepare
from udlc.data.peek import DataSignature, Mismatch, mismatches, peek
from udlc.data.sources import Arrays, load_arrays

__all__ = [
    "IMAGE_ONLY", "Arrays", "DataSignature", "Dataset", "InMemoryBatches", "LoaderBatches", "Mismatch",
    "Normalization", "PaddedBatches", "augment_batch", "collate", "load_arrays", "make_batches", "mismatches",
    "mix_batch", "peek", "prepare",
]
