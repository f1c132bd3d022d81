"""The data pipeline: sources -> (reshape, split, normalize) Dataset -> minibatches -> augmentation.

Importing this package needs only numpy; torch and scikit-learn load when a function needs them.
"""

from udlc.data.augment import IMAGE_ONLY, augment_batch
from udlc.data.batches import InMemoryBatches, LoaderBatches, make_batches
from udlc.data.dataset import Dataset, Normalization, prepare
from udlc.data.sources import Arrays, load_arrays

__all__ = [
    "IMAGE_ONLY", "Arrays", "Dataset", "InMemoryBatches", "LoaderBatches", "Normalization",
    "augment_batch", "load_arrays", "make_batches", "prepare",
]
